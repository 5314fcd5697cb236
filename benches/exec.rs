//! `rolesh exec` vs `kubectl exec` against the same fake EKS cluster in one run (issue 7),
//! as root with `cargo bench --bench exec` (release build of rolesh):
//!
//! 1. time to first byte: process start to the first byte of `-- echo x` on stdout;
//! 2. throughput: `-- head -c 100M /dev/zero`, bytes read from stdout over wall time.
//!
//! Both run as the same test account against the rolesh-testkit stack. kubectl uses the
//! session kubeconfig (`rolesh kubeconfig`), whose exec plugin asks the broker for a token
//! on every run, exactly as in a session; a second kubectl baseline uses a kubeconfig with
//! the bearer token written in (kubectl at its fastest, no plugin). Runs are interleaved so
//! that drift hits every client alike. Knobs: `BENCH_TTFB_RUNS` (40), `BENCH_BULK_RUNS` (5),
//! `BENCH_BULK_MIB` (100).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestUser;
use common::broker::BrokerProc;

const POD: &str = "backfill-2h7x9";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds the command that runs `args` in the pod.
type Build = Box<dyn Fn(&[&str]) -> Command>;

/// One way to exec into the pod: a name and how to build the command.
struct Client {
    name: &'static str,
    build: Build,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("benches/exec needs root (the clients run as a test account); skipped");
        return;
    }
    let user = TestUser::create("rexbench", &[]);
    let broker = BrokerProc::start_stack("");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let uid = user.uid();
    let socket = broker.socket();
    let session_kubeconfig = write_session_kubeconfig(dir.path(), uid, &socket);
    let static_kubeconfig = write_static_kubeconfig(dir.path(), uid, &socket);

    let clients = vec![
        rolesh_client(uid, socket.clone()),
        kubectl_client(
            "kubectl (session kubeconfig)",
            uid,
            &socket,
            session_kubeconfig,
        ),
        kubectl_client("kubectl (static token)", uid, &socket, static_kubeconfig),
    ];
    for c in &clients {
        let out = (c.build)(&["echo", "ready"]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ready\n",
            "{}: {}",
            c.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let ttfb_runs = env_number("BENCH_TTFB_RUNS", 40);
    let bulk_runs = env_number("BENCH_BULK_RUNS", 5);
    let mib = env_number("BENCH_BULK_MIB", 100);
    let ttfb = measure(&clients, ttfb_runs, |c| {
        first_byte(c, &["echo", "x"]).as_secs_f64()
    });
    let bulk_arg = format!("{mib}M");
    let bulk = measure(&clients, bulk_runs, |c| {
        throughput(c, &["head", "-c", &bulk_arg, "/dev/zero"], mib)
    });

    println!("\nexec benchmark ({ttfb_runs} TTFB runs, {bulk_runs} × {mib} MiB runs, interleaved)");
    println!(
        "{:<32} {:>12} {:>12} {:>14}",
        "client", "TTFB p50", "TTFB p90", "MiB/s (median)"
    );
    for (i, c) in clients.iter().enumerate() {
        println!(
            "{:<32} {:>9.1} ms {:>9.1} ms {:>14.0}",
            c.name,
            percentile(&ttfb[i], 0.5) * 1e3,
            percentile(&ttfb[i], 0.9) * 1e3,
            percentile(&bulk[i], 0.5)
        );
    }
    for (i, c) in clients.iter().enumerate().skip(1) {
        println!(
            "rolesh vs {}: time to first byte {:.2}× faster, throughput {:.2}×",
            c.name,
            percentile(&ttfb[i], 0.5) / percentile(&ttfb[0], 0.5),
            percentile(&bulk[0], 0.5) / percentile(&bulk[i], 0.5)
        );
    }
    drop(broker);
}

/// Runs `one` for every client, `runs` rounds, interleaved.
fn measure(clients: &[Client], runs: usize, one: impl Fn(&Client) -> f64) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(runs); clients.len()];
    for _ in 0..runs {
        for (i, c) in clients.iter().enumerate() {
            samples[i].push(one(c));
        }
    }
    samples
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn first_byte(client: &Client, args: &[&str]) -> Duration {
    let started = Instant::now();
    let mut child = (client.build)(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut byte = [0u8; 1];
    let n = child.stdout.as_mut().unwrap().read(&mut byte).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(n, 1, "{}: no output", client.name);
    assert!(child.wait().unwrap().success(), "{}", client.name);
    elapsed
}

/// MiB/s of stdout, process start to end.
fn throughput(client: &Client, args: &[&str], mib: usize) -> f64 {
    let started = Instant::now();
    let mut child = (client.build)(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match out.read(&mut buf).unwrap() {
            0 => break,
            n => total += n,
        }
    }
    assert!(child.wait().unwrap().success(), "{}", client.name);
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(total, mib << 20, "{}: short output", client.name);
    mib as f64 / elapsed
}

fn as_user(program: &str, uid: u32, socket: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("ROLESH_BROKER_SOCKET", socket)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

fn rolesh_client(uid: u32, socket: PathBuf) -> Client {
    Client {
        name: "rolesh exec",
        build: Box::new(move |args| {
            let mut cmd = as_user(env!("CARGO_BIN_EXE_rolesh"), uid, &socket);
            cmd.args(["exec", &format!("demo/jobs/{POD}"), "--"])
                .args(args);
            cmd
        }),
    }
}

fn kubectl_client(name: &'static str, uid: u32, socket: &Path, kubeconfig: PathBuf) -> Client {
    let socket = socket.to_path_buf();
    Client {
        name,
        build: Box::new(move |args| {
            let mut cmd = as_user("/usr/bin/kubectl", uid, &socket);
            cmd.env("KUBECONFIG", &kubeconfig)
                .args(["--context", "demo/jobs", "exec", POD, "--"])
                .args(args);
            cmd
        }),
    }
}

fn rolesh_output(uid: u32, socket: &Path, args: &[&str]) -> String {
    let out =
        common::stdout_of_success(as_user(env!("CARGO_BIN_EXE_rolesh"), uid, socket).args(args));
    String::from_utf8(out).unwrap()
}

fn write_user_file(path: &Path, text: &str, uid: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

fn write_session_kubeconfig(dir: &Path, uid: u32, socket: &Path) -> PathBuf {
    let path = dir.join("session.kubeconfig");
    write_user_file(&path, &rolesh_output(uid, socket, &["kubeconfig"]), uid);
    path
}

/// The session kubeconfig with the plugin replaced by the bearer token it returns (a
/// fake cluster's token, in a private temporary file removed with the run).
fn write_static_kubeconfig(dir: &Path, uid: u32, socket: &Path) -> PathBuf {
    let credential = rolesh_output(uid, socket, &["token", "--cluster", "demo"]);
    let credential: serde_json::Value = serde_json::from_str(&credential).unwrap();
    let token = credential["status"]["token"].as_str().unwrap();
    let mut config: serde_json::Value =
        serde_yaml_ng::from_str(&rolesh_output(uid, socket, &["kubeconfig"])).unwrap();
    for user in config["users"].as_array_mut().unwrap() {
        user["user"] = serde_json::json!({ "token": token });
    }
    let path = dir.join("static.kubeconfig");
    write_user_file(&path, &serde_json::to_string(&config).unwrap(), uid);
    path
}
