//! The login shell end to end, one scenario a test: a real OpenSSH server on a loopback
//! port, real accounts whose login shell is rolesh, key authentication, the broker on its
//! compiled-in socket (/run/rolesh/broker.sock) and the fake AWS and EKS clusters, shared by
//! the tests of this binary (session_ssh/fixture.rs), which run one at a time.
//!
//! Each test makes what it checks: a test of the audit trail or of the recordings reads
//! only what was written after it started, by its own sessions.

mod common;
#[path = "session_ssh/fixture.rs"]
mod fixture;
#[path = "session_ssh/observe.rs"]
mod observe;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::*;
use fixture::{
    ALICE, ALLOWED, BANNER, CARL, DENIED, Fixture, IDLE, PICK, REC, fixture, wait_with_deadline,
};
use observe::*;
use serde_json::{Value, json};

common::harness::tests!(
    root: [
        // `ssh bastion CMD`
        kubectl_over_ssh_sees_the_in_memory_contexts,
        the_cluster_sees_the_unix_user,
        kubectl_over_ssh_reaches_a_cluster_found_by_discovery,
        helm_reaches_the_cluster_as_the_user,
        rbac_still_refuses_kube_system,
        sshd_environment_does_not_reach_the_command,
        session_kubeconfig_is_in_memory_and_gone_after_the_session,
        bash_is_refused_with_126,
        a_refused_command_is_audited_with_126,
        pipes_and_substitutions_are_plain_arguments,
        scp_is_refused,
        scp_upload_writes_nothing,
        denied_user_gets_77,
        ssh_t_command_output_comes_back_through_the_session_pty,
        ssh_t_command_exit_code_is_kubectls,
        killed_ssh_client_leaves_no_process,
        broker_down_is_one_line_exit_1,
        a_malformed_answer_from_the_broker_refuses_the_login,
        // Interactive logins
        interactive_login_shows_the_banner_and_exits_with_the_shells_code,
        interactive_login_kubectl_gets_a_token_from_the_broker,
        interactive_login_runs_on_a_pty_with_a_size,
        kubectx_and_kubens_switch_the_session_contexts,
        interactive_login_has_a_private_tmp,
        a_process_that_leaves_the_terminal_ends_with_the_session,
        idle_session_is_warned_then_ended,
        // Restricted mode
        restricted_prompt_offers_builtins_and_allowed_commands,
        restricted_prompt_refuses_shell_features,
        // Picker mode
        picker_mode_execs_and_returns,
        picker_exec_events_name_the_pod,
        dropped_connection_in_a_pod_ends_the_session,
        dropped_connection_in_a_pod_is_audited_as_a_hangup,
        // record = "all"
        record_all_records_a_command,
        a_recorded_ssh_session_is_streamed_to_s3,
        record_all_records_an_interactive_login,
        killed_session_monitor_leaves_an_abnormally_ended_recording,
        // The audit trail
        audit_trail_links_a_session_by_id,
        login_event_has_the_client_address_and_private_tmp,
        client_setenv_cannot_choose_session_id_or_address,
    ],
);

// --- `ssh bastion CMD` ----------------------------------------------------------------

/// The contexts come from the in-memory kubeconfig the session was given.
fn kubectl_over_ssh_sees_the_in_memory_contexts() {
    let fx = fixture();
    let r = run(&mut fx.ssh(
        ALICE,
        &[],
        &["kubectl", "config", "get-contexts", "-o", "name"],
    ));
    assert_eq!(r.code, 0, "{}\nsshd: {}", r.stderr, fx.sshd_log());
    assert_eq!(
        r.stdout,
        "demo\ndemo/jobs\ndemo/web\nstaging\nstaging/jobs\nstaging/web\n"
    );
}

/// `ssh alice@bastion kubectl get pods -n web`: the cluster sees the Unix user.
fn the_cluster_sees_the_unix_user() {
    let fx = fixture();
    fx.demo().handle().clear_events();
    let r = run(&mut fx.ssh(
        ALICE,
        &[],
        &["kubectl", "get", "pods", "-n", "web", "-o", "name"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("pod/"), "{}", r.stdout);
    let users: Vec<Option<String>> = fx
        .demo()
        .handle()
        .events()
        .into_iter()
        .map(|e| e.user)
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some(ALICE)),
        "{users:?}"
    );
}

/// A bastion whose configuration has `[[discovery]]` and no `[[cluster]]`: the session's
/// kubeconfig holds what the broker found, and kubectl over ssh reaches it as the user.
fn kubectl_over_ssh_reaches_a_cluster_found_by_discovery() {
    let fx = fixture();
    fx.with_discovering_broker(|| {
        let r = run(&mut fx.ssh(
            ALICE,
            &[],
            &["kubectl", "config", "get-contexts", "-o", "name"],
        ));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let contexts: Vec<&str> = r.stdout.lines().collect();
        assert!(contexts.contains(&"demo/web"), "{contexts:?}");
        assert!(contexts.contains(&"staging/web"), "{contexts:?}");
        assert!(
            !r.stdout.contains("next") && !r.stdout.contains("sandbox"),
            "{contexts:?}"
        );
        let r = run(&mut fx.ssh(
            ALICE,
            &[],
            &[
                "kubectl",
                "--context",
                "staging/web",
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
        ));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout.trim(), ALICE);
    });
}

/// helm loads the same in-memory kubeconfig (client-go's loader, as kubectl does): it
/// reaches the cluster as the user, whose RBAC (pods only) refuses helm's release secrets:
/// the server's answer, for the right user.
fn helm_reaches_the_cluster_as_the_user() {
    require(
        "helm 3 on /usr/local/bin (scripts/setup installs it)",
        Path::new("/usr/local/bin/helm").exists(),
    );
    let fx = fixture();
    fx.demo().handle().clear_events();
    let r = run(&mut fx.ssh(ALICE, &[], &["helm", "list", "-n", "web"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("secrets is forbidden: User \"rsealice\" cannot list resource \"secrets\""),
        "{}",
        r.stderr
    );
    let seen = fx.demo().handle().events();
    assert!(
        seen.iter().any(|e| e.user.as_deref() == Some(ALICE)
            && e.path == "/api/v1/namespaces/web/secrets"
            && e.status == 403),
        "{seen:?}"
    );
}

fn rbac_still_refuses_kube_system() {
    let fx = fixture();
    let r = run(&mut fx.ssh(ALICE, &[], &["kubectl", "get", "pods", "-n", "kube-system"]));
    assert_ne!(r.code, 0, "RBAC on the cluster still decides");
    assert!(
        r.stderr.to_lowercase().contains("forbidden"),
        "{}",
        r.stderr
    );
}

/// What a client sends with SetEnv, and sshd passes on (`AcceptEnv *`).
const FORGED_SESSION_ID: &str = "0123456789abcdef01234567";

/// `ssh -o SetEnv=… bastion env` with variables that would hijack AWS or kubectl, and a
/// session id and client address of the client's choosing. (Variables the loader or a
/// shell reads get the session refused: session_attacks.rs.)
fn env_with_forged_variables(fx: &Fixture) -> Run {
    let set_env = format!(
        "SetEnv=AWS_SECRET_ACCESS_KEY=stolen KUBECONFIG=/tmp/evil \
         ROLESH_SESSION_ID={FORGED_SESSION_ID} SSH_CLIENT=forged"
    );
    let r = run(&mut fx.ssh(ALICE, &["-o", &set_env], &["env"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// `VAR=` of `env`'s output.
fn env_var(env: &str, var: &str) -> String {
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")))
        .unwrap_or_else(|| panic!("{var} is not set:\n{env}"))
        .to_string()
}

/// The environment sshd passes (AcceptEnv *) does not reach the command.
fn sshd_environment_does_not_reach_the_command() {
    let fx = fixture();
    let r = env_with_forged_variables(&fx);
    // The session sets AWS_CONFIG_FILE and friends itself (session/tools.rs); the client's
    // AWS_SECRET_ACCESS_KEY must not arrive.
    for bad in ["AWS_SECRET_ACCESS_KEY", "/tmp/evil", "stolen"] {
        assert!(!r.stdout.contains(bad), "{bad} leaked:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("USER=rsealice\n"), "{}", r.stdout);
    assert_ne!(
        env_var(&r.stdout, "ROLESH_SESSION_ID"),
        FORGED_SESSION_ID,
        "the client chose the session id"
    );
    assert!(!r.stdout.contains("forged"), "{}", r.stdout);
}

/// The session's kubeconfig lives in its private /tmp (a tmpfs of its own mount
/// namespace): the host never sees it, during the session or after.
fn session_kubeconfig_is_in_memory_and_gone_after_the_session() {
    let fx = fixture();
    let r = run(&mut fx.ssh(ALICE, &[], &["env"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kubeconfig = env_var(&r.stdout, "KUBECONFIG");
    let first = kubeconfig.split(':').next().unwrap();
    assert!(first.starts_with("/tmp/rolesh-"), "{kubeconfig}");
    let dir = Path::new(first).parent().unwrap();
    assert!(
        !dir.exists(),
        "the session's kubeconfig directory {} is on the host",
        dir.display()
    );
}

fn bash_is_refused_with_126() {
    let fx = fixture();
    let r = run(&mut fx.ssh(ALICE, &[], &["bash", "-i"]));
    assert_eq!(r.code, 126);
    assert_eq!(
        r.stderr,
        format!("rolesh: 'bash' is not allowed on this bastion (allowed: {ALLOWED})\n")
    );
}

fn a_refused_command_is_audited_with_126() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let r = run(&mut fx.ssh(ALICE, &[], &["bash", "-i"]));
    assert_eq!(r.code, 126);
    let audit = fx.wait_for_audit(mark, "the refused command", |es| {
        !events_of(es, ALICE, "command").is_empty()
    });
    let refused = events_of(&audit, ALICE, "command")
        .into_iter()
        .find(|e| e["command"] == "bash -i")
        .expect("a refused command is audited");
    assert_eq!(refused["exit_code"], 126, "{refused}");
}

/// No shell ever sees the command: `|` and `$(…)` are plain arguments to `env`, which then
/// fails to find a program called "|" or "$(id)".
fn pipes_and_substitutions_are_plain_arguments() {
    let fx = fixture();
    for line in ["env | id", "env $(id)"] {
        let r = run(&mut fx.ssh(ALICE, &[], &[line]));
        assert_eq!(r.code, 127, "{line}: {}", r.stderr);
        assert!(!r.stdout.contains("uid="), "{line} ran id: {}", r.stdout);
    }
}

/// What scp runs on the server side.
fn scp_is_refused() {
    let fx = fixture();
    let r = run(&mut fx.ssh(ALICE, &[], &["scp", "-t", "/tmp"]));
    assert_eq!(r.code, 126);
    assert_eq!(
        r.stderr,
        "rolesh: file transfer is disabled on this bastion\n"
    );
}

fn scp_upload_writes_nothing() {
    let fx = fixture();
    let target = Path::new("/tmp/rolesh-scp-probe");
    let _ = std::fs::remove_file(target);
    let probe = fx.scratch().join("probe.txt");
    std::fs::write(&probe, "x").unwrap();
    let r = run(&mut fx.scp(&probe, ALICE, &target.display().to_string()));
    assert_ne!(r.code, 0);
    assert!(!target.exists());
}

fn denied_user_gets_77() {
    let fx = fixture();
    let r = run(&mut fx.ssh(DENIED, &[], &["kubectl", "version", "--client"]));
    assert_eq!(r.code, 77);
    assert_eq!(
        r.stderr,
        "rolesh: user rsedenied is in [mapping] deny_users\n"
    );
}

/// `ssh -t bastion CMD`: the command runs on the session's own pty, and its output comes
/// back through the relay.
fn ssh_t_command_output_comes_back_through_the_session_pty() {
    let fx = fixture();
    let r = run(&mut fx.ssh(ALICE, &["-tt"], &["kubectl", "config", "current-context"]));
    assert_eq!((r.code, r.stdout.as_str()), (0, "demo\r\n"), "{}", r.stderr);
}

fn ssh_t_command_exit_code_is_kubectls() {
    let fx = fixture();
    let r = run(&mut fx.ssh(
        ALICE,
        &["-tt"],
        &["kubectl", "get", "pods", "-n", "kube-system"],
    ));
    assert_eq!(r.code, 1, "kubectl's own exit code: {}", r.stdout);
}

/// A killed ssh client leaves nothing of the user's behind.
fn killed_ssh_client_leaves_no_process() {
    let fx = fixture();
    let mut client = fx
        .ssh(ALICE, &[], &["sleep", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for_pid(&["-u", ALICE, "-x", "sleep"]).is_some(),
        "sleep never started"
    );
    client.kill().unwrap();
    client.wait().unwrap();
    assert_no_processes_left(ALICE);
}

/// The broker down: one line, exit 1, no shell; with and without a terminal.
fn broker_down_is_one_line_exit_1() {
    let mut fx = fixture();
    fx.stop_broker();
    for extra in [&[][..], &["-tt"][..]] {
        let r = run(&mut fx.ssh(ALICE, extra, &["kubectl", "version", "--client"]));
        assert_eq!(r.code, 1, "{extra:?}: {} {}", r.stdout, r.stderr);
        let text = format!("{}{}", r.stdout, r.stderr).replace('\r', "");
        assert_eq!(
            text.trim_end(),
            "rolesh: the credential broker is not running (systemctl status rolesh-broker)",
            "{extra:?}"
        );
    }
    // (Also started again before the next test if this one failed.)
    fx.start_broker();
}

/// A broker whose `session_start` answer lacks the session's shell (another version, or
/// not the broker at all): the login is refused with one clear line, and nothing of the
/// user runs; no default shell is made up.
fn a_malformed_answer_from_the_broker_refuses_the_login() {
    let fx = fixture();
    let without_shell = |answer: &mut Value| {
        let session = answer["session"].as_object_mut().expect("whoami's session");
        assert!(session.remove("shell").is_some(), "{session:?}");
    };
    let r = fx.with_stand_in_broker(without_shell, || {
        run(&mut fx.ssh(ALICE, &[], &["kubectl", "version", "--client"]))
    });
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "rolesh: the credential broker sent a malformed answer to `session_start` \
         (missing field `shell`); is it the same version as this rolesh?\n"
    );
    assert_no_processes_left(ALICE);
}

// --- Interactive logins ---------------------------------------------------------------

/// The banner, then the shell, whose exit code is rolesh's.
fn interactive_login_shows_the_banner_and_exits_with_the_shells_code() {
    let fx = fixture();
    let out = fx.login_typing(ALICE, b"exit 7\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(BANNER), "{text}");
    assert_eq!(
        out.status.code(),
        Some(7),
        "the shell's exit code is rolesh's: {text}"
    );
    assert_no_processes_left(ALICE);
}

/// kubectl in the login shell is configured and gets a token from the broker.
fn interactive_login_kubectl_gets_a_token_from_the_broker() {
    let fx = fixture();
    let out = fx.login_typing(
        ALICE,
        b"kubectl config current-context; kubectl get pods -n web -o name | head -n1; exit\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("demo\r\n"), "{text}");
    assert!(
        text.contains("pod/"),
        "kubectl got a token inside the session: {text}"
    );
}

fn interactive_login_runs_on_a_pty_with_a_size() {
    let fx = fixture();
    let out = fx.login_typing(ALICE, b"stty size; exit\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("24 80\r\n"),
        "the session's own pty has a size: {text}"
    );
}

fn kubectx_and_kubens_switch_the_session_contexts() {
    let fx = fixture();
    let out = fx.login_typing(
        ALICE,
        b"kubectx staging/jobs >/dev/null 2>&1; \
          echo \"kubectx: $(kubectx | wc -l) ctx=$(kubectl config current-context) ns=$(kubens -c)\"; \
          exit\n",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kubectx: 6 ctx=staging/jobs ns=jobs\r\n"),
        "kubectx lists and switches the session's contexts, kubens sees the namespace: {text}"
    );
}

/// The session's /tmp is its own (the monitor mounts it): the host's files are not there,
/// and the session's stay there.
fn interactive_login_has_a_private_tmp() {
    let fx = fixture();
    let marker = format!("rolesh-host-marker-{}", std::process::id());
    let host_file = Path::new("/tmp").join(&marker);
    let session_file = Path::new("/tmp").join(format!("{marker}.session"));
    std::fs::write(&host_file, "host").unwrap();
    let _ = std::fs::remove_file(&session_file);
    let out = fx.login_typing(
        ALICE,
        format!(
            "test -e /tmp/{marker} && echo tmp=shared || echo tmp=private; \
             touch /tmp/{marker}.session; exit\n"
        )
        .as_bytes(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let session_file_on_the_host = session_file.exists();
    let _ = std::fs::remove_file(&host_file);
    let _ = std::fs::remove_file(&session_file);
    assert!(text.contains("tmp=private"), "{text}");
    assert!(
        !session_file_on_the_host,
        "a file the session made in its private /tmp stays there"
    );
}

/// A process that leaves the terminal's session is still in the session's cgroup, so it
/// ends with the session too (session_attacks.rs plays the harder cases).
fn a_process_that_leaves_the_terminal_ends_with_the_session() {
    let fx = fixture();
    let input = b"setsid -f sleep 1234 </dev/null >/dev/null 2>&1; exit\n";
    let out = fx.login_typing(ALICE, input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_processes_left(ALICE);
}

/// Idle timeout (1 minute for rseidlers): a session where nobody types gets a warning, then
/// ends, leaving nothing running, and the trail says why it ended.
fn idle_session_is_warned_then_ended() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let idle = fx.login(IDLE);
    let started = Instant::now();
    let out = wait_with_deadline(idle, Duration::from_secs(100));
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        text.contains(
            "rolesh: this session has been idle for 45s; it ends in 15s unless you type something"
        ),
        "{text}"
    );
    assert!(
        text.contains("rolesh: idle for 1m; ending this session"),
        "{text}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "ended early: {text}"
    );
    assert_eq!(
        out.status.code(),
        Some(129),
        "the shell was hung up: {text}"
    );
    assert_no_processes_left(IDLE);
    fx.wait_for_audit(mark, "a logout with reason idle_timeout", |es| {
        events_of(es, IDLE, "logout")
            .iter()
            .any(|e| e["reason"] == "idle_timeout")
    });
}

// --- Restricted mode ------------------------------------------------------------------

/// rolesh's own prompt: the banner, `help`, an allowed command, the built-ins `use` and
/// `clusters`, `exit`; the command is audited.
fn restricted_prompt_offers_builtins_and_allowed_commands() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let (code, text) = fx.restricted_typing(&[
        "help",
        "kubectl config current-context",
        "use demo/web",
        "clusters",
        "exit",
    ]);
    for expected in [
        BANNER,
        "built-ins: clusters, use CLUSTER[/NAMESPACE]",
        "\ndemo\n",
        "now using demo/web",
        "* demo/web",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(code, Some(0), "{text}");
    let audit = fx.wait_for_audit(mark, "the restricted session's command", |es| {
        events_of(es, CARL, "command").iter().any(|e| {
            e["command"]
                .as_str()
                .unwrap_or_default()
                .ends_with("kubectl config current-context")
        })
    });
    let commands = events_of(&audit, CARL, "command");
    assert!(
        commands.iter().any(|e| e["command"]
            .as_str()
            .unwrap_or_default()
            .ends_with("kubectl config current-context")
            && e["exit_code"] == 0),
        "{commands:?}"
    );
}

/// A command outside the list, a pipe and a command substitution are refused with their
/// reasons; the refusal is audited.
fn restricted_prompt_refuses_shell_features() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let (code, text) =
        fx.restricted_typing(&["bash", "kubectl get pods | sh", "echo $(id)", "exit"]);
    for expected in [
        "rolesh: 'bash' is not allowed on this bastion",
        "rolesh: pipes are not available here",
        "rolesh: variable and command expansion are not available here",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(code, Some(0), "{text}");
    let audit = fx.wait_for_audit(mark, "the refused bash", |es| {
        events_of(es, CARL, "command")
            .iter()
            .any(|e| e["command"] == "bash")
    });
    let commands = events_of(&audit, CARL, "command");
    assert!(
        commands
            .iter()
            .any(|e| e["command"] == "bash" && e["exit_code"] == 126),
        "{commands:?}"
    );
}

// --- Picker mode ----------------------------------------------------------------------

/// `ssh bastion` as the picker user in a real terminal (tmux: the picker asks the terminal
/// for its cursor position), then `EXIT=` and ssh's exit code.
fn picker_terminal(fx: &Fixture, label: &str) -> Tmux {
    let script = format!("{}; echo EXIT=$?; sleep 600", fx.ssh_line(PICK, &["-tt"]));
    Tmux::start(label, 100, 30, &script).with_history()
}

/// In the picker on `term`: demo → jobs → the backfill pod, then in the container's shell
/// `echo LABEL-$((6*7))`, waiting for `LABEL-42`.
fn pick_backfill_and_echo(term: &Tmux, label: &str) {
    term.wait_for("Cluster");
    term.type_text("demo\r");
    term.wait_for("Namespace in demo");
    term.type_text("jobs\r");
    term.wait_for("Pod in demo/jobs");
    term.type_text("back\r");
    term.wait_for_shell();
    term.type_text(&format!("echo {label}-$((6*7))\r"));
    let expected = format!("{label}-42");
    term.wait("the command's output", |s| {
        s.lines().any(|l| l.trim_end() == expected)
    });
}

/// A picker session: into the backfill pod, `exit` from it, back in the picker, `q`; the
/// screen at the end.
fn pick_leave_and_quit(fx: &Fixture) -> String {
    let term = picker_terminal(fx, "ssh-picker");
    pick_backfill_and_echo(&term, "picked");
    term.type_text("exit\r");
    // Back to the first level (this user has two clusters), which offers the way out.
    let last_picker = |s: &str| s.rsplit("? Cluster").next().unwrap_or_default().to_string();
    term.wait("the picker again", |s| {
        s.contains("? Cluster")
            && s.rsplit("picked-42")
                .next()
                .unwrap_or_default()
                .contains("? Cluster")
            && last_picker(s).contains("q  end the session")
    });
    term.type_text("q");
    term.wait("only the quit entry", |s| {
        let last = last_picker(s);
        last.contains("end the session") && !last.contains("staging")
    });
    term.type_text("\r");
    term.wait_for("EXIT=")
}

/// `ssh bastion` lands in the picker; choose a pod, work in it, leave it, and the picker
/// comes back until `q`.
fn picker_mode_execs_and_returns() {
    let fx = fixture();
    fx.demo().handle().clear_events();
    let screen = pick_leave_and_quit(&fx);
    assert!(screen.contains("EXIT=0"), "{screen}");
    let exec_seen = fx
        .demo()
        .handle()
        .events()
        .into_iter()
        .any(|e| e.user.as_deref() == Some(PICK) && e.path.ends_with("/exec"));
    assert!(exec_seen, "the cluster saw rsepick's exec");
}

fn picker_exec_events_name_the_pod() {
    let fx = fixture();
    let mark = fx.audit_mark();
    pick_leave_and_quit(&fx);
    let audit = fx.wait_for_audit(mark, "the picker session's exec and logout", |es| {
        !events_of(es, PICK, "logout").is_empty()
    });
    let exec = events_of(&audit, PICK, "exec");
    assert_eq!(exec.len(), 1, "{exec:?}");
    assert_eq!(
        (
            &exec[0]["cluster"],
            &exec[0]["namespace"],
            &exec[0]["exit_code"]
        ),
        (&json!("demo"), &json!("jobs"), &json!(0)),
        "{}",
        exec[0]
    );
    assert!(
        exec[0]["pod"].as_str().unwrap().starts_with("backfill-"),
        "{}",
        exec[0]
    );
}

/// The connection drops while the user is in a pod: the session ends whole.
fn dropped_connection_in_a_pod_ends_the_session() {
    let fx = fixture();
    let term = picker_terminal(&fx, "ssh-picker-drop");
    pick_backfill_and_echo(&term, "in-pod");
    drop(term); // the terminal goes, and the ssh client with it
    assert_no_processes_left(PICK);
}

/// The trail still says which pod they were in, and that a hangup ended the exec and the
/// session.
fn dropped_connection_in_a_pod_is_audited_as_a_hangup() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let term = picker_terminal(&fx, "ssh-picker-drop");
    pick_backfill_and_echo(&term, "in-pod");
    drop(term);
    let audit = fx.wait_for_audit(mark, "the dropped session's exec and logout", |es| {
        !events_of(es, PICK, "exec").is_empty() && !events_of(es, PICK, "logout").is_empty()
    });
    let exec = events_of(&audit, PICK, "exec");
    assert_eq!(exec.len(), 1, "{exec:?}");
    assert_eq!(
        (&exec[0]["exit_code"], &exec[0]["reason"]),
        (&json!(129), &json!("hangup")),
        "the exec the dropped connection ended: {}",
        exec[0]
    );
    assert_eq!(
        (&exec[0]["cluster"], &exec[0]["namespace"]),
        (&json!("demo"), &json!("jobs")),
        "{}",
        exec[0]
    );
    assert!(
        exec[0]["pod"].as_str().unwrap().starts_with("backfill-"),
        "{}",
        exec[0]
    );
    let logout = events_of(&audit, PICK, "logout")
        .into_iter()
        .find(|e| e["session_id"] == exec[0]["session_id"])
        .expect("the dropped session's logout");
    assert_eq!(logout["reason"], "hangup", "{logout}");
}

// --- record = "all" -------------------------------------------------------------------

/// An asciicast v2 that ended cleanly.
fn assert_clean_recording(cast: &str) {
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2, "{cast}");
    assert!(!cast.contains("ended abnormally"), "{cast}");
}

/// `ssh bastion CMD` is recorded by the broker, output as the user saw it.
fn record_all_records_a_command() {
    let fx = fixture();
    let before = fx.recordings(REC);
    let r = run(&mut fx.ssh(REC, &[], &["kubectl", "config", "current-context"]));
    assert_eq!((r.code, r.stdout.as_str()), (0, "demo\n"), "{}", r.stderr);
    let cast = new_recording(&fx, REC, &before, "\"demo\\n\"");
    assert_clean_recording(&cast);
}

/// `[audit.s3]` against moto's S3: the recording of `ssh bastion CMD` under
/// `record = "all"` becomes an object byte-identical to the bastion's copy.
fn a_recorded_ssh_session_is_streamed_to_s3() {
    require("moto[server] and boto3", common::moto::moto_available());
    let moto = common::moto::Moto::start();
    let s3 = |code: &str| {
        let script = format!(
            "import boto3, sys\ns3 = boto3.client('s3', region_name='us-east-1', endpoint_url='{}', aws_access_key_id='t', aws_secret_access_key='t')\n{code}\n",
            moto.url()
        );
        stdout_of_success(std::process::Command::new("python3").args(["-c", &script]))
    };
    s3("s3.create_bucket(Bucket='rse-recordings')");
    let fx = fixture();
    let drop_in = format!(
        "[audit.s3]\nbucket = \"rse-recordings\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\nkeep_local = \"always\"\n",
        moto.url()
    );
    fx.with_drop_in(&drop_in, || {
        let mark = fx.audit_mark();
        let before = fx.recordings(REC);
        let r = run(&mut fx.ssh(REC, &[], &["kubectl", "config", "current-context"]));
        assert_eq!((r.code, r.stdout.as_str()), (0, "demo\n"), "{}", r.stderr);
        let cast = new_recording(&fx, REC, &before, "\"demo\\n\"");
        let audit = fx.wait_for_audit(mark, "the recording uploaded", |es| {
            es.iter().any(|e| e["event"] == "recording" && e["upload"] == "uploaded")
        });
        let uploaded = audit
            .iter()
            .find(|e| e["event"] == "recording" && e["upload"] == "uploaded")
            .unwrap();
        assert_eq!(uploaded["user"], REC);
        let key = uploaded["location"]
            .as_str()
            .unwrap()
            .strip_prefix("s3://rse-recordings/")
            .unwrap()
            .to_string();
        assert!(key.starts_with(&format!("{}/{REC}/", rolesh_hostname())), "{key}");
        let object = s3(&format!(
            "sys.stdout.buffer.write(s3.get_object(Bucket='rse-recordings', Key='{key}')['Body'].read())"
        ));
        assert_eq!(String::from_utf8(object).unwrap(), cast);
    });
}

/// The short host name, as the broker's `{hostname}` says it.
fn rolesh_hostname() -> String {
    let out = stdout_of_success(&mut std::process::Command::new("hostname"));
    let name = String::from_utf8(out).unwrap();
    name.trim().split('.').next().unwrap().to_string()
}

fn record_all_records_an_interactive_login() {
    let fx = fixture();
    let before = fx.recordings(REC);
    let out = fx.login_typing(REC, b"echo rec-$((2+3)); exit 4\n");
    assert_eq!(out.status.code(), Some(4));
    let cast = new_recording(&fx, REC, &before, "rec-5");
    assert_clean_recording(&cast);
    assert!(cast.contains("exit 4"), "{cast}");
}

/// The session's monitor (root; its user cannot signal it) killed by root: the daemon
/// notices, ends the session's processes and the broker ends the recording with the
/// abnormal-end marker; the audit trail says why the session ended.
fn killed_session_monitor_leaves_an_abnormally_ended_recording() {
    let fx = fixture();
    let before = fx.recordings(REC);
    let mark = fx.audit_mark();
    let mut child = fx.login(REC);
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"echo before-$((6*7)); sleep 300\n")
        .unwrap();
    let sleep = wait_for_pid(&["-u", REC, "-x", "sleep"]).expect("the session's sleep");
    let record = live_session_of(sleep);
    let monitor = record["monitor_pid"].as_u64().unwrap();
    kill("-KILL", monitor as u32);
    let _ = wait_with_deadline(child, Duration::from_secs(60));
    assert_no_processes_left(REC);
    let killed = new_recording(&fx, REC, &before, "recording ended abnormally");
    assert!(killed.contains("before-42"), "{killed}");
    assert!(killed.contains("\"m\""), "an asciicast marker: {killed}");
    let audit = fx.wait_for_audit(mark, "the killed session's logout", |es| {
        !events_of(es, REC, "logout").is_empty()
    });
    let logout = &events_of(&audit, REC, "logout")[0];
    assert_eq!(logout["reason"], "monitor_killed_session", "{logout}");
}

// --- The audit trail ------------------------------------------------------------------

/// A session's login, token, command and logout share its id.
fn audit_trail_links_a_session_by_id() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let r = run(&mut fx.ssh(
        ALICE,
        &[],
        &["kubectl", "get", "pods", "-n", "web", "-o", "name"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let audit = fx.wait_for_audit(
        mark,
        "the session's login, token, command and logout",
        |es| {
            ["login", "token", "command", "logout"]
                .iter()
                .all(|event| !events_of(es, ALICE, event).is_empty())
        },
    );
    let command = events_of(&audit, ALICE, "command")
        .into_iter()
        .find(|e| e["command"] == "kubectl get pods -n web -o name")
        .expect("the -c command is audited");
    assert_eq!(command["exit_code"], 0, "{command}");
    let session_id = command["session_id"].as_str().unwrap();
    // The token event is the broker's: it found the session by kubectl's cgroup.
    for event in ["login", "token", "logout"] {
        assert!(
            events_of(&audit, ALICE, event)
                .iter()
                .any(|e| e["session_id"] == session_id),
            "no {event} for session {session_id}"
        );
    }
}

/// The login event says where the client connected from (sshd's word), that /tmp is
/// private and which cgroup the session is; fields without a value are left out (no
/// reason).
fn login_event_has_the_client_address_and_private_tmp() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let r = run(&mut fx.ssh(ALICE, &[], &["env"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let session_id = env_var(&r.stdout, "ROLESH_SESSION_ID");
    let login = login_of(&fx, mark, &session_id);
    assert!(
        login["ssh_client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1 "),
        "{login}"
    );
    assert_eq!(login["private_tmp"], true, "{login}");
    assert!(login.get("reason").is_none(), "{login}");
    let cgroup = login["cgroup"].as_str().unwrap_or_default();
    assert!(
        cgroup.ends_with(&format!("/rolesh-sessions/{session_id}")),
        "{login}"
    );
}

/// What the client sent with SetEnv names neither the session nor its address.
fn client_setenv_cannot_choose_session_id_or_address() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let r = env_with_forged_variables(&fx);
    let session_id = env_var(&r.stdout, "ROLESH_SESSION_ID");
    assert_ne!(
        session_id, FORGED_SESSION_ID,
        "the client chose the session id"
    );
    let login = login_of(&fx, mark, &session_id);
    assert!(
        login["ssh_client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1 "),
        "{login}"
    );
    let audit = fx.wait_for_audit(mark, "the session's logout", |es| {
        events_of(es, ALICE, "logout")
            .iter()
            .any(|e| e["session_id"] == session_id.as_str())
    });
    assert!(
        audit.iter().all(|e| e["session_id"] != FORGED_SESSION_ID),
        "a session took the id the client sent"
    );
}

/// The login event of `session_id`, written since `mark`.
fn login_of(fx: &Fixture, mark: usize, session_id: &str) -> Value {
    let audit = fx.wait_for_audit(mark, "the session's login", |es| {
        events_of(es, ALICE, "login")
            .iter()
            .any(|e| e["session_id"] == session_id)
    });
    events_of(&audit, ALICE, "login")
        .into_iter()
        .find(|e| e["session_id"] == session_id)
        .unwrap()
}
