//! The audit trail against a real systemd-journald (SPEC §7): every event type with its
//! fields, broker events under the broker's own _UID, session events attributed by the
//! kernel whatever the session claims, the JSON Lines copy, `rolesh audit` not fooled by
//! forged journal entries, and no secret anywhere, whichever error path it takes.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::broker::BrokerProc;
use common::journal::{self, field, of_event, unique_session_id};
use common::*;
use rolesh_testkit::fake_aws::Api;
use serde_json::{Map, Value};

common::harness::tests!(
    root: [
        every_event_reaches_journald_and_the_json_lines_file_with_its_fields,
        forged_journal_entries_do_not_fool_rolesh_audit,
        a_self_reported_entry_naming_another_user_is_shown_as_its_writers,
        control_characters_a_session_reports_cannot_fake_a_journal_line,
        a_session_flooding_events_is_cut_to_its_rate_and_the_drops_counted_once,
        no_secret_reaches_journald_the_json_lines_file_or_stderr,
        a_session_that_cannot_reach_the_broker_logs_to_journald_as_itself,
        a_reload_moves_the_audit_file_and_one_that_cannot_be_opened_keeps_the_old,
    ],
);

fn mapping(user: &str, audit_dir: &std::path::Path) -> String {
    format!(
        r#"
[mapping]
deny_users = ["root"]
[mapping.users]
{user} = "arn:aws:iam::123456789012:role/{user}-role"
[[cluster]]
name = "demo"
[[cluster]]
name = "described"
[audit]
file = "{dir}/audit.jsonl"
recordings_dir = "{dir}/sessions"
"#,
        dir = audit_dir.display()
    )
}

/// Where the broker writes its audit file and recordings; `owner`: the broker's uid.
fn audit_dir(owner: Option<u32>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::chown(dir.path(), owner, None).unwrap();
    dir
}

/// `rolesh __event EVENT FIELDS…` as `uid`, as a session would emit it.
fn session_event(b: &BrokerProc, uid: u32, session_id: &str, event: &str, fields: &[&str]) -> Run {
    let mut cmd = rolesh();
    cmd.arg("__event")
        .arg(event)
        .args(fields)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ROLESH_BROKER_SOCKET", b.socket())
        .env("ROLESH_SESSION_ID", session_id)
        .env("SSH_CLIENT", "203.0.113.9 52144 22")
        .uid(uid);
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

fn jsonl(path: &std::path::Path) -> Vec<Map<String, Value>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap()
                .as_object()
                .unwrap()
                .clone()
        })
        .collect()
}

fn every_event_reaches_journald_and_the_json_lines_file_with_its_fields() {
    journal::ensure_journald();
    let alice = TestUser::create("audalice", &[]);
    let stranger = TestUser::create("audstranger", &[]);
    // The broker runs as its own system user, as `rolesh` does in production.
    let broker_user = TestUser::create("audbroker", &[]);
    let dir = audit_dir(Some(broker_user.uid()));
    let from_broker = journal::from_process_since_now();
    let b = BrokerProc::start_as(broker_user.uid(), "", &mapping("audalice", dir.path()));
    let sid = unique_session_id();
    // Earlier runs left entries for the same user names: look at this run's only.
    let since = format!(
        "@{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );

    // STS down: an error event; then up again: assume_role and token.
    let handle = b.aws().handle();
    handle.fail_next(Api::Sts, 8, http::StatusCode::INTERNAL_SERVER_ERROR);
    let failed = b.client(alice.uid(), &["token", "--cluster", "demo"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    handle.clear_faults();
    // A process in no session that names one: the token event links to none (the session
    // comes from the process's cgroup, tests/session_ssh.rs).
    let mut cmd = rolesh();
    cmd.args(["token", "--cluster", "demo"])
        .env_clear()
        .env("ROLESH_BROKER_SOCKET", b.socket())
        .env("ROLESH_SESSION_ID", &sid)
        .uid(alice.uid());
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let denied = b.client(stranger.uid(), &["token", "--cluster", "demo"]);
    assert_eq!(denied.code, 77);
    session_event(&b, alice.uid(), &sid, "login", &[]);
    session_event(
        &b,
        alice.uid(),
        &sid,
        "exec",
        &[
            "cluster=demo",
            "namespace=web",
            "pod=web-1",
            "container=app",
            "command=sh",
            "exit_code=3",
        ],
    );
    // Claims about who the session is are dropped: the kernel says who.
    session_event(
        &b,
        alice.uid(),
        &sid,
        "command",
        &[
            "command=kubectl get pods",
            "exit_code=0",
            "user=root",
            "uid=0",
        ],
    );
    session_event(&b, alice.uid(), &sid, "logout", &["exit_code=0"]);

    let by_broker = journal::wait_for(&from_broker(b.pid()), |es| {
        [
            "assume_role",
            "token",
            "denied",
            "error",
            "login",
            "exec",
            "command",
            "logout",
        ]
        .iter()
        .all(|e| !of_event(es, e).is_empty())
    });
    let broker_uid = broker_user.uid().to_string();
    for e in &by_broker {
        assert_eq!(
            field(e, "_UID"),
            Some(broker_uid.as_str()),
            "the broker's uid: {e:?}"
        );
        assert_eq!(field(e, "SYSLOG_IDENTIFIER"), Some("rolesh-audit"));
    }
    let one = |event: &str| of_event(&by_broker, event)[0].clone();
    let role = "arn:aws:iam::123456789012:role/audalice-role";
    let uid = alice.uid().to_string();

    let assume = one("assume_role");
    assert_eq!(field(&assume, "ROLESH_USER"), Some("audalice"));
    assert_eq!(field(&assume, "ROLESH_UID"), Some(uid.as_str()));
    assert_eq!(field(&assume, "ROLESH_ROLE_ARN"), Some(role));
    assert_eq!(field(&assume, "ROLESH_SESSION_NAME"), Some("audalice"));
    let token = one("token");
    assert_eq!(field(&token, "ROLESH_CLUSTER"), Some("demo"));
    assert_eq!(field(&token, "ROLESH_ROLE_ARN"), Some(role));
    assert_eq!(
        field(&token, "ROLESH_SESSION_ID"),
        None,
        "a claimed session"
    );
    let denied = one("denied");
    assert_eq!(field(&denied, "ROLESH_USER"), Some("audstranger"));
    assert!(field(&denied, "ROLESH_REASON").is_some());
    let error = one("error");
    assert_eq!(field(&error, "ROLESH_USER"), Some("audalice"));
    assert_eq!(field(&error, "ROLESH_ROLE_ARN"), Some(role));
    assert!(field(&error, "ROLESH_REASON").is_some_and(|r| !r.is_empty()));

    for event in ["login", "exec", "command", "logout"] {
        let e = one(event);
        assert_eq!(field(&e, "ROLESH_USER"), Some("audalice"), "{e:?}");
        assert_eq!(field(&e, "ROLESH_UID"), Some(uid.as_str()));
        assert_eq!(field(&e, "ROLESH_ROLE_ARN"), Some(role));
        assert_eq!(field(&e, "ROLESH_SESSION_ID"), Some(sid.as_str()));
        assert_eq!(field(&e, "ROLESH_SSH_CLIENT"), Some("203.0.113.9 52144 22"));
        assert_eq!(field(&e, "ROLESH_REPORTED_BY"), Some("session"));
    }
    let exec = one("exec");
    for (f, v) in [
        ("ROLESH_CLUSTER", "demo"),
        ("ROLESH_NAMESPACE", "web"),
        ("ROLESH_POD", "web-1"),
        ("ROLESH_CONTAINER", "app"),
        ("ROLESH_COMMAND", "sh"),
        ("ROLESH_EXIT_CODE", "3"),
    ] {
        assert_eq!(field(&exec, f), Some(v), "{f} in {exec:?}");
    }
    assert_eq!(
        field(&one("command"), "ROLESH_COMMAND"),
        Some("kubectl get pods")
    );

    // The JSON Lines copy: the same records, typed.
    let lines = jsonl(&dir.path().join("audit.jsonl"));
    let line = |event: &str| {
        lines
            .iter()
            .find(|l| l["event"] == event && (l["user"] == "audalice" || event == "denied"))
            .unwrap_or_else(|| panic!("no {event} in {lines:#?}"))
            .clone()
    };
    assert_eq!(line("assume_role")["role_arn"], role);
    assert_eq!(line("token")["uid"], alice.uid());
    assert_eq!(line("denied")["user"], "audstranger");
    let exec = line("exec");
    assert_eq!(exec["exit_code"], 3);
    assert_eq!(exec["pod"], "web-1");
    assert_eq!(exec["session_id"], sid.as_str());
    assert!(exec["ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(line("command")["uid"], alice.uid());
    let meta = std::fs::metadata(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o640);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        broker_user.uid()
    );

    // rolesh audit: who assumed which role, when, which pods.
    let mut cmd = rolesh();
    let table = run(cmd
        .args([
            "audit",
            "--user",
            "audalice",
            "--broker-user",
            "audbroker",
            "--since",
        ])
        .arg(&since));
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table
            .stdout
            .contains(&format!("audalice     assume_role {role}")),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("demo/web/web-1/app sh (exit 3)"),
        "{}",
        table.stdout
    );
    let mut cmd = rolesh();
    let unbelieved = run(cmd
        .args([
            "audit",
            "--user",
            "audalice",
            "--broker-user",
            "audnobody",
            "--since",
        ])
        .arg(&since));
    assert!(
        !unbelieved.stdout.contains("assume_role"),
        "{}",
        unbelieved.stdout
    );
    assert!(
        unbelieved.stderr.contains("left out"),
        "{}",
        unbelieved.stderr
    );
    let mut cmd = rolesh();
    let file = run(cmd
        .args(["audit", "--json", "--file"])
        .arg(dir.path().join("audit.jsonl")));
    assert!(
        file.stdout
            .lines()
            .any(|l| l.contains(r#""event":"logout""#)),
        "{}",
        file.stdout
    );
}

fn forged_journal_entries_do_not_fool_rolesh_audit() {
    journal::ensure_journald();
    let mallory = TestUser::create("audmallory", &[]);
    let marker = unique_session_id();
    let forge = |fields: &str| {
        let mut cmd = Command::new("logger");
        cmd.arg("--journald").uid(mallory.uid());
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        let text = format!(
            "MESSAGE=forged\nSYSLOG_IDENTIFIER=rolesh-audit\nROLESH_SESSION_ID={marker}\n{fields}\n"
        );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    };
    let uid = mallory.uid();
    forge("ROLESH_EVENT=token\nROLESH_USER=audvictim\nROLESH_UID=0\nROLESH_CLUSTER=prod");
    forge(&format!(
        "ROLESH_EVENT=assume_role\nROLESH_USER=audmallory\nROLESH_UID={uid}\nROLESH_ROLE_ARN=arn:aws:iam::1:role/admin"
    ));
    forge("ROLESH_EVENT=login\nROLESH_USER=audvictim\nROLESH_UID=0");
    forge(&format!(
        "ROLESH_EVENT=login\nROLESH_USER=audmallory\nROLESH_UID={uid}"
    ));
    journal::wait_for(&[format!("ROLESH_SESSION_ID={marker}")], |es| es.len() == 4);

    let mut cmd = rolesh();
    let out = run(cmd.args(["audit", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["session_id"] == marker.as_str())
        .collect();
    assert_eq!(
        shown.len(),
        1,
        "only mallory's own login, as self-reported: {shown:#?}"
    );
    assert_eq!(shown[0]["event"], "login");
    assert_eq!(shown[0]["user"], "audmallory");
    assert_eq!(shown[0]["source"], "self-reported");
    assert!(out.stderr.contains("left out"), "{}", out.stderr);
}

/// `logger --journald` as mallory, the way finding 5 of issue 16 forged it: her own uid in
/// `ROLESH_UID`, `ROLESH_REPORTED_BY=session-direct` (what a session writes when the broker
/// is unreachable), and someone else's name in `ROLESH_USER`.
fn forge_as(uid: u32, fields: &str) {
    let mut cmd = Command::new("logger");
    cmd.arg("--journald")
        .uid(uid)
        .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(fields.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn a_self_reported_entry_naming_another_user_is_shown_as_its_writers() {
    journal::ensure_journald();
    let mallory = TestUser::create("audmal5", &[]);
    let _victim = TestUser::create("audvict5", &[]);
    let marker = unique_session_id();
    // Earlier runs' users may have had these uids: look at this run's entries only.
    let since = format!(
        "@{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    forge_as(
        mallory.uid(),
        &format!(
            "MESSAGE=rolesh exec\nSYSLOG_IDENTIFIER=rolesh-audit\nROLESH_EVENT=exec\nROLESH_USER=audvict5\nROLESH_UID={}\nROLESH_REPORTED_BY=session-direct\nROLESH_CLUSTER=prod\nROLESH_NAMESPACE=kube-system\nROLESH_POD=etcd-0\nROLESH_COMMAND=sh\nROLESH_EXIT_CODE=0\nROLESH_SESSION_ID={marker}\n",
            mallory.uid()
        ),
    );
    journal::wait_for(&[format!("ROLESH_SESSION_ID={marker}")], |es| es.len() == 1);
    let audit = |user: &str, json: bool| {
        let mut cmd = rolesh();
        cmd.args(["audit", "--user", user, "--since", &since]);
        if json {
            cmd.arg("--json");
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .filter(|l| l.contains(&marker))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let marked = |user: &str| {
        let mut cmd = rolesh();
        let out = run(cmd.args(["audit", "--user", user, "--since", &since]));
        out.stdout
            .lines()
            .filter(|l| l.contains("kube-system/etcd-0"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    // Not victim's: the entry names victim, but mallory wrote it.
    assert_eq!(audit("audvict5", true), Vec::<String>::new());
    assert!(marked("audvict5").is_empty(), "{:?}", marked("audvict5"));
    // Mallory's, with the claim visible.
    let shown = audit("audmal5", true);
    assert_eq!(shown.len(), 1, "{shown:?}");
    let shown: Value = serde_json::from_str(&shown[0]).unwrap();
    assert_eq!(shown["user"], "audmal5");
    assert_eq!(shown["claimed_user"], "audvict5");
    assert_eq!(shown["source"], "self-reported");
    let rows = marked("audmal5");
    assert!(
        rows.iter()
            .any(|r| r.contains("audmal5") && r.ends_with("[self-reported, claims audvict5]")),
        "{rows:?}"
    );
}

/// Finding 6 of issue 16: a command line with CR, LF and a terminal escape, reported by a
/// session through the broker and written by a session directly, must not print a line of
/// its own in `journalctl -o cat`, nor reach the JSON Lines file raw.
fn control_characters_a_session_reports_cannot_fake_a_journal_line() {
    journal::ensure_journald();
    let eve = TestUser::create("audctl", &[]);
    let dir = audit_dir(None);
    let b = BrokerProc::start("", &mapping("audctl", dir.path()));
    let sid = unique_session_id();
    let forged = "kubectl get pods\r\nrolesh login user=root\u{1b}[2K\u{1b}[1A\u{9b}2J\u{7f}";
    let command = format!("command={forged}");
    session_event(&b, eve.uid(), &sid, "command", &[&command, "exit_code=0"]);
    // The same from a session whose broker is unreachable (written to journald directly).
    let nowhere = tempfile::tempdir().unwrap();
    let mut cmd = rolesh();
    cmd.args(["__event", "command", &command])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ROLESH_BROKER_SOCKET", nowhere.path().join("none.sock"))
        .env("ROLESH_SESSION_ID", &sid)
        .uid(eve.uid());
    assert_eq!(run(&mut cmd).code, 0);
    let matches = [format!("ROLESH_SESSION_ID={sid}")];
    let found = journal::wait_for(&matches, |es| es.len() == 2);

    let escaped =
        "kubectl get pods\\r\\nrolesh login user=root\\u001b[2K\\u001b[1A\\u009b2J\\u007f";
    for e in &found {
        // journalctl -o json gives a field with control characters as an array of bytes:
        // a string here means none is left.
        assert_eq!(field(e, "ROLESH_COMMAND"), Some(escaped), "{e:?}");
        let message = field(e, "MESSAGE").expect("a printable MESSAGE");
        assert!(message.contains(escaped), "{message}");
    }
    let cat = Command::new("journalctl")
        .args(["-o", "cat", "--no-pager"])
        .args(&matches)
        .output()
        .unwrap()
        .stdout;
    let text = String::from_utf8_lossy(&cat);
    assert_eq!(text.lines().count(), 2, "one line per entry: {text:?}");
    assert!(
        !text.lines().any(|l| l.starts_with("rolesh login")),
        "{text:?}"
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );

    // The JSON Lines copy: no raw control character either, and the value intact.
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(!raw.chars().any(|c| c.is_control() && c != '\n'), "{raw:?}");
    let line = jsonl(&dir.path().join("audit.jsonl"))
        .into_iter()
        .find(|l| l["session_id"] == sid.as_str())
        .unwrap();
    assert_eq!(line["command"], forged);
}

/// Finding 8 of issue 16: one user flooded the audit file through the broker (94 MiB in
/// 10 s). With `event_rate_per_uid = 5` (bursts of 10), a burst of 100 events from a
/// session is cut to about that; the excess is refused and reported in one `error`
/// event. What the session monitor (root) reports for the user is not limited.
fn a_session_flooding_events_is_cut_to_its_rate_and_the_drops_counted_once() {
    let eve = TestUser::create("audflood", &[]);
    let dir = audit_dir(None);
    let config = format!(
        "{}event_rate_per_uid = 5\n",
        mapping("audflood", dir.path())
    );
    let b = BrokerProc::start("", &config);
    let flood: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"v":1,"op":"event","fields":{{"event":"command","command":"flood {i}"}}}}"#
            )
        })
        .collect();
    let lines: Vec<&str> = flood.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let answers = b.raw(eve.uid(), &lines);
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = answers.iter().filter(|a| a["ok"] == true).count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|a| a.get("error").is_some())
        .collect();
    assert_eq!(accepted + refused.len(), 100, "{answers:?}");
    let bound = 10 + (5.0 * elapsed).ceil() as usize;
    assert!(
        (10..=bound).contains(&accepted),
        "{accepted} accepted in {elapsed}s"
    );
    assert_eq!(refused[0]["error"]["code"], "unavailable");
    assert!(
        refused[0]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("audit event rate limit: at most 5 events per second per user"),
        "{refused:?}"
    );
    // The monitor speaking for the same user: not limited.
    let uid = eve.uid();
    let by_monitor: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"v":1,"op":"event","uid":{uid},"fields":{{"event":"login","command":"monitor {i}"}}}}"#))
        .collect();
    let lines: Vec<&str> = by_monitor.iter().map(String::as_str).collect();
    let answers = b.raw(0, &lines);
    assert!(answers.iter().all(|a| a["ok"] == true), "{answers:?}");

    let records = jsonl(&dir.path().join("audit.jsonl"));
    let written = |event: &str| {
        records
            .iter()
            .filter(|r| r["event"] == event && r["user"] == "audflood")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(written("command").len(), accepted);
    assert_eq!(written("login").len(), 30);
    let reports = written("error");
    assert_eq!(reports.len(), 1, "one report a minute: {reports:?}");
    assert!(
        reports[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("dropped 1 session event of this user: more than 5 per second"),
        "{reports:?}"
    );
}

fn no_secret_reaches_journald_the_json_lines_file_or_stderr() {
    journal::ensure_journald();
    let alice = TestUser::create("audsecret", &[]);
    let dir = audit_dir(None);
    let from_broker = journal::from_process_since_now();
    let b = BrokerProc::start(
        "expose_credentials = true",
        &mapping("audsecret", dir.path()),
    );
    let base_secret = b.aws().options().secret_access_key.clone();
    let session_token = format!("IQoJb3JpZ2luX2VjE{}", "Ab1+/Cd2".repeat(40));
    let bearer = "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5";
    let foreign_key = "Zx9/QwErTy+UiOp1AsDfGhJkL2ZxCvBnM3qWeRtY";
    let echoed = format!(
        "denied for key {base_secret} with token {session_token}; Authorization: Bearer {bearer}; <SecretAccessKey>{foreign_key}</SecretAccessKey>"
    );
    let secrets = [base_secret.as_str(), &session_token, bearer, foreign_key];
    let mut stderrs = String::new();

    // STS error bodies echoing secrets: the client's error and the broker's error event.
    b.aws()
        .handle()
        .fail_next_with_message(Api::Sts, 8, http::StatusCode::FORBIDDEN, &echoed);
    let failed = b.client(alice.uid(), &["token", "--cluster", "demo"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    stderrs.push_str(&failed.stderr);
    b.aws().handle().clear_faults();
    // Real credentials and tokens, which the broker hands out but never logs.
    let creds = b.client(alice.uid(), &["credentials"]);
    assert_eq!(creds.code, 0, "{}", creds.stderr);
    let creds: Value = serde_json::from_str(&creds.stdout).unwrap();
    let token = b.client(alice.uid(), &["token", "--cluster", "demo"]);
    let token: Value = serde_json::from_str(&token.stdout).unwrap();
    let issued = [
        creds["SecretAccessKey"].as_str().unwrap().to_string(),
        creds["SessionToken"].as_str().unwrap().to_string(),
        token["status"]["token"].as_str().unwrap().to_string(),
    ];
    // EKS DescribeCluster error bodies echoing secrets.
    b.aws()
        .handle()
        .fail_next_with_message(Api::Eks, 8, http::StatusCode::BAD_REQUEST, &echoed);
    let answers = b.raw(
        alice.uid(),
        &[r#"{"v":1,"op":"cluster","cluster":"described"}"#],
    );
    assert!(answers[0].get("error").is_some(), "{answers:?}");
    stderrs.push_str(&answers[0].to_string());
    // A session reporting secrets it saw (a command line, a failure reason).
    let sid = unique_session_id();
    let r = session_event(
        &b,
        alice.uid(),
        &sid,
        "command",
        &[
            &format!("command=aws configure set aws_secret_access_key {foreign_key}"),
            "exit_code=0",
        ],
    );
    stderrs.push_str(&r.stderr);
    let r = session_event(&b, alice.uid(), &sid, "error", &[]);
    stderrs.push_str(&r.stderr);

    let entries = journal::wait_for(&from_broker(b.pid()), |es| {
        !of_event(es, "error").is_empty()
            && !of_event(es, "command").is_empty()
            && !of_event(es, "token").is_empty()
    });
    let error = of_event(&entries, "error")[0].clone();
    assert!(
        field(&error, "ROLESH_REASON")
            .unwrap()
            .contains("<redacted>"),
        "{error:?}"
    );
    let journal_text = serde_json::to_string(&entries).unwrap();
    let jsonl_text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let log = b.log();
    for secret in secrets
        .iter()
        .copied()
        .chain(issued.iter().map(String::as_str))
    {
        for (place, text) in [
            ("journald", &journal_text),
            ("the JSON Lines file", &jsonl_text),
            ("the broker's stderr", &log),
            ("the clients' stderr", &stderrs),
        ] {
            assert!(!text.contains(secret), "{secret} reached {place}:\n{text}");
        }
    }
    assert!(stderrs.contains("<redacted>"), "{stderrs}");
}

fn a_session_that_cannot_reach_the_broker_logs_to_journald_as_itself() {
    journal::ensure_journald();
    let frank = TestUser::create("audfrank", &[]);
    let sid = unique_session_id();
    let nowhere = tempfile::tempdir().unwrap();
    let mut cmd = rolesh();
    cmd.args(["__event", "logout", "exit_code=0", "uid=0", "user=root"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ROLESH_BROKER_SOCKET", nowhere.path().join("none.sock"))
        .env("ROLESH_SESSION_ID", &sid)
        .uid(frank.uid());
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let found = journal::wait_for(&[format!("ROLESH_SESSION_ID={sid}")], |es| es.len() == 1);
    let uid = frank.uid().to_string();
    assert_eq!(field(&found[0], "_UID"), Some(uid.as_str()));
    assert_eq!(
        field(&found[0], "ROLESH_UID"),
        Some(uid.as_str()),
        "its own uid, not the claim"
    );
    assert_eq!(field(&found[0], "ROLESH_USER"), None);
    assert_eq!(
        field(&found[0], "ROLESH_REPORTED_BY"),
        Some("session-direct")
    );
    assert!(field(&found[0], "ROLESH_REPORT_ERROR").is_some());

    let mut cmd = rolesh();
    let out = run(cmd.args(["audit", "--json"]));
    let shown: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["session_id"] == sid.as_str())
        .collect();
    assert_eq!(shown.len(), 1, "{}", out.stdout);
    assert_eq!(shown[0]["source"], "self-reported");
}

fn a_reload_moves_the_audit_file_and_one_that_cannot_be_opened_keeps_the_old() {
    let carol = TestUser::create("audreload", &[]);
    let (first, second) = (audit_dir(None), audit_dir(None));
    let b = BrokerProc::start("", &mapping("audreload", first.path()));
    let sid = unique_session_id();
    let logins_in = |dir: &tempfile::TempDir| {
        let lines = jsonl(&dir.path().join("audit.jsonl"));
        lines.iter().filter(|l| l["event"] == "login").count()
    };
    let login = || session_event(&b, carol.uid(), &sid, "login", &[]);
    login();
    assert_eq!((logins_in(&first), logins_in(&second)), (1, 0));

    // `systemctl reload rolesh-broker` after [audit] file changed: the next event is there.
    let config = std::fs::read_to_string(b.config_path()).unwrap();
    let first_path = first.path().display().to_string();
    let moved = config.replace(&first_path, &second.path().display().to_string());
    std::fs::write(b.config_path(), &moved).unwrap();
    b.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until_logged(&b, "configuration reloaded");
    login();
    assert_eq!((logins_in(&first), logins_in(&second)), (1, 1));

    // A file that cannot be opened: said with its path, and everything stays as it was.
    let missing = "/nonexistent-rolesh-audit-dir/audit.jsonl";
    let broken = moved.replace(&format!("{}/audit.jsonl", second.path().display()), missing);
    std::fs::write(b.config_path(), broken).unwrap();
    b.signal(nix::sys::signal::Signal::SIGHUP);
    wait_until_logged(&b, "keeping the previous configuration");
    assert!(
        b.log()
            .contains(&format!("cannot open the audit file {missing}")),
        "{}",
        b.log()
    );
    login();
    assert_eq!((logins_in(&first), logins_in(&second)), (1, 2));
}

/// Waits (10 s at most) until the broker's log has `text`.
fn wait_until_logged(b: &BrokerProc, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.log().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "never logged {text:?}: {}",
            b.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
