//! The cost of `[audit.s3]` to a recorded session (issue 21), run as root with
//! `cargo bench --bench recording_s3` (moto's server stands in for S3).
//!
//! A session's recorder (`rolesh __record`, the same `Recorder` the session monitor runs)
//! streams 100 MiB of terminal output (lines of words) to a broker that records it; the
//! time is from the first byte to the broker's answer that the file is synced (what a
//! session waits for at its end). Two brokers, interleaved rounds: one recording to disk
//! only, one also streaming to S3 (parts uploaded while the session runs). The session's
//! own relay (pty to ssh) is the same for both and not in the figure.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};

const MIB: usize = 1 << 20;
const OUTPUT: usize = 100 * MIB;
const ROUNDS: usize = 5;
const BUCKET: &str = "rolesh-bench";

fn main() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("benches/recording_s3 needs root (the broker's recordings); skipped");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let aws = FakeAws::start_in_background(FakeAwsOptions::default()).expect("fake aws");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let s3 = Moto::start(dir.path());
    let script = dir.path().join("script");
    write_script(&script);
    let disk = Broker::start(&aws, dir.path(), "disk", "");
    let streamed = Broker::start(
        &aws,
        dir.path(),
        "s3",
        &format!(
            "[audit.s3]\nbucket = \"{BUCKET}\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n",
            s3.url()
        ),
    );
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut after_end = Vec::new();
    for round in 0..ROUNDS {
        without.push(disk.record(&script, round));
        with.push(streamed.record(&script, round));
        after_end.push(streamed.wait_uploaded(round + 1));
        std::fs::remove_dir_all(dir.path().join("disk/sessions/root")).ok();
    }
    let (a, b) = (median(&mut without), median(&mut with));
    println!(
        "100 MiB of recorded output, broker synced, median of {ROUNDS}: disk only {:.0} ms ({:.0} MiB/s), with [audit.s3] {:.0} ms ({:.0} MiB/s): {:.3}× (goal ≤ 1.1×)",
        ms(a),
        100.0 / a.as_secs_f64(),
        ms(b),
        100.0 / b.as_secs_f64(),
        b.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "the object complete in S3 after the recording's end: median {:.0} ms",
        ms(median(&mut after_end))
    );
}

/// 100 MiB of `o` lines of words, as `rolesh __record` reads them, then `finish 0`.
fn write_script(path: &Path) {
    let words = "lorem ipsum dolor sit amet\\r\\n".repeat(16 * 1024 / 28);
    let line = format!("o {words}\n");
    let per_line = 16 * 1024 / 28 * 28;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..OUTPUT / per_line {
        file.write_all(line.as_bytes()).unwrap();
    }
    file.write_all(b"finish 0\n").unwrap();
}

struct Broker {
    child: Child,
    socket: PathBuf,
    audit: PathBuf,
}

impl Broker {
    fn start(aws: &FakeAws, dir: &Path, name: &str, extra: &str) -> Broker {
        let own = dir.join(name);
        std::fs::create_dir_all(&own).unwrap();
        let config = format!(
            "[aws]\nregion = \"us-east-1\"\nsts_endpoint = \"{}\"\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{{user}}\"\n\
             [session]\nrecord = \"all\"\n[broker]\nrequire_session = false\n\
             [audit]\nrecordings_dir = \"{d}/sessions\"\nfile = \"{d}/audit.jsonl\"\nmin_free = \"0%\"\nrecording_quota = \"1024TiB\"\n{extra}",
            aws.endpoint(),
            d = own.display()
        );
        let path = own.join("config.toml");
        std::fs::write(&path, config).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let socket = own.join("broker.sock");
        let o = aws.options();
        let child = Command::new(env!("CARGO_BIN_EXE_rolesh"))
            .args(["broker", "--config"])
            .arg(&path)
            .arg("--socket")
            .arg(&socket)
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", &o.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &o.secret_access_key)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(own.join("broker.log")).unwrap())
            .spawn()
            .expect("start broker");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            let log = || std::fs::read_to_string(own.join("broker.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "the broker did not start: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            child,
            socket,
            audit: own.join("audit.jsonl"),
        }
    }

    /// One recorded session of the script; the time until the broker synced it.
    fn record(&self, script: &Path, round: usize) -> Duration {
        let id = format!("{:016x}{round:08x}", std::process::id());
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_rolesh"))
            .args(["__record", "--session-id", &id])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ROLESH_BROKER_SOCKET", &self.socket)
            .stdin(std::fs::File::open(script).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the recorder");
        assert!(status.success(), "the recorder failed");
        started.elapsed()
    }

    /// Waits until `count` recordings are uploaded; the time it waited.
    fn wait_uploaded(&self, count: usize) -> Duration {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        loop {
            let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
            let uploaded = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| r["event"] == "recording" && r["upload"] == "uploaded")
                .count();
            if uploaded >= count {
                return started.elapsed();
            }
            assert!(Instant::now() < deadline, "not uploaded: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's server on a free loopback port, with the bucket.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(dir: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("moto.log")).unwrap())
            .spawn()
            .expect("moto's server (pip install 'moto[server]')");
        let moto = Moto { child, port };
        let script = format!(
            "import boto3, time, botocore\ns3 = boto3.client('s3', region_name='us-east-1', endpoint_url='{}', aws_access_key_id='b', aws_secret_access_key='b')\n\
             for _ in range(200):\n    try:\n        s3.create_bucket(Bucket='{BUCKET}'); break\n    except botocore.exceptions.EndpointConnectionError:\n        time.sleep(0.1)\n",
            moto.url()
        );
        let mut py = Command::new("python3")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        py.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(out.status.success(), "cannot make the bucket");
        moto
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
