//! The login shell end to end: a real OpenSSH server on a loopback port, real accounts
//! whose login shell is rolesh, key authentication, the broker on its compiled-in socket
//! (/run/rolesh/broker.sock) and the fake AWS. One test function: the socket path is
//! fixed, so these steps must not run in parallel with each other.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::BrokerProc;
use common::tmux::Tmux;
use common::*;

common::harness::tests!(root: [ssh_sessions_through_rolesh]);

struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(dir: &Path) -> Sshd {
    std::fs::create_dir_all("/run/sshd").unwrap();
    let key = dir.join("host_key");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}/keys/%u\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nAcceptEnv *\nPermitUserEnvironment no\nSubsystem sftp /usr/lib/openssh/sftp-server\nLogLevel VERBOSE\n",
            key.display(),
            dir.join("sshd.pid").display(),
            dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd {
        child,
        port,
        dir: dir.to_path_buf(),
    }
}

impl Sshd {
    fn authorize(&self, user: &str) {
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        let public = std::fs::read_to_string(self.dir.join("client_key.pub")).unwrap();
        std::fs::write(keys.join(user), public).unwrap();
        std::fs::set_permissions(keys.join(user), std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// An interactive login (`ssh -tt`) that is typed `input` at once, until it ends.
    fn login_typing(&self, user: &str, input: &[u8]) -> std::process::Output {
        let mut cmd = self.ssh(user, &["-tt"], &[]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.as_mut().unwrap().write_all(input).unwrap();
        wait_with_deadline(child, Duration::from_secs(60))
    }

    /// The same ssh command line as text, for a terminal to run.
    fn ssh_line(&self, user: &str, extra: &[&str]) -> String {
        let cmd = self.ssh(user, extra, &[]);
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn ssh(&self, user: &str, extra: &[&str], command: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-q", "-i"])
            .arg(self.dir.join("client_key"))
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .args(command);
        cmd
    }
}

/// /etc/shells gains the test binary for the test's duration.
struct Shells(String);
impl Shells {
    fn add(shell: &Path) -> Shells {
        let before = std::fs::read_to_string("/etc/shells").unwrap_or_default();
        std::fs::write("/etc/shells", format!("{before}{}\n", shell.display())).unwrap();
        Shells(before)
    }
}
impl Drop for Shells {
    fn drop(&mut self) {
        let _ = std::fs::write("/etc/shells", &self.0);
    }
}

fn ssh_sessions_through_rolesh() {
    require(
        "openssh-server (apt-get install openssh-server)",
        Path::new("/usr/sbin/sshd").exists(),
    );
    // The binary where every account can run it.
    let bin_dir = session_visible_tempdir("rolesh-e2e");
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shell = bin_dir.path().join("rolesh");
    std::fs::copy(env!("CARGO_BIN_EXE_rolesh"), &shell).unwrap();
    let _shells = Shells::add(&shell);
    let alice = TestUser::create("rsealice", &[]);
    let denied = TestUser::create("rsedenied", &[]);
    let contractor = TestUser::create("rsecarl", &["rsecontractors"]);
    let idler = TestUser::create("rseidle", &["rseidlers"]);
    let picker = TestUser::create("rsepick", &["rsepickers"]);
    let recorded = TestUser::create("rserec", &["rserecorders"]);
    let homes = session_visible_tempdir("rolesh-homes");
    std::fs::set_permissions(homes.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for u in [&alice, &denied, &contractor, &idler, &picker, &recorded] {
        let home = homes.path().join(&u.name);
        std::fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(u.uid()), None).unwrap();
        let out = Command::new("usermod")
            .arg("-s")
            .arg(&shell)
            .arg("-d")
            .arg(&home)
            .arg(&u.name)
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    std::fs::create_dir_all("/run/rolesh").unwrap();
    // The rolesh-testkit stack (fake AWS, fake EKS clusters demo and staging) with its
    // config, and this drop-in for the test's accounts and session settings.
    let drop_in = "[mapping]\ndeny_users = [\"rsedenied\"]\n[session]\nallowed_commands = [\"kubectl\", \"helm\", \"env\", \"sleep\"]\nmax_duration = \"5m\"\nbanner = \"Authorized use only (rolesh test).\"\n[[session.override]]\ngroups = [\"rsecontractors\"]\nmode = \"restricted\"\n[[session.override]]\ngroups = [\"rseidlers\"]\nidle_timeout = \"1m\"\n[[session.override]]\ngroups = [\"rsepickers\"]\nmode = \"picker\"\n";
    // The audit trail's JSON Lines copy and the recordings, written by the broker.
    let audit_dir = tempfile::tempdir().unwrap();
    let drop_in = format!(
        "{drop_in}[[session.override]]\ngroups = [\"rserecorders\"]\nrecord = \"all\"\n\
         [audit]\nfile = \"{0}/audit.jsonl\"\nrecordings_dir = \"{0}/sessions\"\n",
        audit_dir.path().display()
    );
    let mut b = BrokerProc::start_stack(&drop_in);
    // Login mode honours no socket variable: the broker must be on the compiled-in path.
    b.kill();
    let _ = std::fs::remove_file("/run/rolesh/broker.sock");
    std::os::unix::fs::symlink(b.socket(), "/run/rolesh/broker.sock").ok();
    b.spawn();

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.path().join("client_key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let sshd = start_sshd(dir.path());
    sshd.authorize("rsealice");
    sshd.authorize("rsedenied");
    sshd.authorize("rsecarl");
    sshd.authorize("rseidle");
    sshd.authorize("rsepick");
    sshd.authorize("rserec");

    // Idle timeout (1 minute for rseidlers): a session where nobody types gets a warning,
    // then ends. Started first and checked last, so the minute overlaps the other steps.
    let mut idle = sshd.ssh("rseidle", &["-tt"], &[]);
    idle.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let idle = idle.spawn().unwrap();
    let idle_started = Instant::now();

    // ssh bastion kubectl …: contexts from the in-memory kubeconfig.
    let r = run(&mut sshd.ssh(
        "rsealice",
        &[],
        &["kubectl", "config", "get-contexts", "-o", "name"],
    ));
    assert_eq!(
        r.code,
        0,
        "{}\nsshd: {}",
        r.stderr,
        std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default()
    );
    assert_eq!(
        r.stdout,
        "demo\ndemo/jobs\ndemo/web\nstaging\nstaging/jobs\nstaging/web\n"
    );

    // ssh alice@bastion kubectl get pods -n web: the cluster sees the Unix user.
    let demo = b.stack().unwrap().cluster("demo").unwrap();
    demo.handle().clear_events();
    let r = run(&mut sshd.ssh(
        "rsealice",
        &[],
        &["kubectl", "get", "pods", "-n", "web", "-o", "name"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("pod/"), "{}", r.stdout);
    let users: Vec<Option<String>> = demo.handle().events().into_iter().map(|e| e.user).collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some("rsealice")),
        "{users:?}"
    );
    // helm loads the same in-memory kubeconfig (client-go's loader, as kubectl does): it
    // reaches the cluster as the user, whose RBAC (pods only) refuses helm's release
    // secrets — the server's answer, for the right user.
    require(
        "helm 3 on /usr/local/bin (scripts/setup installs it)",
        Path::new("/usr/local/bin/helm").exists(),
    );
    {
        demo.handle().clear_events();
        let r = run(&mut sshd.ssh("rsealice", &[], &["helm", "list", "-n", "web"]));
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(
                "secrets is forbidden: User \"rsealice\" cannot list resource \"secrets\""
            ),
            "{}",
            r.stderr
        );
        let seen = demo.handle().events();
        assert!(
            seen.iter().any(|e| e.user.as_deref() == Some("rsealice")
                && e.path == "/api/v1/namespaces/web/secrets"
                && e.status == 403),
            "{seen:?}"
        );
    }
    let r = run(&mut sshd.ssh(
        "rsealice",
        &[],
        &["kubectl", "get", "pods", "-n", "kube-system"],
    ));
    assert_ne!(r.code, 0, "RBAC on the cluster still decides");
    assert!(
        r.stderr.to_lowercase().contains("forbidden"),
        "{}",
        r.stderr
    );

    // The environment sshd passes (AcceptEnv *) does not reach the command.
    let r = run(&mut sshd.ssh(
        "rsealice",
        &["-o", "SetEnv=BASH_ENV=/tmp/evil AWS_SECRET_ACCESS_KEY=stolen KUBECONFIG=/tmp/evil LD_LIBRARY_PATH=/tmp/evil ROLESH_SESSION_ID=0123456789abcdef01234567 SSH_CLIENT=forged"],
        &["env"],
    ));
    assert_eq!(r.code, 0, "{}", r.stderr);
    for bad in ["BASH_ENV", "AWS_", "LD_LIBRARY_PATH", "/tmp/evil", "stolen"] {
        assert!(!r.stdout.contains(bad), "{bad} leaked:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("USER=rsealice\n"), "{}", r.stdout);
    let env_session_id = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROLESH_SESSION_ID="))
        .expect("the session id is set")
        .to_string();
    assert_ne!(
        env_session_id, "0123456789abcdef01234567",
        "the client chose the session id"
    );
    assert!(!r.stdout.contains("forged"), "{}", r.stdout);
    let kubeconfig = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("KUBECONFIG="))
        .unwrap()
        .to_string();
    let overlay = kubeconfig.split(':').next().unwrap();
    assert!(
        overlay.starts_with("/dev/shm/rolesh-") || overlay.starts_with("/run/user/"),
        "{kubeconfig}"
    );
    assert!(
        !Path::new(overlay).exists(),
        "the session's kubeconfig is gone after it ends"
    );

    // Not allowed, file transfer, denied.
    let r = run(&mut sshd.ssh("rsealice", &[], &["bash", "-i"]));
    assert_eq!(r.code, 126);
    assert_eq!(
        r.stderr,
        "rolesh: 'bash' is not allowed on this bastion (allowed: kubectl, helm, env, sleep, exec, kubeconfig, token, credentials)\n"
    );
    // No shell ever sees the command: `|` and `$(…)` are plain arguments to `env`, which
    // then fails to find a program called "|" or "$(id)".
    for line in ["env | id", "env $(id)"] {
        let r = run(&mut sshd.ssh("rsealice", &[], &[line]));
        assert_eq!(r.code, 127, "{line}: {}", r.stderr);
        assert!(!r.stdout.contains("uid="), "{line} ran id: {}", r.stdout);
    }
    let r = run(&mut sshd.ssh("rsealice", &[], &["scp", "-t", "/tmp"]));
    assert_eq!(r.code, 126);
    assert_eq!(
        r.stderr,
        "rolesh: file transfer is disabled on this bastion\n"
    );
    let probe = dir.path().join("probe.txt");
    std::fs::write(&probe, "x").unwrap();
    let mut scp = Command::new("scp");
    scp.args(["-q", "-O", "-i"])
        .arg(dir.path().join("client_key"))
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-P",
        ])
        .arg(sshd.port.to_string())
        .arg(&probe)
        .arg("rsealice@127.0.0.1:/tmp/rolesh-scp-probe");
    let r = run(&mut scp);
    assert_ne!(r.code, 0);
    assert!(!Path::new("/tmp/rolesh-scp-probe").exists());
    let r = run(&mut sshd.ssh("rsedenied", &[], &["kubectl", "version", "--client"]));
    assert_eq!(r.code, 77);
    assert_eq!(
        r.stderr,
        "rolesh: user rsedenied is in [mapping] deny_users\n"
    );

    // An interactive login through a pty: banner, then a shell with kubectl configured, a
    // token from the broker for kubectl, the terminal's size, and a private /tmp (where the
    // kernel lets unprivileged users have a user namespace).
    let marker = format!("rolesh-host-marker-{}", std::process::id());
    std::fs::write(Path::new("/tmp").join(&marker), "host").unwrap();
    let userns = Command::new("runuser")
        .args(["-u", "rsealice", "--", "unshare", "--user", "true"])
        .status()
        .unwrap()
        .success();
    let out = sshd.login_typing("rsealice", format!(
                "kubectl config current-context; echo \"mode=$SHELL\"; kubectl get pods -n web -o name | head -n1; \
                 kubectx staging/jobs >/dev/null 2>&1; echo \"kubectx: $(kubectx | wc -l) ctx=$(kubectl config current-context) ns=$(kubens -c)\"; \
                 stty size; test -e /tmp/{marker} && echo tmp=shared || echo tmp=private; \
                 touch /tmp/{marker}.session; {escape} exit 7\n",
                // A process that leaves the terminal's session: still in the session's user
                // namespace, so it ends with the session too (without a namespace it would
                // not, which the README says).
                escape = if userns { "setsid -f sleep 1234 </dev/null >/dev/null 2>&1;" } else { "" }
            )
            .as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Authorized use only (rolesh test)."),
        "{text}"
    );
    assert!(
        text.contains("\ndemo\r\n") || text.contains("demo\r\n"),
        "{text}"
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "the shell's exit code is rolesh's: {text}"
    );
    assert!(
        text.contains("pod/"),
        "kubectl got a token inside the session: {text}"
    );
    assert!(
        text.contains("24 80\r\n"),
        "the session's own pty has a size: {text}"
    );
    assert!(
        text.contains("kubectx: 6 ctx=staging/jobs ns=jobs\r\n"),
        "kubectx lists and switches the session's contexts, kubens sees the namespace: {text}"
    );
    let expected = if userns { "tmp=private" } else { "tmp=shared" };
    assert!(text.contains(expected), "userns={userns}: {text}");
    assert_eq!(
        Path::new("/tmp").join(format!("{marker}.session")).exists(),
        !userns,
        "a file the session made in its private /tmp stays there"
    );
    let _ = std::fs::remove_file(Path::new("/tmp").join(&marker));
    assert_no_processes_left("rsealice");

    // Restricted mode: rolesh's own prompt, built-ins, and refusals with their reasons.
    let mut cmd = sshd.ssh("rsecarl", &["-tt"], &[]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Typed one line at a time, as a person would: line editors discard type-ahead when
    // they switch the terminal to raw mode.
    let mut stdin = child.stdin.take().unwrap();
    let typist = std::thread::spawn(move || {
        for line in [
            "help",
            "bash",
            "kubectl get pods | sh",
            "echo $(id)",
            "kubectl config current-context",
            "use demo/web",
            "clusters",
            "exit",
        ] {
            std::thread::sleep(Duration::from_millis(700));
            if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    let out = wait_with_deadline(child, Duration::from_secs(60));
    drop(typist);
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    for expected in [
        "Authorized use only (rolesh test).",
        "built-ins: clusters, use CLUSTER[/NAMESPACE]",
        "rolesh: 'bash' is not allowed on this bastion",
        "rolesh: pipes are not available here",
        "rolesh: variable and command expansion are not available here",
        "\ndemo\n",
        "now using demo/web",
        "* demo/web",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(out.status.code(), Some(0), "{text}");

    // A killed ssh client leaves nothing of the user's behind.
    let mut client = sshd
        .ssh("rsealice", &[], &["sleep", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for_pid(&["-u", "rsealice", "-x", "sleep"]).is_some(),
        "sleep never started"
    );
    client.kill().unwrap();
    client.wait().unwrap();
    assert_no_processes_left("rsealice");

    // The idle session from the start: warned, then ended, with nothing left running.
    let out = wait_with_deadline(
        idle,
        Duration::from_secs(100).saturating_sub(idle_started.elapsed()),
    );
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
        idle_started.elapsed() >= Duration::from_secs(60),
        "ended early: {text}"
    );
    assert_eq!(
        out.status.code(),
        Some(129),
        "the shell was hung up: {text}"
    );
    assert_no_processes_left("rseidle");

    // Picker mode: `ssh bastion` lands in the picker; choose a pod, work in it, leave it,
    // and the picker comes back until `q`. Driven through a real terminal (tmux), since
    // the picker asks the terminal for its cursor position.
    let script = format!(
        "{}; echo EXIT=$?; sleep 600",
        sshd.ssh_line("rsepick", &["-tt"])
    );
    let term = Tmux::start("ssh-picker", 100, 30, &script).with_history();
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
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let exec_seen = demo
        .handle()
        .events()
        .into_iter()
        .any(|e| e.user.as_deref() == Some("rsepick") && e.path.ends_with("/exec"));
    assert!(exec_seen, "the cluster saw rsepick's exec");
    drop(term);

    // The connection drops while the user is in a pod: the session ends whole, and the
    // trail still says which pod they were in and that a hangup ended it (below).
    let term = Tmux::start("ssh-picker-drop", 100, 30, &script);
    pick_backfill_and_echo(&term, "in-pod");
    drop(term); // the terminal goes, and the ssh client with it
    assert_no_processes_left("rsepick");

    // record = "all": `ssh bastion CMD` and an interactive login are both recorded by the
    // broker, output as the user saw it, with a clean end.
    let r = run(&mut sshd.ssh("rserec", &[], &["kubectl", "config", "current-context"]));
    assert_eq!((r.code, r.stdout.as_str()), (0, "demo\n"), "{}", r.stderr);
    let out = sshd.login_typing("rserec", b"echo rec-$((2+3)); exit 4\n");
    assert_eq!(out.status.code(), Some(4));
    let recordings: Vec<String> = std::fs::read_dir(audit_dir.path().join("sessions/rserec"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(recordings.len(), 2, "{recordings:?}");
    let with = |needle: &str| recordings.iter().find(|r| r.contains(needle)).cloned();
    let command_cast = with("\"demo\\n\"").expect("the -c command's output is recorded");
    let login_cast = with("rec-5").expect("the interactive session's output is recorded");
    for cast in [&command_cast, &login_cast] {
        let header: serde_json::Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
        assert_eq!(header["version"], 2, "{cast}");
        assert!(!cast.contains("ended abnormally"), "{cast}");
    }
    assert!(login_cast.contains("exit 4"), "{login_cast}");

    // The session supervisor killed outright: the broker still ends the recording cleanly,
    // with the abnormal-end marker, and nothing of the session is left.
    let mut cmd = sshd.ssh("rserec", &["-tt"], &[]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"echo before-$((6*7)); sleep 300\n")
        .unwrap();
    let supervisor = wait_for_pid(&["-u", "rserec", "-x", "sleep"])
        .and_then(|_| pgrep(&["-u", "rserec", "-x", "rolesh"]).into_iter().next())
        .expect("the session's supervisor");
    Command::new("kill")
        .args(["-KILL", &supervisor.to_string()])
        .status()
        .unwrap();
    let _ = wait_with_deadline(child, Duration::from_secs(60));
    assert_no_processes_left("rserec");
    let killed = std::fs::read_dir(audit_dir.path().join("sessions/rserec"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|r| r.contains("before-42"))
        .expect("the killed session's recording");
    assert!(killed.contains("recording ended abnormally"), "{killed}");
    assert!(killed.contains("\"m\""), "an asciicast marker: {killed}");

    // `ssh -t bastion CMD`: the command runs on the session's own pty; its exit code and
    // output come back through the relay.
    let r = run(&mut sshd.ssh(
        "rsealice",
        &["-tt"],
        &["kubectl", "config", "current-context"],
    ));
    assert_eq!((r.code, r.stdout.as_str()), (0, "demo\r\n"), "{}", r.stderr);
    let r = run(&mut sshd.ssh(
        "rsealice",
        &["-tt"],
        &["kubectl", "get", "pods", "-n", "kube-system"],
    ));
    assert_eq!(r.code, 1, "kubectl's own exit code: {}", r.stdout);

    // The audit trail (the broker's JSON Lines copy of what went to journald): each
    // session's login, command and logout share its id; the picker's exec names the pod.
    let audit: Vec<serde_json::Value> =
        std::fs::read_to_string(audit_dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let events_of = |user: &str, event: &str| -> Vec<serde_json::Value> {
        audit
            .iter()
            .filter(|e| e["user"] == user && e["event"] == event)
            .cloned()
            .collect()
    };
    let command = events_of("rsealice", "command")
        .into_iter()
        .find(|e| e["command"] == "kubectl get pods -n web -o name")
        .expect("the -c command is audited");
    assert_eq!(command["exit_code"], 0, "{command}");
    let session_id = command["session_id"].as_str().unwrap().to_string();
    for event in ["login", "logout"] {
        assert!(
            events_of("rsealice", event)
                .iter()
                .any(|e| e["session_id"] == session_id.as_str()),
            "no {event} for session {session_id}"
        );
    }
    let login = events_of("rsealice", "login")
        .into_iter()
        .find(|e| e["session_id"] == session_id.as_str())
        .unwrap();
    assert!(
        login["ssh_client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1 "),
        "{login}"
    );
    assert_eq!(login["private_tmp"], userns, "{login}");
    // Fields without a value are left out: a reason only when /tmp could not be private.
    assert_eq!(login.get("reason").is_some(), !userns, "{login}");
    // What the client sent with SetEnv names neither the session nor its address.
    let env_login = events_of("rsealice", "login")
        .into_iter()
        .find(|e| e["session_id"] == env_session_id.as_str())
        .expect("the env session's login");
    assert!(
        env_login["ssh_client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1 "),
        "{env_login}"
    );
    assert!(
        events_of("rsealice", "login")
            .iter()
            .all(|e| e["session_id"] != "0123456789abcdef01234567"),
        "a session took the id the client sent"
    );
    let refused = events_of("rsealice", "command")
        .into_iter()
        .find(|e| e["command"] == "bash -i")
        .expect("a refused command is audited");
    assert_eq!(refused["exit_code"], 126, "{refused}");
    let exec = events_of("rsepick", "exec");
    assert_eq!(exec.len(), 2, "{exec:?}");
    assert_eq!(
        (&exec[1]["exit_code"], &exec[1]["reason"]),
        (&serde_json::json!(129), &serde_json::json!("hangup")),
        "the exec the dropped connection ended: {}",
        exec[1]
    );
    assert_eq!(exec[1]["pod"], exec[0]["pod"], "{}", exec[1]);
    let dropped_logout = events_of("rsepick", "logout")
        .into_iter()
        .find(|e| e["session_id"] == exec[1]["session_id"])
        .expect("the dropped session's logout");
    assert_eq!(dropped_logout["reason"], "hangup", "{dropped_logout}");
    assert_eq!(
        (
            &exec[0]["cluster"],
            &exec[0]["namespace"],
            &exec[0]["exit_code"]
        ),
        (
            &serde_json::json!("demo"),
            &serde_json::json!("jobs"),
            &serde_json::json!(0)
        ),
        "{}",
        exec[0]
    );
    assert!(
        exec[0]["pod"].as_str().unwrap().starts_with("backfill-"),
        "{}",
        exec[0]
    );
    let restricted = events_of("rsecarl", "command");
    assert!(
        restricted
            .iter()
            .any(|e| e["command"] == "bash" && e["exit_code"] == 126),
        "{restricted:?}"
    );
    assert!(
        restricted.iter().any(|e| e["command"]
            .as_str()
            .unwrap_or_default()
            .ends_with("kubectl config current-context")
            && e["exit_code"] == 0),
        "{restricted:?}"
    );
    let idle_logout = events_of("rseidle", "logout");
    assert!(
        idle_logout.iter().any(|e| e["reason"] == "idle_timeout"),
        "{idle_logout:?}"
    );

    // The broker down: one line, exit 1, no shell.
    b.kill();
    for extra in [&[][..], &["-tt"][..]] {
        let r = run(&mut sshd.ssh("rsealice", extra, &["kubectl", "version", "--client"]));
        assert_eq!(r.code, 1, "{extra:?}: {} {}", r.stdout, r.stderr);
        let text = format!("{}{}", r.stdout, r.stderr).replace('\r', "");
        assert_eq!(
            text.trim_end(),
            "rolesh: the credential broker is not running (systemctl status rolesh-broker)",
            "{extra:?}"
        );
    }

    let _ = std::fs::remove_file("/run/rolesh/broker.sock");
    drop(b);
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

/// Every process of `user` is gone within a few seconds (sshd's own per-session process,
/// which runs as the user, takes a moment after the client sees the end).
fn assert_no_processes_left(user: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("pgrep")
            .args(["-a", "-u", user])
            .output()
            .unwrap();
        let left = String::from_utf8_lossy(&out.stdout).into_owned();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of {user} survived its session:\n{left}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pids `pgrep ARGS` lists.
fn pgrep(args: &[&str]) -> Vec<u32> {
    let out = Command::new("pgrep").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The first pid `pgrep ARGS` lists within 30 s.
fn wait_for_pid(args: &[&str]) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = pgrep(args).into_iter().next() {
            return Some(pid);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for an ssh client, killing it (and failing) if it has not finished in `limit`.
fn wait_with_deadline(child: Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    assert!(
        out.status.code().is_some(),
        "ssh did not finish within {limit:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}
