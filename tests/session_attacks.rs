//! The hostile user: a real account whose login shell is rolesh, over a real sshd
//! (`UsePAM yes`), tries to outlive its session, to keep getting credentials after it, to
//! stop or kill what records and times it, and to reach the outer terminal around the
//! recording. Each test is one attack, played as the user would (signals are sent with the
//! user's uid), and what it checks is what the kernel and the trail say afterwards.
//!
//! The fixture is session_ssh's (tests/session_ssh/fixture.rs): one sshd, the accounts, the
//! broker and the session monitor on their compiled-in sockets.

mod common;
#[path = "session_ssh/fixture.rs"]
mod fixture;
#[path = "session_ssh/observe.rs"]
mod observe;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use fixture::{ALICE, BRIEF, CARL, Fixture, IDLE, REC, fixture, wait_with_deadline};
use observe::*;
use serde_json::Value;

common::harness::tests!(
    root: [
        // Credentials after the end
        a_beacon_in_a_nested_user_namespace_is_refused_then_killed_after_logout,
        a_kubectl_loop_left_running_is_refused_within_2s_of_logout,
        a_process_outside_any_session_gets_no_credentials,
        a_session_cannot_be_started_from_inside_another,
        // Signals, one process of the user's at a time
        the_user_cannot_kill_or_stop_the_session_monitor,
        killing_the_login_shell_ends_the_session_and_everything_in_it,
        stopping_the_login_shell_ends_the_session_and_everything_in_it,
        killing_sshds_session_process_ends_the_session_and_everything_in_it,
        killing_the_shell_ends_the_session_and_everything_in_it,
        idle_timeout_ends_a_session_whose_processes_are_all_stopped,
        max_duration_ends_a_session_whose_processes_are_all_stopped,
        // The outer terminal and the recording
        the_outer_terminal_cannot_be_opened_from_the_session,
        stty_minus_echo_hides_nothing_from_the_recording,
        a_recorded_command_stays_recorded_when_its_login_shell_is_stopped,
        a_recorded_session_ends_when_its_recording_stops,
        // Sessions side by side
        two_sessions_of_one_user_end_independently,
        a_key_one_user_adds_is_not_in_another_users_session,
        // Allowed tools made into a shell
        kubectl_exec_plugin_injection_over_ssh_is_refused_naming_the_flag,
        kubectl_exec_plugin_injection_at_the_restricted_prompt_is_refused,
        kubectl_edit_over_ssh_opens_an_editor_without_a_shell_escape,
        kubectl_edit_at_the_restricted_prompt_opens_an_editor_without_a_shell_escape,
        helm_plugins_in_the_users_home_do_not_run,
        // sshd passing what the loader reads
        ld_preload_from_the_client_gets_the_session_refused_and_audited,
        rolesh_check_names_the_sshd_setting_that_lets_ld_preload_through,
        // A host that cannot confine sessions
        without_cgroup2_sessions_are_refused_and_audited,
    ],
);

/// Processes a session starts so that they outlive it, if they can: detached from the
/// terminal (`setsid`, `nohup`), one of them in a nested user namespace.
const DETACHED: &str = "setsid -f nohup sleep 4321 >/dev/null 2>&1 </dev/null; \
     unshare -U setsid -f nohup sleep 4322 >/dev/null 2>&1 </dev/null";

/// A login of `user` that started [`DETACHED`] and then `then` (a shell line), and what
/// the test sees of its session once the detached processes run.
struct Hostile {
    client: Child,
    session: SessionSeen,
    user: &'static str,
    mark: usize,
}

impl Hostile {
    fn login(fx: &Fixture, user: &'static str, then: &str) -> Hostile {
        let mark = fx.audit_mark();
        let mut client = fx.login(user);
        let line = format!("{DETACHED}; {then}\n");
        client
            .stdin
            .as_mut()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let detached = wait_for_pid(&["-u", user, "-f", "^sleep 4322"])
            .expect("the session's detached processes");
        assert!(wait_for_pid(&["-u", user, "-f", "^sleep 4321"]).is_some());
        Hostile {
            client,
            session: SessionSeen::of(detached),
            user,
            mark,
        }
    }

    /// The user's process named `name`: its login shell `rolesh`, its shell `bash`, or
    /// `sshd`, sshd's per-session process (the login shell's parent).
    fn process(&self, name: &str) -> u32 {
        if name == "sshd" {
            return parent_of(self.process("rolesh"));
        }
        only_pid(&["-u", self.user, "-x", name])
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.client.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }

    /// The session ended (within `limit`): the client is gone, nothing of the user runs,
    /// the record and the cgroup are gone, and the trail has its logout, written by root;
    /// the logout, and what the client showed.
    fn assert_ended(self, fx: &Fixture, limit: Duration) -> (Value, String) {
        let out = wait_with_deadline(self.client, limit);
        let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert_no_processes_left(self.user);
        self.session.assert_gone();
        let id = self.session.id().to_string();
        let audit = fx.wait_for_audit(self.mark, "the session's logout", |es| {
            logout_of(es, &id).is_some()
        });
        (logout_of(&audit, &id).unwrap(), shown)
    }
}

// --- Credentials after the end ---------------------------------------------------------

/// `$(date +%s.%N) $?` after each run of `command`, every 0.2 s, forever, into
/// `~/beacon.log`: started by `launcher` (`setsid -f nohup`, `unshare -U …`) so that it
/// survives the logout if it can.
fn beacon_line(launcher: &str, command: &str) -> String {
    format!(
        "{launcher} sh -c 'while :; do {command} >/dev/null 2>&1; echo \"$(date +%s.%N) $?\"; \
         sleep 0.2; done' >>$HOME/beacon.log 2>/dev/null </dev/null; sleep 2; exit"
    )
}

/// What the beacon logged: (seconds since the epoch, exit code) per request.
fn beacon_log(fx: &Fixture, user: &str) -> Vec<(f64, i32)> {
    let home = fx.home(user);
    std::fs::read_to_string(home.join("beacon.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (t, code) = l.split_once(' ')?;
            Some((t.parse().ok()?, code.parse().ok()?))
        })
        .collect()
}

/// The beacon got credentials in the session, its first request after the end was
/// refused within 2 s of its last success, none succeeded after, the broker audited the
/// refusals as `session_ended`, and nothing of the beacon runs any more.
fn assert_beacon_cut_off(fx: &Fixture, hostile: Hostile, refused_code: i32) {
    let user = hostile.user;
    let mark = hostile.mark;
    let id = hostile.session.id().to_string();
    let (logout, _) = hostile.assert_ended(fx, Duration::from_secs(30));
    assert_eq!(logout["reason"], "exited", "{logout}");
    let log = beacon_log(fx, user);
    let last_success = log
        .iter()
        .rposition(|(_, code)| *code == 0)
        .unwrap_or_else(|| panic!("the beacon never got credentials in its session: {log:?}"));
    let refused = log[last_success + 1..]
        .first()
        .unwrap_or_else(|| panic!("the beacon made no request after the end: {log:?}"));
    assert_eq!(refused.1, refused_code, "{log:?}");
    assert!(
        refused.0 - log[last_success].0 <= 2.0,
        "refused {:.2}s after the last success: {log:?}",
        refused.0 - log[last_success].0
    );
    assert!(
        log[last_success + 1..]
            .iter()
            .all(|(_, code)| *code == refused_code),
        "{log:?}"
    );
    let audit = fx.wait_for_audit(mark, "the beacon's refusals", |es| {
        es.iter().any(|e| e["event"] == "denied")
    });
    let denied: Vec<&Value> = audit.iter().filter(|e| e["event"] == "denied").collect();
    assert!(
        denied
            .iter()
            .all(|e| e["user"] == user && e["reason"] == "session_ended"),
        "{denied:?}"
    );
    assert!(
        denied.iter().any(|e| e["session_id"] == id.as_str()),
        "{denied:?}"
    );
}

/// `unshare -U setsid nohup` a loop of `rolesh token`, then log out: the loop's next
/// request is refused (`no live rolesh session`, exit 77) and the loop is killed.
fn a_beacon_in_a_nested_user_namespace_is_refused_then_killed_after_logout() {
    let fx = fixture();
    fx.clear_home(ALICE);
    let token = format!("{} token --cluster demo", fx.rolesh().display());
    let line = beacon_line("unshare -U setsid -f nohup", &token);
    let hostile = Hostile::login(&fx, ALICE, &line);
    assert_beacon_cut_off(&fx, hostile, 77);
}

/// A background `kubectl get pods` loop left running at logout: its next token request
/// (kubectl's exec plugin) is refused, and kubectl fails.
fn a_kubectl_loop_left_running_is_refused_within_2s_of_logout() {
    let fx = fixture();
    fx.clear_home(ALICE);
    let line = beacon_line("setsid -f nohup", "kubectl get pods -n web -o name");
    let hostile = Hostile::login(&fx, ALICE, &line);
    assert_beacon_cut_off(&fx, hostile, 1);
}

/// `runuser -u alice -- rolesh token`: alice's uid, but no session.
fn a_process_outside_any_session_gets_no_credentials() {
    let fx = fixture();
    let mark = fx.audit_mark();
    let r = run(Command::new("runuser")
        .args(["-u", ALICE, "--"])
        .arg(fx.rolesh())
        .args(["token", "--cluster", "demo"])
        .env_remove("ROLESH_SOCKET"));
    assert_eq!(r.code, 77, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "", "no token");
    assert_eq!(
        r.stderr,
        "rolesh: no live rolesh session for this process\n"
    );
    let audit = fx.wait_for_audit(mark, "the refusal", |es| {
        es.iter().any(|e| e["event"] == "denied")
    });
    let denied = audit.iter().find(|e| e["event"] == "denied").unwrap();
    assert_eq!(
        (&denied["user"], &denied["reason"]),
        (&Value::from(ALICE), &Value::from("not_in_session")),
        "{denied}"
    );
}

/// `rolesh -c …` typed inside a session: the monitor refuses to start a session in a
/// session (its cgroup would be the new session's, and the old one's recording bypassed).
fn a_session_cannot_be_started_from_inside_another() {
    let fx = fixture();
    let line = format!(
        "{} -c 'kubectl version --client'; echo nested=$?; exit\n",
        fx.rolesh().display()
    );
    let out = fx.login_typing(ALICE, line.as_bytes());
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        shown.contains("rolesh: a rolesh session cannot be started from inside another\n"),
        "{shown}"
    );
    assert!(shown.contains("nested=77"), "{shown}");
}

// --- Signals ---------------------------------------------------------------------------

/// The session's monitor and the monitor daemon are root's: the user's `kill -9` and
/// `kill -STOP` fail, and the session goes on.
fn the_user_cannot_kill_or_stop_the_session_monitor() {
    let fx = fixture();
    let mut hostile = Hostile::login(&fx, ALICE, "echo ready");
    let monitors = [hostile.session.monitor_pid(), fx.monitor_pid()];
    for pid in monitors {
        for signal in ["-KILL", "-STOP"] {
            let r = kill_as(ALICE, signal, pid);
            assert_ne!(r.code, 0, "kill {signal} {pid} as {ALICE} worked");
            assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
        }
    }
    hostile.type_line("echo alive-$((6*7)); exit 3");
    let (logout, shown) = hostile.assert_ended(&fx, Duration::from_secs(30));
    assert!(shown.contains("alive-42"), "{shown}");
    assert_eq!(
        (&logout["reason"], &logout["exit_code"]),
        (&Value::from("exited"), &Value::from(3)),
        "{logout}"
    );
}

/// One signal, as the user, to one of its processes: the session ends (for `reasons`),
/// and the detached processes with it.
fn signal_ends_the_session(process: &str, signal: &str, reasons: &[&str]) {
    let fx = fixture();
    let hostile = Hostile::login(&fx, ALICE, "sleep 300");
    wait_for_pid(&["-u", ALICE, "-f", "^sleep 300"]).expect("the shell's sleep");
    let pid = hostile.process(process);
    let r = kill_as(ALICE, signal, pid);
    assert_eq!(r.code, 0, "kill {signal} {process}: {}", r.stderr);
    let (logout, _) = hostile.assert_ended(&fx, Duration::from_secs(30));
    assert!(reasons.iter().any(|r| logout["reason"] == *r), "{logout}");
}

/// `kill -9` of the login shell sshd started (the monitor's peer).
fn killing_the_login_shell_ends_the_session_and_everything_in_it() {
    signal_ends_the_session("rolesh", "-KILL", &["client_gone", "hangup"]);
}

/// `kill -STOP` of the login shell: a stopped peer is a gone peer.
fn stopping_the_login_shell_ends_the_session_and_everything_in_it() {
    signal_ends_the_session("rolesh", "-STOP", &["client_gone"]);
}

/// `kill -9` of sshd's per-session process (the user's): the connection is gone.
fn killing_sshds_session_process_ends_the_session_and_everything_in_it() {
    signal_ends_the_session("sshd", "-KILL", &["hangup", "client_gone"]);
}

/// `kill -9` of the user's shell: the session's program exited.
fn killing_the_shell_ends_the_session_and_everything_in_it() {
    signal_ends_the_session("bash", "-KILL", &["exited"]);
}

/// `kill -STOP` of every process in the session's cgroup, as the user: the clock the
/// monitor keeps still runs, and the kernel's `cgroup.kill` ends stopped processes too.
fn every_process_stopped_until_the_end(user: &'static str, reason: &str) {
    let fx = fixture();
    let hostile = Hostile::login(&fx, user, "sleep 300");
    wait_for_pid(&["-u", user, "-f", "^sleep 300"]).expect("the shell's sleep");
    let pids = hostile.session.pids();
    assert!(pids.len() >= 4, "shell, sleep and detached: {pids:?}");
    for pid in pids {
        let r = kill_as(user, "-STOP", pid);
        assert_eq!(r.code, 0, "kill -STOP {pid}: {}", r.stderr);
    }
    let (logout, _) = hostile.assert_ended(&fx, Duration::from_secs(100));
    assert_eq!(logout["reason"], reason, "{logout}");
}

/// rseidle's `idle_timeout` is 1m.
fn idle_timeout_ends_a_session_whose_processes_are_all_stopped() {
    every_process_stopped_until_the_end(IDLE, "idle_timeout");
}

/// rsebrief's `max_duration` is 1m.
fn max_duration_ends_a_session_whose_processes_are_all_stopped() {
    every_process_stopped_until_the_end(BRIEF, "max_duration");
}

// --- The outer terminal and the recording ----------------------------------------------

/// The outer terminal (sshd's pty) is root's, mode 0600, while the session runs. With
/// sshd's per-session process stopped, the session tries every way to it: the device, a
/// process's descriptors, a process's root. Each is refused, and all of it is recorded.
fn the_outer_terminal_cannot_be_opened_from_the_session() {
    let fx = fixture();
    let before = fx.recordings(REC);
    let mut hostile = Hostile::login(&fx, REC, "echo ready");
    let login = hostile.process("rolesh");
    let sshd = hostile.process("sshd");
    let outer = outer_terminal_of(login);
    let meta = std::fs::metadata(&outer).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (0, 0o600),
        "{outer} while the session runs"
    );
    let outer = outer.as_str();
    hostile.type_line(&format!(
        "exec 2>&1; kill -STOP {sshd}; \
         cat {outer}; bash -i <{outer} >{outer} 2>&1; echo x >{outer}; \
         cat /proc/{sshd}/root{outer}; ls /proc/{sshd}/fd; \
         for f in /proc/[0-9]*/fd/*; do [ \"$(readlink $f)\" = {outer} ] && echo reachable: $f; done; \
         kill -CONT {sshd}; echo outer-$((40+2)); exit"
    ));
    let (logout, shown) = hostile.assert_ended(&fx, Duration::from_secs(30));
    assert_eq!(logout["reason"], "exited", "{logout}");
    assert!(shown.contains("outer-42"), "{shown}");
    assert!(!shown.contains("reachable: /proc"), "{shown}");
    let denied = shown.matches("Permission denied").count();
    assert!(denied >= 5, "{denied} refusals:\n{shown}");
    let cast = new_recording(&fx, REC, &before, "outer-42");
    assert!(cast.contains("Permission denied"), "{cast}");
}

/// The parent of `pid` (/proc/PID/stat).
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(1).unwrap().parse().unwrap()
}

/// `/dev/pts/N` of the process's controlling terminal (`ps -o tty=`).
fn outer_terminal_of(pid: u32) -> String {
    let out = Command::new("ps")
        .args(["-o", "tty=", "-p", &pid.to_string()])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(tty.starts_with("pts/"), "{pid} has terminal {tty:?}");
    format!("/dev/{tty}")
}

/// `stty -echo` keeps what is typed off the screen, not out of the recording: the output
/// is recorded, and so are the keystrokes (`record_input = true` for rserec).
fn stty_minus_echo_hides_nothing_from_the_recording() {
    let fx = fixture();
    let before = fx.recordings(REC);
    let out = fx.login_typing(REC, b"stty -echo\necho hidden-$((3*3))\nstty echo\nexit\n");
    assert_eq!(out.status.code(), Some(0));
    let cast = new_recording(&fx, REC, &before, "hidden-9");
    let typed = cast
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e[1] == "i")
        .filter_map(|e| e[2].as_str().map(str::to_string))
        .collect::<String>();
    assert!(typed.contains("echo hidden-$((3*3))"), "{cast}");
}

/// `ssh bastion CMD` under `record = "all"`, its login shell stopped by the user midway:
/// the session ends, what the command wrote is in the recording, which the monitor
/// closed, and nothing of the command runs.
fn a_recorded_command_stays_recorded_when_its_login_shell_is_stopped() {
    let fx = fixture();
    let before = fx.recordings(REC);
    let mark = fx.audit_mark();
    let client = fx
        .ssh(
            REC,
            &[],
            &[
                "kubectl", "get", "pods", "-n", "web", "-o", "name", "--watch",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cast = new_recording(&fx, REC, &before, "pod/");
    assert!(!cast.contains("ended abnormally"), "{cast}");
    let login = only_pid(&["-u", REC, "-x", "rolesh"]);
    let r = kill_as(REC, "-STOP", login);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let _ = wait_with_deadline(client, Duration::from_secs(30));
    assert_no_processes_left(REC);
    let audit = fx.wait_for_audit(mark, "the command's logout", |es| {
        !events_of(es, REC, "logout").is_empty()
    });
    let logout = &events_of(&audit, REC, "logout")[0];
    assert_eq!(logout["reason"], "client_gone", "{logout}");
    let cast = new_recording(&fx, REC, &before, "end: exit");
    let last: Value = serde_json::from_str(cast.lines().last().unwrap()).unwrap();
    assert_eq!(
        last[1], "m",
        "the recording's end marker, with the exit code: {cast}"
    );
    assert!(!cast.contains("ended abnormally"), "{cast}");
}

/// The broker stops under a quiet recorded session (its recording's stream closes): the
/// monitor ends the session, which does not go on unrecorded, and says why.
fn a_recorded_session_ends_when_its_recording_stops() {
    let mut fx = fixture();
    let hostile = Hostile::login(&fx, REC, "sleep 300");
    wait_for_pid(&["-u", REC, "-f", "^sleep 300"]).expect("the shell's sleep");
    fx.stop_broker();
    let out = wait_with_deadline(hostile.client, Duration::from_secs(30));
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        shown.contains("rolesh: the recording of this session stopped; a recorded session does not go on unrecorded: ending it"),
        "{shown}"
    );
    assert_no_processes_left(REC);
    hostile.session.assert_gone();
    fx.start_broker();
}

// --- Sessions side by side -------------------------------------------------------------

/// Two logins of one user: the first one's end takes its processes and tokens, not the
/// second one's.
fn two_sessions_of_one_user_end_independently() {
    let fx = fixture();
    let mut first = fx.login(ALICE);
    let mut second = fx.login(ALICE);
    for (client, seconds) in [(&mut first, 1001), (&mut second, 1002)] {
        let line = format!("sleep {seconds} &\n");
        client
            .stdin
            .as_mut()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
    }
    let first_sleep = wait_for_pid(&["-u", ALICE, "-f", "^sleep 1001"]).unwrap();
    let second_sleep = wait_for_pid(&["-u", ALICE, "-f", "^sleep 1002"]).unwrap();
    let (one, two) = (SessionSeen::of(first_sleep), SessionSeen::of(second_sleep));
    assert_ne!(one.id(), two.id());
    first.stdin.as_mut().unwrap().write_all(b"exit\n").unwrap();
    let _ = wait_with_deadline(first, Duration::from_secs(30));
    one.assert_gone();
    assert!(pgrep(&["-u", ALICE, "-f", "^sleep 1001"]).is_empty());
    assert_eq!(pgrep(&["-u", ALICE, "-f", "^sleep 1002"]), [second_sleep]);
    let line = format!(
        "{} token --cluster demo >/dev/null && echo token-$((1+1)); exit\n",
        fx.rolesh().display()
    );
    second
        .stdin
        .as_mut()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let out = wait_with_deadline(second, Duration::from_secs(30));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("token-2"), "{shown}");
    two.assert_gone();
    assert_no_processes_left(ALICE);
}

/// Each session has a session keyring of its own, the user's (as pam_keyinit makes one at
/// a login): a key one user's session adds to its keyring (a Kerberos cache, say) is not
/// in another user's session, which would share the monitor's keyring otherwise.
fn a_key_one_user_adds_is_not_in_another_users_session() {
    require(
        "keyctl (scripts/setup installs keyutils)",
        std::path::Path::new("/usr/bin/keyctl").exists(),
    );
    let fx = fixture();
    let mut alice = fx.login(ALICE);
    alice
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"keyctl add user rolesh-test-secret hunter2 @s && sleep 1003\n")
        .unwrap();
    wait_for_pid(&["-u", ALICE, "-f", "^sleep 1003"]).expect("alice's key is added");
    let out = fx.login_typing(
        BRIEF,
        b"keyctl show @s; echo ses=$(keyctl rdescribe @s); exit\n",
    );
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        !shown.contains("hunter2") && !shown.contains("user: rolesh-test-secret"),
        "{shown}"
    );
    let uid = fx.uid(BRIEF);
    assert!(
        shown.contains(&format!("ses=keyring;{uid};")),
        "the session keyring is not the user's: {shown}"
    );
    let _ = alice.kill();
    let _ = alice.wait();
}

// --- Allowed tools made into a shell ----------------------------------------------------

/// Writes `text` to `name` in `user`'s home, as the user's.
fn users_file(fx: &Fixture, user: &str, name: &str, text: &str) -> std::path::PathBuf {
    let path = fx.home(user).join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let mut dir = path.clone();
    while dir != fx.home(user) {
        std::os::unix::fs::chown(&dir, Some(fx.uid(user)), None).unwrap();
        dir.pop();
    }
    path
}

/// A kubeconfig whose user is an exec plugin that leaves `marker`: what kubectl would run
/// if it ever loaded it.
fn evil_kubeconfig(fx: &Fixture, user: &str, marker: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n\
         clusters: [{{name: x, cluster: {{server: 'https://127.0.0.1:1'}}}}]\n\
         contexts: [{{name: x, context: {{cluster: x, user: x}}}}]\n\
         users: [{{name: x, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1beta1, \
         interactiveMode: Never, command: /bin/sh, args: [-c, 'id > {}']}}}}}}]\n",
        marker.display()
    );
    users_file(fx, user, "evil.kc", &text)
}

/// `ssh bastion "kubectl --kubeconfig=evil.kc …"` and `kubectl config set-credentials
/// --exec-command=/bin/sh`: refused before kubectl starts, each naming what it refuses; the
/// exec plugin never runs.
fn kubectl_exec_plugin_injection_over_ssh_is_refused_naming_the_flag() {
    let fx = fixture();
    fx.clear_home(ALICE);
    let marker = fx.home(ALICE).join("pwned");
    let evil = evil_kubeconfig(&fx, ALICE, &marker);
    let evil = evil.display();
    for (command, named) in [
        (
            format!("kubectl --kubeconfig={evil} get pods"),
            "`--kubeconfig` is not available here",
        ),
        (
            format!(
                "kubectl config set-credentials x --exec-api-version=client.authentication.k8s.io/v1beta1 \
                 --exec-interactive-mode=Never --exec-command=/bin/sh --exec-arg=-c \
                 --exec-arg='id > {}'",
                marker.display()
            ),
            "`kubectl config set-credentials` is not available here",
        ),
        (
            "kubectl config set-cluster x --server=https://127.0.0.1:1".to_string(),
            "`--server` is not available here",
        ),
        (
            "kubectl --kuberc=/dev/null get pods".to_string(),
            "`--kuberc` is not available here",
        ),
    ] {
        let r = run(&mut fx.ssh(ALICE, &[], &[&command]));
        assert_eq!(r.code, 126, "{command}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.starts_with(&format!("rolesh: {named}")),
            "{command}: {}",
            r.stderr
        );
    }
    assert!(!marker.exists(), "the exec plugin ran");
}

/// The same at rolesh's restricted prompt (where the escape gave `bash-5.2$`).
fn kubectl_exec_plugin_injection_at_the_restricted_prompt_is_refused() {
    let fx = fixture();
    fx.clear_home(CARL);
    let marker = fx.home(CARL).join("pwned");
    let evil = evil_kubeconfig(&fx, CARL, &marker);
    let (code, text) = fx.restricted_typing(&[
        "kubectl config set-credentials x --exec-interactive-mode=Always --exec-command=/bin/bash",
        &format!("kubectl --kubeconfig={} get pods", evil.display()),
        "exit",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("`kubectl config set-credentials` is not available here"),
        "{text}"
    );
    assert!(
        text.contains("`--kubeconfig` is not available here"),
        "{text}"
    );
    assert!(!text.contains("bash-"), "{text}");
    assert!(!marker.exists(), "the exec plugin ran");
}

/// In `kubectl edit`'s editor, vi's `:!` and nano's Execute (^T), each trying to leave a
/// marker: the editor is rnano, which says Execute is disabled, and no marker appears.
fn editor_escape_leaves_no_marker(term: &Tmux, marker: &std::path::Path) {
    term.wait_for("frontend-6d8f7c9b5-x7k2p");
    let marker = marker.display().to_string();
    term.keys(&["Escape"]);
    term.type_text(&format!(":!touch {marker}"));
    term.keys(&["Enter"]);
    term.keys(&["C-t"]);
    let screen = term.wait_for("disabled in restricted mode");
    assert!(screen.contains("GNU nano"), "{screen}");
    term.type_text(&format!("touch {marker}"));
    term.keys(&["Enter"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the editor ran a command"
    );
}

const EDIT: &str = "kubectl edit pod/frontend-6d8f7c9b5-x7k2p -n web";

fn kubectl_edit_over_ssh_opens_an_editor_without_a_shell_escape() {
    let fx = fixture();
    fx.clear_home(ALICE);
    let marker = fx.home(ALICE).join("pwned-editor");
    let script = format!("{} '{EDIT}'; sleep 600", fx.ssh_line(ALICE, &["-tt"]));
    let term = Tmux::start("edit-c", 100, 30, &script);
    editor_escape_leaves_no_marker(&term, &marker);
}

fn kubectl_edit_at_the_restricted_prompt_opens_an_editor_without_a_shell_escape() {
    let fx = fixture();
    fx.clear_home(CARL);
    let marker = fx.home(CARL).join("pwned-editor");
    let script = format!("{}; sleep 600", fx.ssh_line(CARL, &["-tt"]));
    let term = Tmux::start("edit-r", 100, 30, &script);
    term.wait_for("rolesh>");
    term.type_text(EDIT);
    term.keys(&["Enter"]);
    editor_escape_leaves_no_marker(&term, &marker);
}

/// A helm plugin the user put in helm's default plugin directory: `helm evil` does not
/// find it (plugins come from root's directory only), over ssh and at the prompt.
fn helm_plugins_in_the_users_home_do_not_run() {
    let fx = fixture();
    for user in [ALICE, CARL] {
        fx.clear_home(user);
        let marker = fx.home(user).join("pwned-helm");
        users_file(
            &fx,
            user,
            ".local/share/helm/plugins/evil/plugin.yaml",
            &format!(
                "name: evil\nversion: 0.1.0\nusage: evil\ndescription: evil\n\
                 command: \"/usr/bin/touch {}\"\n",
                marker.display()
            ),
        );
        let shown = match user {
            ALICE => {
                let r = run(&mut fx.ssh(ALICE, &[], &["helm", "evil"]));
                assert_ne!(r.code, 0, "{}", r.stdout);
                r.stderr
            }
            _ => fx.restricted_typing(&["helm evil", "exit"]).1,
        };
        assert!(
            shown.contains("unknown command \"evil\""),
            "{user}: {shown}"
        );
        assert!(!marker.exists(), "{user}'s helm plugin ran");
    }
}

// --- sshd passing what the loader reads ------------------------------------------------

/// A shared library whose constructor leaves `$HOME/preloaded`: proof that the loader ran
/// the user's code in the login shell (which nothing after the loader can prevent).
fn preload_library(fx: &Fixture) -> std::path::PathBuf {
    require(
        "a C compiler (cc)",
        std::path::Path::new("/usr/bin/cc").exists(),
    );
    let dir = fx.scratch();
    let source = dir.join("evil.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <stdlib.h>\n\
         __attribute__((constructor)) static void evil(void) {\n\
           char p[4096]; snprintf(p, sizeof p, \"%s/preloaded\", getenv(\"HOME\"));\n\
           FILE *f = fopen(p, \"w\"); if (f) fclose(f);\n}\n",
    )
    .unwrap();
    let library = dir.join("evil.so");
    stdout_of_success(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source),
    );
    library
}

/// `ssh -o SetEnv=LD_PRELOAD=evil.so bastion kubectl version` through an sshd with
/// `AcceptEnv *`: the library runs in the login shell (as the user, outside any session),
/// but the monitor reads the login's environment, refuses the session with one line and
/// writes a `denied` event; no session starts.
fn ld_preload_from_the_client_gets_the_session_refused_and_audited() {
    let fx = fixture();
    fx.clear_home(ALICE);
    let library = preload_library(&fx);
    let mark = fx.audit_mark();
    let set_env = format!("SetEnv=LD_PRELOAD={}", library.display());
    let r = run(&mut fx.ssh(
        ALICE,
        &["-o", &set_env],
        &["kubectl", "version", "--client"],
    ));
    assert!(
        fx.home(ALICE).join("preloaded").exists(),
        "the library did not load: the test proves nothing"
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "rolesh: the bastion's sshd passes LD_PRELOAD through; ask the administrator\n"
    );
    let audit = fx.wait_for_audit(mark, "the denial", |es| {
        !events_of(es, ALICE, "denied").is_empty()
    });
    let denied = &events_of(&audit, ALICE, "denied")[0];
    assert_eq!(
        denied["reason"], "loader_variable: sshd passed LD_PRELOAD to the login shell",
        "{denied}"
    );
    assert_eq!(denied["reported_by"], "monitor", "{denied}");
    assert!(events_of(&audit, ALICE, "login").is_empty(), "{audit:?}");
    assert_no_processes_left(ALICE);
}

/// `rolesh check --sshd-config` on the fixture's sshd_config (`AcceptEnv *`): an error that
/// names the setting and what it lets through.
fn rolesh_check_names_the_sshd_setting_that_lets_ld_preload_through() {
    let fx = fixture();
    // The example configuration, which is valid: the sshd finding is the only error.
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rolesh.toml");
    let r = run(Command::new(fx.rolesh())
        .args(["check", "--config"])
        .arg(&config)
        .arg("--sshd-config")
        .arg(fx.sshd_config()));
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let named = format!(
        "rolesh: sshd ({}): AcceptEnv * lets LD_* through\n",
        fx.sshd_config().display()
    );
    assert!(r.stderr.contains(&named), "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().count(),
        2,
        "the finding and what to do: {}",
        r.stderr
    );
}

// --- A host that cannot confine sessions -----------------------------------------------

/// No cgroup2 where the monitor runs: every login is refused with one clear line, nothing
/// of the user runs, and the trail has the error.
fn without_cgroup2_sessions_are_refused_and_audited() {
    let mut fx = fixture();
    fx.monitor_without_cgroup2();
    let mark = fx.audit_mark();
    let r = run(&mut fx.ssh(ALICE, &[], &["kubectl", "version", "--client"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr
            .starts_with("rolesh: this bastion cannot confine sessions: "),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_no_processes_left(ALICE);
    let audit = fx.wait_for_audit(mark, "the refusal", |es| {
        !events_of(es, ALICE, "error").is_empty()
    });
    let error = &events_of(&audit, ALICE, "error")[0];
    assert!(
        error["reason"]
            .as_str()
            .unwrap()
            .starts_with("this bastion cannot confine sessions"),
        "{error}"
    );
}
