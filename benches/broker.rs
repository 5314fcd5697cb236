//! Broker benchmarks (issue 4), run as root with `cargo bench --bench broker`:
//!
//! 1. warm-cache token requests over the socket: requests/s and p50/p99 latency, with
//!    several persistent connections;
//! 2. `rolesh token --cluster` and `rolesh-token --cluster` (the exec plugin) end to end
//!    (process start to JSON): median and p99;
//! 3. login storm: 500 distinct users (NSS-wrapped accounts, clients running as their
//!    uids) asking for their first token at once: AssumeRole calls and time to first token;
//! 4. the cost of the live-session check (`[broker] require_session`): the same warm token
//!    requests from a process inside a session's cgroup (a cgroup and a record made here,
//!    as the monitor makes them), against a broker that checks and one that does not,
//!    interleaved.
//!
//! The fake AWS (rolesh-testkit) answers STS; it adds no latency of its own.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};

const STORM_USERS: u32 = 500;
const STORM_FIRST_UID: u32 = 200_000;
const NSS_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("benches/broker needs root (clients run as other uids); skipped");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let aws = FakeAws::start_in_background(FakeAwsOptions::default()).expect("fake aws");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let broker = start_broker(&aws, dir.path(), "unchecked", false);
    let socket = dir.path().join("unchecked.sock");

    let rate = throughput(&socket, 4, Duration::from_secs(3));
    println!(
        "warm token requests over the socket: {:.0}/s with 4 connections; p50 {:.3} ms, p99 {:.3} ms (goal ≥ 20000/s, p99 < 2 ms)",
        rate.per_second,
        ms(rate.p50),
        ms(rate.p99)
    );
    end_to_end(&socket, 200);
    login_storm(&aws, &socket);
    session_check(&aws, dir.path(), &socket);
    drop(broker);
}

/// Warm token requests from inside a session, against a broker that checks the session
/// and one that does not, interleaved; the difference is what the check costs.
fn session_check(aws: &FakeAws, dir: &Path, unchecked: &Path) {
    let _checked_broker = start_broker(aws, dir, "checked", true);
    let checked = dir.join("checked.sock");
    let _session = FakeSession::enter();
    const ROUNDS: usize = 9;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // One connection each: latency per request, not the machine's parallelism.
        without.push(throughput(unchecked, 1, Duration::from_millis(1500)));
        with.push(throughput(&checked, 1, Duration::from_millis(1500)));
    }
    // Per round, the difference of the mean time per request; the median of those, so a
    // round disturbed by other work on the machine does not decide.
    let mut costs: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(w, wo)| (1.0 / w.per_second - 1.0 / wo.per_second) * 1e6)
        .collect();
    costs.sort_by(f64::total_cmp);
    let median = |v: &[Rate], f: fn(&Rate) -> f64| {
        let mut v: Vec<f64> = v.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "live-session check: {:.1} µs per request (median over {ROUNDS} interleaved rounds of 1.5 s, one connection; rounds from {:.1} to {:.1} µs); per request {:.1} µs with it vs {:.1} µs without; p50 {:.3} vs {:.3} ms (goal ≤ 50 µs)",
        costs[costs.len() / 2],
        costs[0],
        costs[costs.len() - 1],
        median(&with, |r| 1e6 / r.per_second),
        median(&without, |r| 1e6 / r.per_second),
        median(&with, |r| ms(r.p50)),
        median(&without, |r| ms(r.p50)),
    );
}

/// This process inside a session as the monitor makes one: a cgroup
/// `…/rolesh-sessions/ID` and the record `/run/rolesh/sessions/ID`; undone on drop.
struct FakeSession {
    cgroup: std::path::PathBuf,
    record: std::path::PathBuf,
    home: std::path::PathBuf,
}

impl FakeSession {
    fn enter() -> FakeSession {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let mount = mounts
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
            })
            .expect("a cgroup2 mount");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        let id = format!("{:024x}", std::process::id());
        // Relative to the mount: joining "/rolesh-sessions" would leave the cgroup tree.
        let home = Path::new(&mount).join(own.trim_start_matches('/'));
        let parent = home.join("rolesh-sessions");
        let _ = std::fs::create_dir(&parent);
        let cgroup = parent.join(&id);
        std::fs::create_dir(&cgroup).unwrap();
        std::fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string()).unwrap();
        let record = Path::new("/run/rolesh/sessions").join(&id);
        std::fs::create_dir_all("/run/rolesh/sessions").unwrap();
        let path = format!("{own}/rolesh-sessions/{id}");
        // This process stands for the session's monitor: a monitor daemon sweeping for
        // sessions whose monitor died leaves this one alone.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let start: u64 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        let me = std::process::id();
        std::fs::write(
            &record,
            format!(
                r#"{{"session_id":"{id}","uid":0,"user":"root","cgroup":"{path}","started":{},"max_duration_secs":3600,"monitor_pid":{me},"monitor_start":{start}}}"#,
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            ),
        )
        .unwrap();
        FakeSession {
            cgroup,
            record,
            home,
        }
    }
}

impl Drop for FakeSession {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.home.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_file(&self.record);
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(aws: &FakeAws, dir: &Path, name: &str, require_session: bool) -> Killed {
    let config = format!(
        "[aws]\nregion = \"us-east-1\"\nsts_endpoint = \"{}\"\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{{user}}\"\n[[cluster]]\nname = \"demo\"\n[broker]\nrate_per_uid = 1000000\nmax_connections = 4096\nmax_connections_per_uid = 4096\nrequire_session = {require_session}\n",
        aws.endpoint()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // 500 accounts the broker resolves through NSS (libnss-wrapper), plus root.
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/bash\n");
    let mut group = String::from("root:x:0:\n");
    for i in 0..STORM_USERS {
        let uid = STORM_FIRST_UID + i;
        passwd.push_str(&format!(
            "storm{i}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n"
        ));
        group.push_str(&format!("storm{i}:x:{uid}:\n"));
    }
    std::fs::write(dir.join("passwd"), passwd).unwrap();
    std::fs::write(dir.join("group"), group).unwrap();
    let o = aws.options();
    let child = Command::new(env!("CARGO_BIN_EXE_rolesh"))
        .args(["broker", "--config"])
        .arg(&path)
        .arg("--socket")
        .arg(dir.join(format!("{name}.sock")))
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", &o.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &o.secret_access_key)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("LD_PRELOAD", NSS_WRAPPER)
        .env("NSS_WRAPPER_PASSWD", dir.join("passwd"))
        .env("NSS_WRAPPER_GROUP", dir.join("group"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start broker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(dir.join(format!("{name}.sock"))).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(child)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Requests per second and latencies of one `throughput` run.
struct Rate {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

fn throughput(socket: &Path, connections: usize, duration: Duration) -> Rate {
    // Warm the cache: one AssumeRole and one signature.
    request(&mut BufReader::new(UnixStream::connect(socket).unwrap()));
    let start = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                let mut conn = BufReader::new(UnixStream::connect(socket).unwrap());
                let mut latencies = Vec::new();
                while start.elapsed() < duration {
                    let t = Instant::now();
                    request(&mut conn);
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    all.sort();
    Rate {
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}

fn request(conn: &mut BufReader<UnixStream>) {
    conn.get_mut()
        .write_all(b"{\"v\":1,\"op\":\"token\",\"cluster\":\"demo\"}\n")
        .unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    assert!(line.contains("\"token\":\"k8s-aws-v1."), "{line}");
}

/// `rolesh token --cluster` and `rolesh-token --cluster` (what the session kubeconfig
/// runs), process start to JSON, interleaved run by run.
fn end_to_end(socket: &Path, runs: usize) {
    let clients = [
        ("rolesh token", env!("CARGO_BIN_EXE_rolesh"), &["token"][..]),
        ("rolesh-token", env!("CARGO_BIN_EXE_rolesh-token"), &[][..]),
    ];
    let mut times = vec![Vec::with_capacity(runs); clients.len()];
    for _ in 0..runs {
        for ((_, program, first), times) in clients.iter().zip(&mut times) {
            let t = Instant::now();
            let out = Command::new(program)
                .args(*first)
                .args(["--cluster", "demo"])
                .env("ROLESH_BROKER_SOCKET", socket)
                .output()
                .unwrap();
            times.push(t.elapsed());
            assert!(out.status.success());
        }
    }
    for ((name, ..), times) in clients.iter().zip(&mut times) {
        times.sort();
        println!(
            "{name} --cluster end to end: median {:.2} ms, p99 {:.2} ms over {runs} runs (goal: median ≤ 3 ms)",
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.99))
        );
    }
}

fn login_storm(aws: &FakeAws, socket: &Path) {
    let before = aws.handle().counters().assume_role;
    let start = Instant::now();
    let children: Vec<(Instant, Child)> = (0..STORM_USERS)
        .map(|i| {
            let child = Command::new(env!("CARGO_BIN_EXE_rolesh"))
                .args(["token", "--cluster", "demo"])
                .env_clear()
                .env("ROLESH_BROKER_SOCKET", socket)
                .uid(STORM_FIRST_UID + i)
                .gid(STORM_FIRST_UID + i)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn client");
            (Instant::now(), child)
        })
        .collect();
    let mut times = Vec::new();
    let mut failures = 0;
    for (spawned, mut child) in children {
        let status = child.wait().unwrap();
        times.push(spawned.elapsed());
        if !status.success() {
            failures += 1;
        }
    }
    let total = start.elapsed();
    times.sort();
    let calls = aws.handle().counters().assume_role - before;
    println!(
        "login storm: {STORM_USERS} users at once → {calls} AssumeRole calls, {failures} failures; time to first token p50 {:.1} ms, p99 {:.1} ms; all done in {:.2} s",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        total.as_secs_f64()
    );
    assert_eq!(
        calls,
        u64::from(STORM_USERS),
        "exactly one AssumeRole per user"
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
