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
#[path = "shared/mod.rs"]
mod shared;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::TestUser;
use common::broker::BrokerProc;
use shared::{
    Client, as_user, env_number, first_byte, measure, percentile, throughput,
    write_session_kubeconfig, write_static_kubeconfig,
};

const POD: &str = "backfill-2h7x9";

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
