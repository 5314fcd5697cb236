//! What every test of session_ssh logs in to: a real OpenSSH server on a loopback port
//! (`UsePAM yes`, as Debian ships it), real accounts whose login shell is rolesh, key
//! authentication, the rolesh-testkit stack (fake AWS, fake EKS clusters `demo` and
//! `staging`), and the root daemons a login talks to on their compiled-in paths under
//! /run/rolesh: the session monitor, which every login hands its terminal or pipes to, and
//! the broker, which also writes the audit trail's JSON Lines copy and the session
//! recordings into the fixture's directory.
//!
//! One fixture per process, made by the first test that asks ([`fixture`]) and torn down
//! when the process's last test has finished (`harness::at_exit`): under `cargo test` the
//! binary's tests share one; under nextest each test process has its own. Its tests run one
//! at a time: the paths are fixed (the broker's socket is compiled in; the accounts and
//! /etc/shells belong to the machine), so the fixture is held behind a mutex within a
//! process, and behind a file lock across processes (nextest also keeps the binary's tests
//! in a group of one thread: .config/nextest.toml). What a process killed outright leaves
//! behind is cleaned by the next fixture: its daemons die with it (`common::daemon`), and
//! the accounts, their processes, the directory and the /etc/shells entry are made anew.
//!
//! Each daemon is a field of [`Fixture`], started in [`Fixture::start`] with its socket
//! linked at its compiled-in path ([`link_compiled_in`]), and started again in
//! [`Fixture::ready`] when a test stopped it.

// Shared by session_ssh and session_attacks, which use different parts.
#![allow(dead_code)]

use std::fs::{File, Permissions};
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rolesh_testkit::fake_k8s::FakeK8s;
use serde_json::Value;

use crate::common::broker::BrokerProc;
use crate::common::monitor::MonitorProc;
use crate::common::{TestUser, daemon, harness, require, stdout_of_success};

/// A user in shell mode (the default): commands, logins, the environment, the audit trail.
pub(crate) const ALICE: &str = "rsealice";
/// In `[mapping] deny_users`.
pub(crate) const DENIED: &str = "rsedenied";
/// In restricted mode: rolesh's own prompt.
pub(crate) const CARL: &str = "rsecarl";
/// With `idle_timeout = "1m"`.
pub(crate) const IDLE: &str = "rseidle";
/// In picker mode.
pub(crate) const PICK: &str = "rsepick";
/// With `record = "all"` and `record_input = true`.
pub(crate) const REC: &str = "rserec";
/// With `max_duration = "1m"`.
pub(crate) const BRIEF: &str = "rsebrief";

/// The accounts and their supplementary groups (the groups the config's overrides name).
const ACCOUNTS: [(&str, &[&str]); 7] = [
    (ALICE, &[]),
    (DENIED, &[]),
    (CARL, &["rsecontractors"]),
    (IDLE, &["rseidlers"]),
    (PICK, &["rsepickers"]),
    (REC, &["rserecorders"]),
    (BRIEF, &["rsebriefs"]),
];

/// The commands `allowed_commands` lets through, as rolesh lists them when it refuses one.
pub(crate) const ALLOWED: &str = "kubectl, helm, env, sleep, exec, kubeconfig, token, credentials";
pub(crate) const BANNER: &str = "Authorized use only (rolesh test).";

/// The broker's drop-in (config.d/50-test.toml of the stack's config): the accounts'
/// session settings, and the audit file and recordings under `audit`.
fn drop_in(audit: &Path) -> String {
    format!(
        r#"[mapping]
deny_users = ["{DENIED}"]
[session]
allowed_commands = ["kubectl", "helm", "env", "sleep"]
max_duration = "5m"
banner = "{BANNER}"
[[session.override]]
groups = ["rsecontractors"]
mode = "restricted"
[[session.override]]
groups = ["rseidlers"]
idle_timeout = "1m"
[[session.override]]
groups = ["rsepickers"]
mode = "picker"
[[session.override]]
groups = ["rserecorders"]
record = "all"
record_input = true
[[session.override]]
groups = ["rsebriefs"]
max_duration = "1m"
[audit]
file = "{audit}/audit.jsonl"
recordings_dir = "{audit}/sessions"
# The recordings live on the host's disk, shared with everything else: below the default
# 5% free, recorded logins would be refused, whatever these tests are about.
min_free = "0%"
"#,
        audit = audit.display()
    )
}

/// Everything the fixture writes: one fixed place, wiped when a fixture starts, so a run
/// that was killed leaves one copy behind, not one per run. Under /var/tmp: sessions get a
/// private /tmp, and every account must reach the binary and its home.
const ROOT: &str = "/var/tmp/rolesh-session-ssh";
/// Where login mode finds the broker: compiled in, no variable changes it.
const BROKER_SOCKET: &str = "/run/rolesh/broker.sock";
/// Where login mode finds the session monitor, likewise.
const MONITOR_SOCKET: &str = "/run/rolesh/monitor.sock";
/// Held while a fixture exists: one fixture at a time on this machine.
const MACHINE_LOCK: &str = "/run/lock/rolesh-session-ssh.lock";

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

/// The process's fixture (started by the first caller), for this test alone until the
/// returned guard is dropped; cleaned of what an earlier test left (processes of the
/// accounts, a stopped broker).
pub(crate) fn fixture() -> Locked {
    // A test that failed while holding it poisons the mutex; the fixture is still good.
    let mut guard = FIXTURE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Fixture::start());
        harness::at_exit(|| {
            let fixture = FIXTURE.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(fixture);
        });
    }
    let mut locked = Locked(guard);
    locked.ready();
    locked
}

/// The fixture, held by one test.
pub(crate) struct Locked(MutexGuard<'static, Option<Fixture>>);

impl Drop for Locked {
    /// A test whose sessions may have reached another broker has no result to trust.
    fn drop(&mut self) {
        let Some(fixture) = self.0.as_ref() else {
            return;
        };
        if let Err(why) = fixture.links_are_ours() {
            match std::thread::panicking() {
                true => eprintln!("note: {why}"),
                false => panic!("{why}"),
            }
        }
    }
}

impl Deref for Locked {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        self.0.as_ref().expect("started")
    }
}

impl DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Fixture {
        self.0.as_mut().expect("started")
    }
}

pub(crate) struct Fixture {
    // Dropped in this order: the daemons, then the accounts, then the files.
    sshd: Sshd,
    monitor: MonitorProc,
    broker: BrokerProc,
    accounts: Vec<TestUser>,
    _shell: ShellsEntry,
    dir: FixtureDir,
    _machine_lock: File,
}

impl Fixture {
    fn start() -> Fixture {
        require(
            "openssh-server (apt-get install openssh-server)",
            Path::new("/usr/sbin/sshd").exists(),
        );
        let machine_lock = lock_machine();
        let dir = FixtureDir::create();
        // The binary where every account can run it, and a shell sshd accepts.
        let shell = dir.subdir("bin").join("rolesh");
        std::fs::copy(env!("CARGO_BIN_EXE_rolesh"), &shell).unwrap();
        let shell_entry = ShellsEntry::add(&shell);
        let homes = dir.subdir("homes");
        let accounts: Vec<TestUser> = ACCOUNTS
            .iter()
            .map(|(name, groups)| {
                // Kills what an earlier run left running as the account, and remakes it.
                let user = TestUser::create(name, groups);
                let home = homes.join(name);
                std::fs::create_dir(&home).unwrap();
                std::os::unix::fs::chown(&home, Some(user.uid()), None).unwrap();
                stdout_of_success(
                    Command::new("usermod")
                        .arg("-s")
                        .arg(&shell)
                        .arg("-d")
                        .arg(&home)
                        .arg(name),
                );
                user
            })
            .collect();
        let broker = start_broker(dir.path(), &dir.subdir("audit"));
        let monitor = MonitorProc::start(&shell, &dir.subdir("monitor"));
        link_compiled_in(&monitor.socket(), MONITOR_SOCKET);
        let sshd = Sshd::start(&dir.subdir("sshd"));
        for (name, _) in ACCOUNTS {
            sshd.authorize(name);
        }
        Fixture {
            sshd,
            monitor,
            broker,
            accounts,
            _shell: shell_entry,
            dir,
            _machine_lock: machine_lock,
        }
    }

    /// Before each test: nothing of an earlier test's sessions runs any more, and the
    /// daemons are up.
    fn ready(&mut self) {
        for user in &self.accounts {
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &user.name])
                .status();
        }
        if !self.broker.is_running() {
            self.broker.spawn();
        }
        if !self.monitor.is_usual() {
            self.monitor.spawn();
        }
        if let Err(why) = self.links_are_ours() {
            eprintln!("note: {why}; linked again");
            link_compiled_in(&self.broker.socket(), BROKER_SOCKET);
            link_compiled_in(&self.monitor.socket(), MONITOR_SOCKET);
        }
        assert!(
            self.sshd.is_running(),
            "sshd has ended: {}",
            self.sshd_log()
        );
    }

    /// Whether the compiled-in paths still lead to this fixture's daemons: anything else
    /// that uses them at the same time (another checkout's session tests, scripts/demo)
    /// takes them over, and a login then talks to its daemons, or to none.
    fn links_are_ours(&self) -> Result<(), String> {
        for (link, ours) in [
            (BROKER_SOCKET, self.broker.socket()),
            (MONITOR_SOCKET, self.monitor.socket()),
        ] {
            match std::fs::read_link(link) {
                Ok(target) if target == ours => {}
                found => {
                    return Err(format!(
                        "{link} no longer leads to this fixture's daemon ({}) but to {found:?}: \
                         something else on this machine uses the compiled-in socket",
                        ours.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The session monitor's log (what it and the per-session monitors printed).
    pub(crate) fn monitor_log(&self) -> String {
        self.monitor.log()
    }

    /// Restarts the monitor where no cgroup2 is mounted; the next test gets the usual one.
    pub(crate) fn monitor_without_cgroup2(&mut self) {
        self.monitor.spawn_without_cgroup2();
    }

    /// Runs `f` while the compiled-in broker socket leads to a stand-in that passes every
    /// request to the real broker and `tamper`s with the answers to `session_start`, the
    /// monitor's first question: a broker of another version, or a hostile one.
    pub(crate) fn with_stand_in_broker<R>(
        &self,
        tamper: fn(&mut Value),
        f: impl FnOnce() -> R,
    ) -> R {
        let socket = self.scratch().join("stand-in.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::fs::set_permissions(&socket, Permissions::from_mode(0o666)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let real = self.broker.socket();
        let serving = {
            let stop = stop.clone();
            std::thread::spawn(move || stand_in(&listener, &real, tamper, &stop))
        };
        link_compiled_in(&socket, BROKER_SOCKET);
        let result = f();
        link_compiled_in(&self.broker.socket(), BROKER_SOCKET);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        serving.join().unwrap();
        result
    }

    /// Runs `f` with another broker in force: one on a stack whose EKS clusters are found
    /// by `[[discovery]]` alone (no `[[cluster]]` in its configuration), with this
    /// fixture's mapping and session settings.
    pub(crate) fn with_discovering_broker<R>(&self, f: impl FnOnce() -> R) -> R {
        let own = tempfile::Builder::new()
            .prefix("discovering")
            .tempdir_in(self.dir.path())
            .unwrap();
        let audit = self.dir.subdir("audit-discovering");
        let broker = BrokerProc::start_stack_discovering_in(own, &drop_in(&audit), true, |_| {});
        let config = std::fs::read_to_string(broker.config_path().join("config.toml")).unwrap();
        assert!(
            config.contains("[[discovery]]") && !config.contains("[[cluster]]"),
            "{config}"
        );
        link_compiled_in(&broker.socket(), BROKER_SOCKET);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        link_compiled_in(&self.broker.socket(), BROKER_SOCKET);
        drop(broker);
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Runs `f` with `[audit.s3]` (`s3`, the table's lines) in the broker's configuration
    /// (a drop-in, then SIGHUP), taken out again afterwards.
    pub(crate) fn with_drop_in<R>(&self, text: &str, f: impl FnOnce() -> R) -> R {
        let path = self.broker.config_path().join("config.d/60-extra.toml");
        let reload = |present: bool| {
            let before = self.broker.log().matches("configuration reloaded").count();
            match present {
                true => std::fs::write(&path, text).unwrap(),
                false => std::fs::remove_file(&path).unwrap(),
            }
            self.broker.signal(nix::sys::signal::Signal::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.broker.log().matches("configuration reloaded").count() == before {
                assert!(
                    Instant::now() < deadline,
                    "no reload: {}",
                    self.broker.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        reload(true);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        reload(false);
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The pid of the monitor daemon.
    pub(crate) fn monitor_pid(&self) -> u32 {
        self.monitor.pid().expect("the monitor runs")
    }

    /// `user`'s uid.
    pub(crate) fn uid(&self, user: &str) -> u32 {
        self.accounts
            .iter()
            .find(|a| a.name == user)
            .map(TestUser::uid)
            .expect("an account of the fixture")
    }

    /// `user`'s home directory.
    pub(crate) fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("homes").join(user)
    }

    /// Removes what earlier sessions left in `user`'s home.
    pub(crate) fn clear_home(&self, user: &str) {
        for entry in std::fs::read_dir(self.home(user)).unwrap() {
            let path = entry.unwrap().path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }

    /// The rolesh binary the accounts' login shell is.
    pub(crate) fn rolesh(&self) -> PathBuf {
        self.dir.path().join("bin/rolesh")
    }

    /// `ssh [EXTRA] USER@127.0.0.1 [COMMAND]` with the fixture's key, not interactive.
    pub(crate) fn ssh(&self, user: &str, extra: &[&str], command: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-q", "-i"])
            .arg(self.sshd.client_key())
            .args(client_options())
            .arg("-p")
            .arg(self.sshd.port.to_string())
            .args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .args(command);
        cmd
    }

    /// The same ssh command line as text, for a terminal to run.
    pub(crate) fn ssh_line(&self, user: &str, extra: &[&str]) -> String {
        let cmd = self.ssh(user, extra, &[]);
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// An interactive login (`ssh -tt`), started with its pipes.
    pub(crate) fn login(&self, user: &str) -> Child {
        self.ssh(user, &["-tt"], &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// An interactive login (`ssh -tt`) that is typed `input` at once, until it ends.
    pub(crate) fn login_typing(&self, user: &str, input: &[u8]) -> Output {
        let mut child = self.login(user);
        child.stdin.as_mut().unwrap().write_all(input).unwrap();
        wait_with_deadline(child, Duration::from_secs(60))
    }

    /// A restricted-mode login (rsecarl) typed `lines` one at a time, as a person would
    /// (line editors discard type-ahead when they switch the terminal to raw mode), until it
    /// ends: its exit code and what it showed.
    pub(crate) fn restricted_typing(&self, lines: &[&str]) -> (Option<i32>, String) {
        let mut child = self.login(CARL);
        let mut stdin = child.stdin.take().unwrap();
        let lines: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
        // Not joined: it keeps stdin open a while after the last line, and is gone by then.
        std::thread::spawn(move || {
            for line in lines {
                std::thread::sleep(Duration::from_millis(700));
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_secs(20));
        });
        let out = wait_with_deadline(child, Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        (out.status.code(), text)
    }

    /// `scp -O FILE USER@127.0.0.1:TARGET` with the fixture's key.
    pub(crate) fn scp(&self, file: &Path, user: &str, target: &str) -> Command {
        let mut cmd = Command::new("scp");
        cmd.args(["-q", "-O", "-i"])
            .arg(self.sshd.client_key())
            .args(client_options())
            .arg("-P")
            .arg(self.sshd.port.to_string())
            .arg(file)
            .arg(format!("{user}@127.0.0.1:{target}"));
        cmd
    }

    /// The fixture sshd's configuration file (`AcceptEnv *`).
    pub(crate) fn sshd_config(&self) -> PathBuf {
        self.sshd.dir.join("sshd_config")
    }

    pub(crate) fn sshd_log(&self) -> String {
        std::fs::read_to_string(self.sshd.dir.join("sshd.log")).unwrap_or_default()
    }

    /// A directory of the fixture's for a test's own files (the tests run one at a time).
    pub(crate) fn scratch(&self) -> PathBuf {
        self.dir.subdir("scratch")
    }

    /// The fake EKS cluster `demo`, which records who asked it what.
    pub(crate) fn demo(&self) -> &FakeK8s {
        self.broker.stack().unwrap().cluster("demo").unwrap()
    }

    /// Stops the broker (as a crash would); the next test finds it started again.
    pub(crate) fn stop_broker(&mut self) {
        self.broker.kill();
    }

    pub(crate) fn start_broker(&mut self) {
        if !self.broker.is_running() {
            self.broker.spawn();
        }
    }

    fn audit_file(&self) -> PathBuf {
        self.dir.path().join("audit/audit.jsonl")
    }

    /// Where the audit trail is now: [`wait_for_audit`](Self::wait_for_audit) reads what
    /// comes after it.
    pub(crate) fn audit_mark(&self) -> usize {
        std::fs::read_to_string(self.audit_file())
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// The audit events (the broker's JSON Lines copy of what goes to journald) written
    /// since `mark`, once `done` holds for them (10 s at most, then the test fails).
    pub(crate) fn wait_for_audit(
        &self,
        mark: usize,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events: Vec<Value> = std::fs::read_to_string(self.audit_file())
                .unwrap_or_default()
                .lines()
                .skip(mark)
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "the audit trail never had {what}; since the test started it has:\n{}",
                events
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The recordings of `user`'s sessions, by file.
    pub(crate) fn recordings(&self, user: &str) -> Vec<(PathBuf, String)> {
        let Ok(dir) = std::fs::read_dir(self.dir.path().join("audit/sessions").join(user)) else {
            return Vec::new();
        };
        let mut all: Vec<(PathBuf, String)> = dir
            .map(|e| {
                let path = e.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                (path, text)
            })
            .collect();
        all.sort();
        all
    }
}

/// Starts the broker on the stack in a directory under `dir`, with its socket at the
/// compiled-in path.
fn start_broker(dir: &Path, audit: &Path) -> BrokerProc {
    let own = tempfile::Builder::new()
        .prefix("broker")
        .tempdir_in(dir)
        .unwrap();
    let broker = BrokerProc::start_stack_in(own, &drop_in(audit));
    link_compiled_in(&broker.socket(), BROKER_SOCKET);
    broker
}

/// Serves `listener` until `stop`: one request a connection, passed to the broker at `real`,
/// its answer tampered with when it is `session_start`'s.
fn stand_in(
    listener: &std::os::unix::net::UnixListener,
    real: &Path,
    tamper: fn(&mut Value),
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::{BufRead, BufReader};
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Ok((conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        conn.set_nonblocking(false).unwrap();
        let mut request = String::new();
        if BufReader::new(&conn).read_line(&mut request).is_err() {
            continue;
        }
        let broker = std::os::unix::net::UnixStream::connect(real).unwrap();
        (&broker).write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        BufReader::new(&broker).read_line(&mut answer).unwrap();
        let op: Value = serde_json::from_str(&request).unwrap_or_default();
        if op["op"] == "session_start" {
            let mut value: Value = serde_json::from_str(&answer).unwrap();
            tamper(&mut value);
            answer = value.to_string() + "\n";
        }
        let _ = (&conn).write_all(answer.as_bytes());
    }
}

/// Makes `compiled_in` (under /run/rolesh) lead to a daemon's `socket`: the binary under
/// test honours no variable for it. Whatever was there (a killed run's link) goes.
fn link_compiled_in(socket: &Path, compiled_in: &str) {
    std::fs::create_dir_all(Path::new(compiled_in).parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(compiled_in);
    std::os::unix::fs::symlink(socket, compiled_in).unwrap();
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The fields go after this: the daemons, the accounts, the /etc/shells entry, the
        // directory.
        let _ = std::fs::remove_file(BROKER_SOCKET);
        let _ = std::fs::remove_file(MONITOR_SOCKET);
    }
}

/// Waits for the machine-wide lock: another process's fixture (nextest's next test, or a
/// test run in another checkout) has the same accounts, paths and socket.
fn lock_machine() -> File {
    let file = File::create(MACHINE_LOCK).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match file.try_lock() {
            Ok(()) => return file,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{MACHINE_LOCK}: another session_ssh test process holds it: {e}"),
        }
    }
}

fn client_options() -> [&'static str; 6] {
    [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
    ]
}

/// [`ROOT`], made anew; removed with the fixture.
struct FixtureDir(PathBuf);

impl FixtureDir {
    fn create() -> FixtureDir {
        let root = PathBuf::from(ROOT);
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, Permissions::from_mode(0o755)).unwrap();
        FixtureDir(root)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// `name` under the fixture's directory, created (mode 0755) if missing.
    fn subdir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for FixtureDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fixture's binary as a line of /etc/shells (sshd runs only listed shells), removed
/// with the fixture; a line a killed run left is replaced.
struct ShellsEntry(String);

impl ShellsEntry {
    fn add(shell: &Path) -> ShellsEntry {
        let entry = ShellsEntry(shell.display().to_string());
        let mut lines = entry.others();
        lines.push(entry.0.clone());
        std::fs::write("/etc/shells", lines.join("\n") + "\n").unwrap();
        entry
    }

    /// The lines of /etc/shells other than this entry.
    fn others(&self) -> Vec<String> {
        std::fs::read_to_string("/etc/shells")
            .unwrap_or_default()
            .lines()
            .filter(|l| *l != self.0)
            .map(str::to_string)
            .collect()
    }
}

impl Drop for ShellsEntry {
    fn drop(&mut self) {
        let _ = std::fs::write("/etc/shells", self.others().join("\n") + "\n");
    }
}

/// sshd on a loopback port, with `UsePAM yes` and the other settings of Debian's
/// sshd_config that matter here (no passwords, no keyboard-interactive; pam_motd prints
/// the motd), `AcceptEnv *` (so a client's SetEnv reaches rolesh, which must drop it) and
/// the keys of the accounts in the fixture's directory.
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        for key in ["host_key", "client_key"] {
            stdout_of_success(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(dir.join(key)),
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {dir}/host_key\n\
                 PidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/keys/%u\n\
                 StrictModes no\n\
                 UsePAM yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PrintMotd no\n\
                 AcceptEnv *\n\
                 PermitUserEnvironment no\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\n\
                 LogLevel VERBOSE\n",
                dir = dir.display(),
            ),
        )
        .unwrap();
        let log = File::create(dir.join("sshd.log")).unwrap();
        let mut cmd = daemon::command("/usr/sbin/sshd");
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stderr(log);
        let child = daemon::spawn(cmd).expect("start sshd");
        let mut sshd = Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline && sshd.is_running(),
                "sshd did not start: {}",
                std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn client_key(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().is_ok_and(|status| status.is_none())
    }

    /// The fixture's client key may log in as `user`.
    fn authorize(&self, user: &str) {
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::set_permissions(&keys, Permissions::from_mode(0o755)).unwrap();
        let public = std::fs::read_to_string(self.dir.join("client_key.pub")).unwrap();
        std::fs::write(keys.join(user), public).unwrap();
        std::fs::set_permissions(keys.join(user), Permissions::from_mode(0o644)).unwrap();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for an ssh client, killing it (and failing) if it has not finished in `limit`.
pub(crate) fn wait_with_deadline(child: Child, limit: Duration) -> Output {
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
