//! The Kubernetes API proxy against kubectl straight to the cluster, side by side in one run
//! (issue 18), as root with `cargo bench --bench proxy` (the clients run as a test account):
//!
//! 1. `kubectl get pods -n web` through the proxy vs kubectl with a static token straight
//!    to the cluster: the median of the per-round ratios (goal ≤ 1.05×);
//! 2. latency on a warm connection: one keep-alive HTTPS connection each (python3's
//!    http.client, as the account), `GET /version` (passed through) and the `web` pod list
//!    (filtered by the selectors), interleaved request by request; p50 and p99 of each, and
//!    what the proxy adds (goal: p99 added < 1 ms);
//! 3. `kubectl exec` through the proxy vs straight: time to first byte of `-- echo x`
//!    (goal ≥ 1.0× of direct, within noise) and throughput of `-- head -c 100M /dev/zero`
//!    (goal ≥ 0.9×).
//!
//! Both paths reach the same fake cluster as the same user: the static token comes from the
//! same broker before `demo` is switched to the proxy (config edit + SIGHUP). kubectl is
//! 1.33 (WebSocket exec). Knobs: `BENCH_GET_RUNS` (60), `BENCH_HTTP_REQUESTS` (2000),
//! `BENCH_TTFB_RUNS` (30), `BENCH_BULK_RUNS` (5), `BENCH_BULK_MIB` (100), and
//! `BENCH_RTT_MS` (0): a relay that puts the cluster that many milliseconds of round trip
//! away from the bastion, for kubectl straight to it and for the broker alike (loopback has
//! no network; a bastion and its EKS cluster do).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/distance.rs"]
mod distance;
#[path = "shared/mod.rs"]
mod shared;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::TestUser;
use common::broker::BrokerProc;
use shared::{
    Client, as_user, env_number, first_byte, measure, percentile, throughput,
    write_session_kubeconfig, write_static_kubeconfig,
};

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const POD: &str = "frontend-6d8f7c9b5-x7k2p";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("benches/proxy needs root (the clients run as a test account); skipped");
        return;
    }
    let user = TestUser::create("rpxbench", &[]);
    // `staging` is proxied from the start, so that the proxy listens; `demo` is direct
    // until its static token is taken.
    let broker = BrokerProc::start_stack_proxied("", &["staging"]);
    let rtt = env_number("BENCH_RTT_MS", 0);
    if rtt > 0 {
        put_demo_at_a_distance(&broker, Duration::from_millis(rtt as u64));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (uid, socket) = (user.uid(), broker.socket());
    let direct = write_static_kubeconfig(dir.path(), uid, &socket);
    proxy_demo(&broker, uid);
    let proxied = write_session_kubeconfig(dir.path(), uid, &socket);

    let clients = [
        kubectl_client("kubectl through the proxy", uid, &socket, proxied.clone()),
        kubectl_client("kubectl with a static token", uid, &socket, direct.clone()),
    ];
    let get = ["get", "pods", "-n", "web", "-o", "name"];
    for c in &clients {
        let out = (c.build)(&get).output().unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed.contains(POD),
            "{}: {listed} {}",
            c.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let get_runs = env_number("BENCH_GET_RUNS", 60);
    let gets = measure(&clients, get_runs, |c| elapsed(c, &get).as_secs_f64());
    let get_ratio = median_ratio(&gets[0], &gets[1]);

    let requests = env_number("BENCH_HTTP_REQUESTS", 2000);
    let warm = warm_latency(uid, dir.path(), &proxied, &direct, requests);

    let ttfb_runs = env_number("BENCH_TTFB_RUNS", 30);
    let bulk_runs = env_number("BENCH_BULK_RUNS", 5);
    let mib = env_number("BENCH_BULK_MIB", 100);
    let exec = |args: &[&str]| -> Vec<String> {
        ["exec", POD, "-c", "nginx", "--"]
            .iter()
            .chain(args)
            .map(|a| a.to_string())
            .collect()
    };
    let echo = exec(&["echo", "x"]);
    let echo: Vec<&str> = echo.iter().map(String::as_str).collect();
    let ttfb = measure(&clients, ttfb_runs, |c| first_byte(c, &echo).as_secs_f64());
    let bulk_arg = format!("{mib}M");
    let bulk = exec(&["head", "-c", &bulk_arg, "/dev/zero"]);
    let bulk: Vec<&str> = bulk.iter().map(String::as_str).collect();
    let rate = measure(&clients, bulk_runs, |c| throughput(c, &bulk, mib));

    let distance = match rtt {
        0 => "on loopback".to_string(),
        ms => format!("{ms} ms round trip away (BENCH_RTT_MS)"),
    };
    println!("\nAPI proxy benchmark (kubectl 1.33, the same fake cluster and user, {distance})");
    println!(
        "kubectl get pods ({get_runs} rounds): proxy p50 {:.1} ms, static token p50 {:.1} ms; median ratio {get_ratio:.3}x (goal <= 1.05x)",
        percentile(&gets[0], 0.5) * 1e3,
        percentile(&gets[1], 0.5) * 1e3
    );
    for line in warm {
        println!("{line}");
    }
    let (p, d) = (percentile(&ttfb[0], 0.5), percentile(&ttfb[1], 0.5));
    println!(
        "exec time to first byte ({ttfb_runs} runs): proxy p50 {:.1} ms, direct p50 {:.1} ms: {:.2}x of direct (goal >= 1.0x)",
        p * 1e3,
        d * 1e3,
        d / p
    );
    let (p, d) = (percentile(&rate[0], 0.5), percentile(&rate[1], 0.5));
    println!(
        "exec throughput ({bulk_runs} x {mib} MiB): proxy {p:.0} MiB/s, direct {d:.0} MiB/s: {:.2}x (goal >= 0.9x)",
        p / d
    );
    drop(broker);
}

/// Puts `demo` behind a relay that adds `rtt` per round trip, for kubectl straight to it
/// and for the broker alike: the config's endpoint is the relay's (the fake cluster's
/// certificate is for 127.0.0.1, as the relay is), reloaded.
fn put_demo_at_a_distance(broker: &BrokerProc, rtt: Duration) {
    let endpoint = broker.stack().unwrap().cluster("demo").unwrap().endpoint();
    let target: std::net::SocketAddr = endpoint.trim_start_matches("https://").parse().unwrap();
    let relay = distance::relay(target, rtt);
    let path = broker.config_path().join("config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let edited = config.replace(&endpoint, &format!("https://{relay}"));
    assert_ne!(edited, config, "no {endpoint} in {}", path.display());
    std::fs::write(&path, edited).unwrap();
    broker.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker.log().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload: {}", broker.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Switches `demo` to the proxy (config edit, SIGHUP) and waits until the broker refuses
/// its token, as it does for a proxied cluster.
fn proxy_demo(broker: &BrokerProc, uid: u32) {
    let path = broker.config_path().join("config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let name = "\nname = \"demo\"\n";
    let edited = config.replacen(name, &format!("{name}access = \"proxy\"\n"), 1);
    assert_ne!(edited, config, "no demo cluster in {}", path.display());
    std::fs::write(&path, edited).unwrap();
    broker.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.client(uid, &["token", "--cluster", "demo"]).code != 77 {
        assert!(
            Instant::now() < deadline,
            "demo is not proxied after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// kubectl as the account, with a home of its own (kubectl's discovery cache, as in a
/// session).
fn kubectl_client(name: &'static str, uid: u32, socket: &Path, kubeconfig: PathBuf) -> Client {
    let socket = socket.to_path_buf();
    let home = kubeconfig.with_extension("home");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), Some(uid)).unwrap();
    Client {
        name,
        build: Box::new(move |args| {
            let mut cmd = as_user(KUBECTL, uid, &socket);
            cmd.env("KUBECONFIG", &kubeconfig)
                .env("HOME", &home)
                .args(["--context", "demo/web"])
                .args(args)
                .stdout(Stdio::piped());
            cmd
        }),
    }
}

fn elapsed(client: &Client, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = (client.build)(args).output().unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}: {}",
        client.name,
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The median of `a[i] / b[i]`.
fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    percentile(&ratios, 0.5)
}

/// One server as a kubeconfig's cluster `demo` gives it: URL, CA file, bearer token.
#[derive(serde::Serialize)]
struct Target {
    server: String,
    ca_file: PathBuf,
    token: Option<String>,
}

fn target(kubeconfig: &Path, dir: &Path, label: &str, uid: u32) -> Target {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let config = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == "demo")
        .and_then(|c| c.cluster.clone())
        .expect("demo");
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.unwrap())
        .unwrap();
    let ca_file = dir.join(format!("{label}-ca.pem"));
    std::fs::write(&ca_file, ca).unwrap();
    std::os::unix::fs::chown(&ca_file, Some(uid), None).unwrap();
    let token = config
        .auth_infos
        .iter()
        .find(|u| u.name == "rolesh-demo")
        .and_then(|u| u.auth_info.as_ref()?.token.as_ref())
        .map(|t| secrecy::ExposeSecret::expose_secret(t).to_string());
    Target {
        server: cluster.server.unwrap(),
        ca_file,
        token,
    }
}

/// Warm-connection latency, through the proxy and straight, measured by python3 as the
/// account (the proxy knows its callers by uid). The token goes on stdin, not argv.
fn warm_latency(uid: u32, dir: &Path, proxied: &Path, direct: &Path, n: usize) -> Vec<String> {
    #[derive(serde::Serialize)]
    struct Job {
        proxy: Target,
        direct: Target,
        requests: usize,
    }
    let job = Job {
        proxy: target(proxied, dir, "proxy", uid),
        direct: target(direct, dir, "direct", uid),
        requests: n,
    };
    let mut child = Command::new("python3")
        .args(["-c", WARM_LATENCY])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let job = serde_json::to_vec(&job).unwrap();
    child.stdin.take().unwrap().write_all(&job).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the latency script failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Keep-alive HTTPS, one connection per target, requests interleaved, after a warm-up.
const WARM_LATENCY: &str = r#"
import http.client, json, ssl, statistics, sys, time
from urllib.parse import urlsplit
job = json.load(sys.stdin)
def connect(t):
    u = urlsplit(t["server"])
    c = http.client.HTTPSConnection(u.hostname, u.port,
        context=ssl.create_default_context(cafile=t["ca_file"]))
    h = {"Accept": "application/json"}
    if t["token"] and t["token"] != "rolesh-proxy-no-credential":
        h["Authorization"] = "Bearer " + t["token"]
    return c, u.path.rstrip("/"), h
def once(conn, path):
    c, prefix, h = conn
    t = time.perf_counter()
    c.request("GET", prefix + path, headers=h)
    r = c.getresponse()
    body = r.read()
    took = time.perf_counter() - t
    if r.status != 200:
        sys.exit(f"{prefix}{path}: {r.status} {body[:300]!r}")
    return took
def pct(xs, p):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * p)]
proxy, direct = connect(job["proxy"]), connect(job["direct"])
for path in ["/version", "/api/v1/namespaces/web/pods"]:
    for _ in range(50):
        once(proxy, path); once(direct, path)
    p, d = [], []
    for _ in range(job["requests"]):
        p.append(once(proxy, path)); d.append(once(direct, path))
    ms = lambda s: s * 1e3
    print(f"GET {path} on a warm connection ({job['requests']} each): "
          f"proxy p50 {ms(pct(p, .5)):.3f} ms p99 {ms(pct(p, .99)):.3f} ms; "
          f"direct p50 {ms(pct(d, .5)):.3f} ms p99 {ms(pct(d, .99)):.3f} ms; "
          f"added p50 {ms(pct(p, .5) - pct(d, .5)):.3f} ms, p99 {ms(pct(p, .99) - pct(d, .99)):.3f} ms (goal p99 added < 1 ms)")
"#;
