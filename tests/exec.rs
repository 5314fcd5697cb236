//! `rolesh exec` and the picker end to end: a real broker, the rolesh-testkit stack (fake
//! AWS, fake EKS clusters `demo` and `staging` whose exec runs a real process, in a real
//! PTY for a TTY), real accounts, real kubectl for comparison, and tmux as the terminal
//! for the picker and window resizes.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::BrokerProc;
use common::*;

/// A broker on the stack and one account using it.
struct Env {
    broker: BrokerProc,
    user: TestUser,
    /// World-readable scratch space (kubeconfig for kubectl, scripts for tmux).
    scratch: tempfile::TempDir,
}

const WEB_FRONTEND: &str = "frontend-6d8f7c9b5-x7k2p";
const BACKFILL: &str = "demo/jobs/backfill-2h7x9";

/// Starts the stack and a broker, and creates `name`; `None` (test skipped) unless root.
fn setup(name: &str, drop_in: &str) -> Option<Env> {
    if !need_root() {
        return None;
    }
    let user = TestUser::create(name, &[]);
    let broker = BrokerProc::start_stack(drop_in);
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(Env {
        broker,
        user,
        scratch,
    })
}

impl Env {
    /// `rolesh ARGS` as the account, with nothing on stdin.
    fn rolesh(&self, args: &[&str]) -> Command {
        let mut cmd = rolesh();
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ROLESH_BROKER_SOCKET", self.broker.socket())
            .uid(self.user.uid())
            .stdin(Stdio::null());
        cmd
    }

    fn exec(&self, args: &[&str]) -> Run {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        run(&mut self.rolesh(&full))
    }

    /// Runs `cmd` with `input` on its stdin and returns exit code and raw stdout.
    fn with_stdin(cmd: &mut Command, input: &[u8]) -> (i32, Vec<u8>, String) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The session kubeconfig (`rolesh kubeconfig`) in a file, for kubectl.
    fn kubeconfig(&self) -> PathBuf {
        let r = run(&mut self.rolesh(&["kubeconfig"]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let path = self.scratch.path().join("kubeconfig");
        std::fs::write(&path, r.stdout).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// `kubectl ARGS` as the account, through the session kubeconfig.
    fn kubectl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.scratch.path())
            .env("KUBECONFIG", self.kubeconfig())
            .env("ROLESH_BROKER_SOCKET", self.broker.socket())
            .uid(self.user.uid())
            .stdin(Stdio::null());
        cmd
    }

    fn demo(&self) -> &rolesh_testkit::fake_k8s::FakeK8s {
        self.broker.stack().unwrap().cluster("demo").unwrap()
    }
}

#[test]
fn the_remote_exit_code_is_rolesh_exit_code() {
    let Some(env) = setup("rexcodes", "") else {
        return;
    };
    for (script, code) in [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)] {
        let r = env.exec(&[BACKFILL, "--", "sh", "-c", script]);
        assert_eq!(r.code, code, "{script}: {}", r.stderr);
    }
    let r = env.exec(&[BACKFILL, "--", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "out\n"), "{}", r.stderr);
    assert_eq!(r.stderr, "err\n", "stderr stays stderr without a TTY");
    // A command that cannot start: 1, with the server's reason.
    let r = env.exec(&[BACKFILL, "--", "no-such-command"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("rolesh: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("executable file not found"),
        "{}",
        r.stderr
    );
}

#[test]
fn stdin_is_streamed_and_its_eof_reaches_the_remote() {
    let Some(env) = setup("rexstdin", "") else {
        return;
    };
    let (code, out, err) =
        Env::with_stdin(&mut env.rolesh(&["exec", BACKFILL, "--", "cat"]), b"hi\n");
    assert_eq!((code, out.as_slice()), (0, b"hi\n".as_slice()), "{err}");
    // More than any buffer, and the remote counts it only once stdin has ended.
    let input = vec![b'x'; 3 * 1024 * 1024 + 7];
    let (code, out, err) = Env::with_stdin(
        &mut env.rolesh(&["exec", BACKFILL, "--", "wc", "-c"]),
        &input,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        input.len().to_string()
    );
}

#[test]
fn targets_outside_the_allowlist_are_refused_before_any_api_call() {
    let Some(env) = setup("rexdenied", "") else {
        return;
    };
    let clusters = env.broker.stack().unwrap().clusters();
    for c in clusters {
        c.handle().clear_events();
    }
    for target in [
        "kube-system/etcd-0",
        "demo/kube-system/etcd-0",
        "demo/default/x",
    ] {
        let r = env.exec(&[target, "--", "true"]);
        assert_eq!(r.code, 77, "{target}: {}", r.stderr);
        assert!(r.stderr.starts_with("rolesh: "), "{}", r.stderr);
        assert!(
            r.stderr.contains("web"),
            "names what is allowed: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    }
    let r = env.exec(&["prod/web/x/c", "--", "true"]);
    assert_eq!(r.code, 77, "an unknown cluster: {}", r.stderr);
    assert!(r.stderr.contains("demo, staging"), "{}", r.stderr);
    let r = env.exec(&["-n", "kube-system", "--", "true"]);
    assert_eq!(r.code, 77, "-n outside the allowlist: {}", r.stderr);
    for c in clusters {
        assert!(
            c.handle().events().is_empty(),
            "no request may reach {}: {:?}",
            c.cluster_name(),
            c.handle().events()
        );
    }

    // In an allowed namespace, a pod that matches none of its selectors: refused after
    // reading its labels, and never exec'ed into.
    let r = env.exec(&["demo/web/api-7c9d8e6f5-m3n8p", "--", "true"]);
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(r.stderr.contains("matches none"), "{}", r.stderr);
    let events = env.demo().handle().events();
    assert!(
        events
            .iter()
            .all(|e| e.method == "GET" && !e.path.ends_with("/exec")),
        "{events:?}"
    );
}

#[test]
fn selectors_are_ored_and_set_based_ones_work() {
    let Some(env) = setup("rexselect", "") else {
        return;
    };
    let cases = [
        // app=frontend
        (format!("demo/web/{WEB_FRONTEND}/nginx"), 0),
        // only `tier in (web,edge)` (set-based)
        ("demo/web/edge-proxy-5f6c7d8b9-h2j5k".to_string(), 0),
        // neither
        ("demo/web/redis-0".to_string(), 77),
        // a namespace without selectors: every pod
        ("demo/jobs/backfill-2h7x9".to_string(), 0),
    ];
    for (target, code) in cases {
        let r = env.exec(&[
            &target,
            "--",
            "sh",
            "-c",
            "echo $ROLESH_FAKE_POD/$ROLESH_FAKE_CONTAINER",
        ]);
        assert_eq!(r.code, code, "{target}: {}", r.stderr);
        if code == 0 {
            let pod_and_container = target.split('/').skip(2).collect::<Vec<_>>().join("/");
            assert!(
                r.stdout.starts_with(&pod_and_container),
                "{target}: {}",
                r.stdout
            );
        }
    }
}

#[test]
fn without_a_terminal_the_picker_lists_choices_and_refuses_to_wait() {
    let Some(env) = setup("rexlist", "") else {
        return;
    };
    let refusal = |level: &str, form: &str| {
        format!("rolesh: more than one {level} matches; name one: rolesh exec {form}\n")
    };
    // Pods of demo/web matching ANY selector, each once, running ones first.
    let r = env.exec(&["demo/web", "--", "true"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let expected = [
        "demo/web/edge-proxy-5f6c7d8b9-h2j5k",
        "demo/web/frontend-6d8f7c9b5-q9m4z",
        "demo/web/frontend-6d8f7c9b5-x7k2p",
        "demo/web/frontend-canary-7b5d4c8f9-z8r2w",
    ];
    assert_eq!(
        r.stderr,
        format!(
            "{}\n{}",
            expected.join("\n"),
            refusal("pod", "CLUSTER/NS/POD")
        )
    );
    // Clusters; then the namespaces of one: only the allowlisted ones, never kube-system.
    let r = env.exec(&[]);
    assert_eq!(
        (r.code, r.stderr.clone()),
        (
            2,
            format!("demo\nstaging\n{}", refusal("cluster", "CLUSTER/NS/POD"))
        )
    );
    let r = env.exec(&["--cluster", "staging"]);
    assert_eq!(
        (r.code, r.stderr.clone()),
        (
            2,
            format!(
                "staging/web\nstaging/jobs\n{}",
                refusal("namespace", "CLUSTER/NS/POD")
            )
        )
    );
    // Containers: init and ephemeral ones too.
    let r = env.exec(&["demo/web/frontend-6d8f7c9b5-q9m4z"]);
    let pod = "demo/web/frontend-6d8f7c9b5-q9m4z";
    assert_eq!(
        r.stderr,
        format!(
            "{pod}/nginx\n{pod}/log-shipper\n{pod}/migrate\n{pod}/debugger\n{}",
            refusal("container", "CLUSTER/NS/POD/CONTAINER")
        )
    );
    // A level with one choice is skipped: demo/jobs has one running pod and a finished
    // one, so it still asks; -n narrows the cluster to the first allowing it.
    let r = env.exec(&["-n", "jobs", "--", "true"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("demo/jobs/backfill-2h7x9\ndemo/jobs/nightly-report"),
        "{}",
        r.stderr
    );
}

#[test]
fn ten_mebibytes_of_stdout_are_byte_identical_to_kubectl_exec() {
    let Some(env) = setup("rexbytes", "") else {
        return;
    };
    // Every byte value, CR and LF included, deterministically.
    let generate =
        "import random,sys; sys.stdout.buffer.write(random.Random(7).randbytes(10*1024*1024))";
    let expected = Command::new("python3")
        .args(["-c", generate])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(expected.len(), 10 * 1024 * 1024);
    let ours = env
        .rolesh(&["exec", BACKFILL, "--", "python3", "-c", generate])
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = env
        .kubectl(&[
            "--context",
            "demo/jobs",
            "exec",
            "backfill-2h7x9",
            "--",
            "python3",
            "-c",
            generate,
        ])
        .output()
        .unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert!(ours.stdout == theirs.stdout, "rolesh and kubectl differ");
    assert!(
        ours.stdout == expected,
        "rolesh's output is not what the command wrote"
    );
}
