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
use std::time::Duration;

use common::broker::BrokerProc;
use common::tmux::Tmux;
use common::*;

common::harness::tests!(
    root: [
        the_remote_exit_code_is_rolesh_exit_code,
        stdin_is_streamed_and_its_eof_reaches_the_remote,
        targets_outside_the_allowlist_are_refused_before_any_api_call,
        selectors_are_ored_and_set_based_ones_work,
        without_a_terminal_the_picker_lists_choices_and_refuses_to_wait,
        without_a_terminal_a_pod_with_several_containers_defaults_as_kubectl_exec_does,
        ten_mebibytes_of_stdout_are_byte_identical_to_kubectl_exec,
        window_resizes_reach_the_remote_terminal,
        the_picker_in_a_terminal_filters_as_you_type_and_passes_ctrl_c_through,
        picker_mode_comes_back_after_each_exec_until_q_or_ctrl_d,
        init_and_ephemeral_containers_are_marked_and_esc_cancels,
        sigterm_restores_the_terminal_and_still_writes_the_exec_event,
        exec_command_comes_from_the_config_and_a_failed_exec_returns_to_the_picker,
        at_a_terminal_with_stdout_redirected_the_bytes_come_through_unchanged,
    ],
);

/// A broker on the stack and one account using it.
struct Env {
    broker: BrokerProc,
    user: TestUser,
    /// World-readable scratch space (kubeconfig for kubectl, scripts for tmux).
    scratch: tempfile::TempDir,
}

const WEB_FRONTEND: &str = "frontend-6d8f7c9b5-x7k2p";
const BACKFILL: &str = "demo/jobs/backfill-2h7x9";

/// Starts the stack and a broker, and creates `name` (root: the tests are declared so).
fn setup(name: &str, drop_in: &str) -> Env {
    let user = TestUser::create(name, &[]);
    let broker = BrokerProc::start_stack(drop_in);
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    Env {
        broker,
        user,
        scratch,
    }
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

fn the_remote_exit_code_is_rolesh_exit_code() {
    let env = setup("rexcodes", "");
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

fn stdin_is_streamed_and_its_eof_reaches_the_remote() {
    let env = setup("rexstdin", "");
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

fn targets_outside_the_allowlist_are_refused_before_any_api_call() {
    let env = setup("rexdenied", "");
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

fn selectors_are_ored_and_set_based_ones_work() {
    let env = setup("rexselect", "");
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

fn without_a_terminal_the_picker_lists_choices_and_refuses_to_wait() {
    let env = setup("rexlist", "");
    let refusal = |level: &str, form: &str| {
        format!("rolesh: more than one {level} matches; name one: rolesh exec {form}\n")
    };
    // Pods of demo/web matching ANY selector, each once, running ones first; listed with
    // the user's own token, one list call per selector.
    env.demo().handle().clear_events();
    let r = env.exec(&["demo/web", "--", "true"]);
    let events = env.demo().handle().events();
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert_eq!(
            (e.verb.as_str(), e.user.as_deref()),
            ("list", Some("rexlist")),
            "{e:?}"
        );
    }
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
    // (Containers are not asked for: see the next test.) -n narrows the cluster to the
    // first allowing the namespace; running pods first.
    let r = env.exec(&["-n", "jobs", "--", "true"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "demo/jobs/backfill-2h7x9\ndemo/jobs/ingest-5b8d7c6f4-r7t2m\ndemo/jobs/nightly-report"
        ),
        "{}",
        r.stderr
    );
}

/// Issue 22: scripts written for `kubectl exec` name no container. Without a terminal,
/// `rolesh exec` takes the one kubectl takes — the `kubectl.kubernetes.io/default-container`
/// annotation's, else the first — and prints kubectl's notice when it had to choose.
fn without_a_terminal_a_pod_with_several_containers_defaults_as_kubectl_exec_does() {
    let env = setup("rexdefault", "");
    let script = "echo in:$ROLESH_FAKE_CONTAINER; exit 7";
    let cases = [
        (
            "web",
            WEB_FRONTEND,
            "nginx",
            "Defaulted container \"nginx\" out of: nginx, log-shipper, migrate (init)\n",
        ),
        (
            "web",
            "frontend-6d8f7c9b5-q9m4z",
            "nginx",
            "Defaulted container \"nginx\" out of: nginx, log-shipper, debugger (ephem), migrate (init)\n",
        ),
        // The annotation names the second container: taken without a word.
        ("jobs", "ingest-5b8d7c6f4-r7t2m", "ingest", ""),
    ];
    for (namespace, pod, container, notice) in cases {
        let target = format!("demo/{namespace}/{pod}");
        let r = env.exec(&[&target, "--", "sh", "-c", script]);
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (7, format!("in:{container}\n").as_str(), notice),
            "{target}"
        );
        // What kubectl itself does with the same pod (it adds its own line for the exit
        // code).
        let k = run(&mut env.kubectl(&["exec", "-n", namespace, pod, "--", "sh", "-c", script]));
        assert_eq!(
            (k.code, k.stdout.as_str()),
            (7, format!("in:{container}\n").as_str()),
            "kubectl exec {pod}: {}",
            k.stderr
        );
        assert!(
            k.stderr.starts_with(notice),
            "kubectl exec {pod}: {}",
            k.stderr
        );
        assert_eq!(
            k.stderr.contains("Defaulted container"),
            !notice.is_empty(),
            "kubectl exec {pod}: {}",
            k.stderr
        );
    }
}

fn ten_mebibytes_of_stdout_are_byte_identical_to_kubectl_exec() {
    let env = setup("rexbytes", "");
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

/// `rolesh exec ARGS` as the test user in a real terminal (100×30); afterwards the screen
/// says whether the terminal settings came back (`TTY=same`) and the exit code (`EXIT=`).
fn exec_terminal(env: &Env, label: &str, rolesh_args: &str) -> Tmux {
    let uid = env.user.uid();
    let script = format!(
        "before=$(stty -g); setpriv --reuid={uid} --regid={uid} --clear-groups env -i \
         PATH=/usr/bin:/bin TERM=xterm ROLESH_BROKER_SOCKET={socket} {rolesh} exec {rolesh_args}; \
         code=$?; if [ \"$(stty -g)\" = \"$before\" ]; then echo TTY=same; else echo TTY=changed; fi; \
         echo EXIT=$code; sleep 600",
        socket = env.broker.socket().display(),
        rolesh = env!("CARGO_BIN_EXE_rolesh"),
    );
    Tmux::start(&format!("exec-{label}"), 100, 30, &script)
}

/// Waits for the end of `exec_terminal`'s command: the terminal settings came back and
/// rolesh exited with `code`.
fn assert_exited_with_terminal_restored(term: &Tmux, code: u8) {
    let screen = term.wait_for("EXIT=");
    let expected = format!("TTY=same\nEXIT={code}");
    assert!(screen.contains(&expected), "{screen}");
}

/// A shell loop that waits while the terminal's size is still `rows_cols` ("24 80").
fn while_size_is(rows_cols: &str) -> String {
    format!("while [ \"$(stty size)\" = \"{rows_cols}\" ]; do sleep 0.05; done")
}

fn window_resizes_reach_the_remote_terminal() {
    let env = setup("rexresize", "");
    let term = exec_terminal(
        &env,
        "resize",
        &format!(
            "{BACKFILL} -- sh -c '{}; stty size; read b; {}; stty size; read c; exit 5'",
            while_size_is("24 80"),
            while_size_is("30 100"),
        ),
    );
    // Each size travels on the resize channel (the first right after the connection is
    // up, racing the command's start, as with kubectl): the remote waits for a size other
    // than the one it had, so a size that never arrives fails the test (timeout) and a
    // slow one does not.
    term.wait_for_line("30 100");
    term.resize(120, 40);
    term.keys(&["Enter"]);
    term.wait_for_line("40 120");
    term.keys(&["Enter"]);
    assert_exited_with_terminal_restored(&term, 5);
}

fn the_picker_in_a_terminal_filters_as_you_type_and_passes_ctrl_c_through() {
    let env = setup("rexpicker", "");
    let term = exec_terminal(&env, "picker", "");
    term.wait_for_all(&["Cluster", "demo", "staging"]);
    term.type_text("stag");
    term.wait("demo filtered out", |s| {
        s.contains("staging") && !s.contains("demo")
    });
    term.keys(&["Enter"]);
    let screen = term.wait_for_all(&["Namespace in staging", "app=frontend", "all pods"]);
    assert!(!screen.contains("kube-system"), "{screen}");
    term.type_text("jobs");
    term.keys(&["Enter"]);
    // The pods with their status, readiness, age and node.
    let screen = term.wait_for_all(&[
        "Pod in staging/jobs",
        "backfill-2h7x9",
        "nightly-report",
        "Running",
        "Completed",
        "1/1",
        "20m",
        "ip-10-0-3-12.ec2.internal",
    ]);
    let running = screen.find("backfill-2h7x9").unwrap();
    let finished = screen.find("nightly-report").unwrap();
    assert!(running < finished, "running pods first:\n{screen}");
    // One container: that level is skipped, and the default command is a shell.
    term.keys(&["Enter"]);
    term.wait_for_shell();
    term.type_text("echo at:$ROLESH_FAKE_CLUSTER/$ROLESH_FAKE_NAMESPACE/$ROLESH_FAKE_POD");
    term.keys(&["Enter"]);
    term.wait_for_line("at:staging/jobs/backfill-2h7x9");
    // Ctrl-C goes to the remote command, not to rolesh.
    term.type_text("sleep 300");
    term.keys(&["Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    term.keys(&["C-c"]);
    term.type_text("echo after-ctrl-$((1+1))");
    term.keys(&["Enter"]);
    term.wait_for_line("after-ctrl-2");
    term.type_text("exit 7");
    term.keys(&["Enter"]);
    assert_exited_with_terminal_restored(&term, 7);
}

fn picker_mode_comes_back_after_each_exec_until_q_or_ctrl_d() {
    let env = setup("rexrepeat", "");
    let term = exec_terminal(&env, "repeat", "--repeat --cluster demo -n jobs");
    // The active prompt is the last one on the screen; earlier rounds leave their answers.
    let prompt = |s: &str| {
        s.rsplit("Pod in demo/jobs")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    for round in 0..3 {
        let screen = term.wait("a fresh picker", |s| {
            prompt(s).contains("q  end the session")
        });
        assert!(prompt(&screen).contains("backfill-2h7x9"), "{screen}");
        if round == 2 {
            break;
        }
        term.type_text("back");
        term.keys(&["Enter"]);
        term.wait_for_shell();
        term.type_text(&format!("echo round-$((40+{round}))"));
        term.keys(&["Enter"]);
        term.wait_for_line(&format!("round-{}", 40 + round));
        term.type_text("exit 3");
        term.keys(&["Enter"]);
    }
    // `q` filters down to the quit entry.
    term.type_text("q");
    term.wait("only the quit entry", |s| {
        let p = prompt(s);
        p.contains("end the session") && !p.contains("backfill")
    });
    term.keys(&["Enter"]);
    assert_exited_with_terminal_restored(&term, 0);

    let term = exec_terminal(&env, "repeat-d", "--repeat --cluster demo -n jobs");
    term.wait_for("Pod in demo/jobs");
    term.keys(&["C-d"]);
    assert_exited_with_terminal_restored(&term, 0);
}

fn init_and_ephemeral_containers_are_marked_and_esc_cancels() {
    let env = setup("rexctr", "");
    let term = exec_terminal(&env, "containers", "demo/web/frontend-6d8f7c9b5-q9m4z");
    term.wait_for_all(&[
        "Container in demo/web/frontend-6d8f7c9b5-q9m4z",
        "nginx",
        "log-shipper",
        "migrate  (init)",
        "debugger  (ephemeral)",
    ]);
    term.keys(&["Escape"]);
    assert_exited_with_terminal_restored(&term, 130);
}

/// The rolesh process the account runs in `term`.
fn rolesh_pid(env: &Env) -> i32 {
    let out = Command::new("pgrep")
        .args(["-u", &env.user.uid().to_string(), "-x", "rolesh"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 1, "one rolesh process: {text}");
    pids[0]
}

fn terminate(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

/// The `exec` events the broker wrote to the JSON Lines audit file at `path`.
fn exec_events(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "exec")
        .collect()
}

fn sigterm_restores_the_terminal_and_still_writes_the_exec_event() {
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_file = audit_dir.path().join("audit.jsonl");
    let drop_in = format!("[audit]\nfile = \"{}\"\n", audit_file.display());
    let env = setup("rexsignal", &drop_in);
    // In a raw-mode exec.
    let term = exec_terminal(
        &env,
        "sig-exec",
        &format!("{BACKFILL} -- sh -c 'echo started; sleep 30'"),
    );
    term.wait_for_line("started");
    terminate(rolesh_pid(&env));
    assert_exited_with_terminal_restored(&term, 143);
    drop(term);
    // The pod the user was in is on the trail, with why the exec ended.
    let events = exec_events(&audit_file);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["pod"], "backfill-2h7x9");
    assert_eq!(events[0]["command"], "sh -c 'echo started; sleep 30'");
    assert_eq!(events[0]["exit_code"], 143);
    assert_eq!(events[0]["reason"], "terminated");

    // In picker mode, back at the picker after an exec (signal handlers installed then
    // once kept a hung-up picker alive).
    let term = exec_terminal(&env, "sig-picker", "--repeat --cluster demo -n jobs");
    term.wait_for("q  end the session");
    term.keys(&["Enter"]);
    term.wait_for_shell();
    term.type_text("exit");
    term.keys(&["Enter"]);
    term.wait("the picker again", |s| {
        s.matches("Pod in demo/jobs").count() == 2 && s.contains("q  end the session")
    });
    terminate(rolesh_pid(&env));
    assert_exited_with_terminal_restored(&term, 143);
    // The exec that ended before the signal has its own event, without a reason; the
    // signal at the picker adds none.
    let events = exec_events(&audit_file);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["exit_code"], 0);
    assert!(events[1].get("reason").is_none(), "{events:?}");
}

fn exec_command_comes_from_the_config_and_a_failed_exec_returns_to_the_picker() {
    let env = setup(
        "rexcmd",
        "[session]\nexec_command = [\"no-such-shell\", \"-l\"]\n",
    );
    // Without a command on the command line, exec_command runs.
    let r = env.exec(&[BACKFILL]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("\"no-such-shell\": executable file not found"),
        "{}",
        r.stderr
    );
    // In picker mode the failure is shown and the picker comes back.
    let term = exec_terminal(&env, "failed", "--repeat --cluster demo -n jobs");
    term.wait_for("q  end the session");
    term.keys(&["Enter"]);
    term.wait("the picker again", |s| {
        s.contains("executable file not found") && s.matches("Pod in demo/jobs").count() == 2
    });
    term.keys(&["C-d"]);
    assert_exited_with_terminal_restored(&term, 0);
}

fn at_a_terminal_with_stdout_redirected_the_bytes_come_through_unchanged() {
    let env = setup("rexredir", "");
    let copy = env.scratch.path().join("copy");
    let term = exec_terminal(
        &env,
        "redirect",
        &format!(
            "{BACKFILL} -- sh -c 'test -t 1 && echo tty; printf \"a\\nb\\r\\n\"' > {}",
            copy.display()
        ),
    );
    assert_exited_with_terminal_restored(&term, 0);
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        b"a\nb\r\n",
        "no remote TTY, no CR added"
    );
}
