//! A real `rolesh broker` process against the fake AWS of rolesh-testkit, with a socket in
//! a temporary directory, and clients run as real accounts.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};
use rolesh_testkit::stack::Stack;
use serde_json::Value;

use super::{Run, rolesh, rolesh_token, run, write_config};

pub struct BrokerProc {
    pub dir: tempfile::TempDir,
    aws: Aws,
    /// `--config`: a file, or a directory with config.toml and config.d/.
    config: PathBuf,
    /// The broker's environment: base credentials and where AWS calls go.
    env: Vec<(String, String)>,
    /// The broker's uid, when not root (like the `rolesh` system user in production).
    run_as: Option<u32>,
    child: Option<Child>,
}

/// The fake AWS the broker talks to: its own, or a whole rolesh-testkit stack's.
enum Aws {
    Own(FakeAws),
    Stack(Box<Stack>),
}

/// The brokers of the tests that are not about sessions serve clients that are in none
/// (real accounts run with runuser): `[broker] require_session = false`, what a host that is
/// not a bastion would set. The session tests (session_ssh) leave the default.
fn outside_sessions(extra: &str) -> String {
    const SETTING: &str = "require_session = false\n";
    match extra.find("[broker]\n") {
        Some(at) => {
            let end = at + "[broker]\n".len();
            format!("{}{SETTING}{}", &extra[..end], &extra[end..])
        }
        None => format!("{extra}\n[broker]\n{SETTING}"),
    }
}

/// `broker` (a `[broker]` table) with `drop_in`, whose own `[broker]` table, if any, joins it.
fn merge_broker_table(broker: &str, drop_in: &str) -> String {
    match drop_in.find("[broker]\n") {
        Some(at) => {
            let end = at + "[broker]\n".len();
            let rest = &broker["[broker]\n".len()..];
            format!("{}{rest}{}", &drop_in[..end], &drop_in[end..])
        }
        None => format!("{broker}{drop_in}"),
    }
}

/// A fake AWS with default options: it, its endpoint and its base access key and secret.
fn fake_aws() -> (FakeAws, String, String, String) {
    let aws = FakeAws::start_in_background(FakeAwsOptions::default()).expect("fake aws");
    let o = aws.options();
    let (key, secret) = (o.access_key_id.clone(), o.secret_access_key.clone());
    let endpoint = aws.endpoint();
    (aws, endpoint, key, secret)
}

impl BrokerProc {
    /// Starts the fake AWS and a broker whose config is `extra` appended to an `[aws]`
    /// section pointing at the fake (so `extra` holds `[mapping]`, clusters, …).
    pub fn start(aws_extra: &str, extra: &str) -> BrokerProc {
        let (aws, endpoint, key, secret) = fake_aws();
        Self::start_against(aws, &endpoint, (&key, &secret), aws_extra, extra)
    }

    /// Like [`start`](Self::start), with the broker running as `uid` (its own system
    /// user, as in production): its directory (socket, log) is handed to that uid.
    pub fn start_as(uid: u32, aws_extra: &str, extra: &str) -> BrokerProc {
        let (aws, endpoint, key, secret) = fake_aws();
        let mut broker = Self::prepare(aws, &endpoint, (&key, &secret), aws_extra, extra);
        std::os::unix::fs::chown(broker.dir.path(), Some(uid), None).unwrap();
        broker.run_as = Some(uid);
        broker.spawn();
        broker
    }

    /// Like [`start`](Self::start), read as `--config DIR`: `config.toml` and the
    /// `drop_ins` (name, text) in `config.d/` (0755).
    pub fn start_from_dir(extra: &str, drop_ins: &[(&str, &str)]) -> BrokerProc {
        let (aws, endpoint, key, secret) = fake_aws();
        let mut broker = Self::prepare(aws, &endpoint, (&key, &secret), "", extra);
        for (name, text) in drop_ins {
            write_config(broker.dir.path(), &format!("config.d/{name}"), text);
        }
        let drop_in_dir = broker.dir.path().join("config.d");
        std::fs::create_dir_all(&drop_in_dir).unwrap();
        std::fs::set_permissions(&drop_in_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        broker.config = broker.dir.path().to_path_buf();
        broker.spawn();
        broker
    }

    /// A broker whose STS and EKS calls go to `endpoint` (e.g. moto) with these base
    /// credentials; `aws` is still started, unused.
    pub fn start_against(
        aws: FakeAws,
        endpoint: &str,
        base: (&str, &str),
        aws_extra: &str,
        extra: &str,
    ) -> BrokerProc {
        let mut broker = Self::prepare(aws, endpoint, base, aws_extra, extra);
        broker.spawn();
        broker
    }

    fn prepare(
        aws: FakeAws,
        endpoint: &str,
        base: (&str, &str),
        aws_extra: &str,
        extra: &str,
    ) -> BrokerProc {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = format!(
            "[aws]\nregion = \"us-east-1\"\nsts_endpoint = \"{endpoint}\"\n{aws_extra}\n{}",
            outside_sessions(extra)
        );
        write_config(dir.path(), "config.toml", &config);
        let env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), base.0.to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), base.1.to_string()),
            ("AWS_ENDPOINT_URL_EKS".to_string(), endpoint.to_string()),
        ];
        let config = dir.path().join("config.toml");
        BrokerProc {
            dir,
            aws: Aws::Own(aws),
            config,
            env,
            run_as: None,
            child: None,
        }
    }

    /// A broker for a rolesh-testkit stack (fake AWS + fake EKS clusters), with its
    /// config.toml and `drop_in` as config.d/50-test.toml.
    pub fn start_stack(drop_in: &str) -> BrokerProc {
        Self::start_stack_in(
            super::session_visible_tempdir("rolesh-broker"),
            &outside_sessions(drop_in),
        )
    }

    /// Like [`start_stack`](Self::start_stack), in `dir` (its socket, log and stack),
    /// which sessions must be able to see (not under /tmp), and for sessions: it answers
    /// live sessions only (`require_session`, the default).
    pub fn start_stack_in(dir: tempfile::TempDir, drop_in: &str) -> BrokerProc {
        Self::start_stack_edited(dir, drop_in, false, |config| config)
    }

    /// Like [`start_stack`](Self::start_stack), with the stack's clusters `proxied` reached
    /// through the broker's API proxy (`access = "proxy"`), which listens on a port of the
    /// kernel's choosing and keeps its CA in the broker's directory.
    pub fn start_stack_proxied(drop_in: &str, proxied: &[&str]) -> BrokerProc {
        Self::start_stack_proxying(&outside_sessions(drop_in), proxied)
    }

    /// Like [`BrokerProc::start_stack_proxied`], but answering live sessions only (the
    /// default, `require_session = true`).
    pub fn start_stack_proxied_for_sessions(drop_in: &str, proxied: &[&str]) -> BrokerProc {
        Self::start_stack_proxying(drop_in, proxied)
    }

    /// The stack with `onprem` (a cluster that is not EKS, through the proxy), answering
    /// processes outside sessions too.
    pub fn start_stack_onprem(drop_in: &str) -> BrokerProc {
        Self::start_stack_proxying_in(&outside_sessions(drop_in), &[], true)
    }

    fn start_stack_proxying(drop_in: &str, proxied: &[&str]) -> BrokerProc {
        Self::start_stack_proxying_in(drop_in, proxied, false)
    }

    /// The stack with `[[discovery]]` instead of `[[cluster]]` (StackOptions::discovery), in
    /// `dir`; `edit` may add to the fake EKS before the broker starts. Answers processes
    /// outside sessions unless `for_sessions`.
    pub fn start_stack_discovering_in(
        dir: tempfile::TempDir,
        drop_in: &str,
        for_sessions: bool,
        edit: impl FnOnce(&Stack),
    ) -> BrokerProc {
        let drop_in = match for_sessions {
            true => drop_in.to_string(),
            false => outside_sessions(drop_in),
        };
        let options = rolesh_testkit::stack::StackOptions {
            onprem: false,
            discovery: true,
        };
        Self::start_stack_with(dir, &drop_in, options, |config| config, edit)
    }

    fn start_stack_proxying_in(drop_in: &str, proxied: &[&str], onprem: bool) -> BrokerProc {
        let dir = super::session_visible_tempdir("rolesh-broker");
        let ca_dir = dir.path().join("proxy-ca");
        let broker = format!(
            "[broker]\nproxy_listen = \"127.0.0.1:0\"\nproxy_ca_dir = \"{}\"\n",
            ca_dir.display()
        );
        let drop_in = merge_broker_table(&broker, drop_in);
        let proxied: Vec<String> = proxied.iter().map(|c| c.to_string()).collect();
        Self::start_stack_edited(dir, &drop_in, onprem, move |config| {
            proxied.iter().fold(config, |config, cluster| {
                let name = format!("\nname = \"{cluster}\"\n");
                config.replacen(&name, &format!("{name}access = \"proxy\"\n"), 1)
            })
        })
    }

    /// The stack in `dir`, its config.toml passed through `edit` before the broker starts.
    fn start_stack_edited(
        dir: tempfile::TempDir,
        drop_in: &str,
        onprem: bool,
        edit: impl FnOnce(String) -> String,
    ) -> BrokerProc {
        let options = rolesh_testkit::stack::StackOptions {
            onprem,
            discovery: false,
        };
        Self::start_stack_with(dir, drop_in, options, edit, |_| {})
    }

    fn start_stack_with(
        dir: tempfile::TempDir,
        drop_in: &str,
        options: rolesh_testkit::stack::StackOptions,
        edit: impl FnOnce(String) -> String,
        before_start: impl FnOnce(&Stack),
    ) -> BrokerProc {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let stack_dir = dir.path().join("stack");
        std::fs::create_dir(&stack_dir).unwrap();
        std::fs::set_permissions(&stack_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let stack = Stack::start_with(&stack_dir, options).expect("testkit stack");
        before_start(&stack);
        let config = std::fs::read_to_string(stack_dir.join("config.toml")).unwrap();
        std::fs::write(stack_dir.join("config.toml"), edit(config)).unwrap();
        std::fs::set_permissions(
            stack_dir.join("config.toml"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write_config(&stack_dir, "config.d/50-test.toml", drop_in);
        std::fs::set_permissions(
            stack_dir.join("config.d"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let env = stack
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut broker = BrokerProc {
            dir,
            aws: Aws::Stack(Box::new(stack)),
            config: stack_dir,
            env,
            run_as: None,
            child: None,
        };
        broker.spawn();
        broker
    }

    pub fn aws(&self) -> &FakeAws {
        match &self.aws {
            Aws::Own(aws) => aws,
            Aws::Stack(stack) => stack.aws(),
        }
    }

    pub fn stack(&self) -> Option<&Stack> {
        match &self.aws {
            Aws::Own(_) => None,
            Aws::Stack(stack) => Some(stack),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("broker.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Starts (or restarts) the broker process and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .unwrap();
        // A daemon: it dies with this process, whatever ends it.
        let mut cmd = super::daemon::command(env!("CARGO_BIN_EXE_rolesh"));
        if let Some(uid) = self.run_as {
            let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .unwrap()
                .expect("the broker's account");
            cmd.uid(uid).gid(user.gid.as_raw());
        }
        cmd.args(["broker", "--config"])
            .arg(self.config_path())
            .arg("--socket")
            .arg(self.socket())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/nonexistent")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(super::daemon::spawn(cmd).expect("start broker"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the broker process is still there (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().is_ok_and(|status| status.is_none()))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the broker process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.take().expect("running").wait().unwrap()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `rolesh ARGS` as `uid`, talking to this broker.
    pub fn client(&self, uid: u32, args: &[&str]) -> Run {
        self.run_as(rolesh(), uid, args)
    }

    /// `rolesh-token ARGS` (the exec plugin) as `uid`, talking to this broker.
    pub fn plugin(&self, uid: u32, args: &[&str]) -> Run {
        self.run_as(rolesh_token(), uid, args)
    }

    fn run_as(&self, mut cmd: Command, uid: u32, args: &[&str]) -> Run {
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ROLESH_BROKER_SOCKET", self.socket())
            .uid(uid);
        run(&mut cmd)
    }

    /// Sends raw request lines as `uid` (a child process: SO_PEERCRED is per process)
    /// and returns the answers.
    pub fn raw(&self, uid: u32, lines: &[&str]) -> Vec<Value> {
        let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
for line in sys.argv[2:]:
    f.write(line.encode() + b"\n"); f.flush(); sys.stdout.write(f.readline().decode())
"#;
        let out = super::stdout_of_success(
            Command::new("python3")
                .arg("-c")
                .arg(script)
                .arg(self.socket())
                .args(lines)
                .uid(uid),
        );
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request on a fresh connection from this process (root), returning the answer line.
pub fn request_as_self(socket: &std::path::Path, line: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(line.as_bytes())?;
    s.write_all(b"\n")?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    Ok(answer)
}
