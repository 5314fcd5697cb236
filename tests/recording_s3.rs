//! Recordings streamed to S3 (`[audit.s3]`) against moto's server, an S3 nobody here
//! wrote, with object lock enabled on the bucket: a real account's recorded session
//! (`rolesh __record`, the recorder a session runs), the broker running as its own
//! user, S3 taken away and given back through a relay the test controls, the broker
//! killed mid-upload, two bastions on one bucket, and `rolesh replay s3://`.

mod common;

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::BrokerProc;
use common::journal::unique_session_id;
use common::moto::{Moto, moto_available};
use common::recorder::{finish, recorder, script};
use common::*;
use serde_json::Value;

common::harness::tests!(
    root: [
        a_recording_is_uploaded_with_its_retention_and_replays_from_s3,
        a_recording_longer_than_a_part_is_uploaded_in_parts,
        s3_down_at_the_start_and_back_later_leaves_a_complete_object,
        s3_stopped_mid_session_and_started_again_leaves_a_complete_object,
        a_broker_killed_mid_upload_finishes_it_when_started_again,
        two_bastions_share_a_bucket_and_never_replace_an_object,
        with_no_room_for_the_spool_a_recorded_session_is_refused,
        a_recording_whose_client_goes_away_is_still_uploaded,
        two_users_with_one_session_id_are_each_uploaded,
        check_describe_wants_the_bucket_and_its_object_lock,
    ],
    plain: [bad_audit_s3_settings_are_reported_at_their_position, rbac_emits_the_recordings_policy],
);

const BUCKET: &str = "rolesh-recordings";

/// A bucket with object lock in moto.
fn moto_with_bucket(lock: bool) -> Moto {
    require("moto[server] and boto3", moto_available());
    let moto = Moto::start();
    python(
        &moto,
        &format!(
            "s3.create_bucket(Bucket='{BUCKET}', ObjectLockEnabledForBucket={})",
            if lock { "True" } else { "False" }
        ),
    );
    moto
}

/// Runs `code` with `s3`, a boto3 client of `moto`; its stdout.
fn python(moto: &Moto, code: &str) -> String {
    python_at(&moto.url(), code)
}

fn python_at(endpoint: &str, code: &str) -> String {
    let script = format!(
        "import boto3, json\ns3 = boto3.client('s3', region_name='us-east-1', endpoint_url='{endpoint}', aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}\n"
    );
    let out = stdout_of_success(Command::new("python3").args(["-c", &script]));
    String::from_utf8(out).unwrap()
}

/// Every key in the bucket.
fn keys(moto: &Moto) -> Vec<String> {
    let out = python(
        moto,
        &format!(
            "print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='{BUCKET}').get('Contents', [])]))"
        ),
    );
    serde_json::from_str(&out).unwrap()
}

fn object(moto: &Moto, key: &str) -> Vec<u8> {
    let out = python(
        moto,
        &format!(
            "import sys\nsys.stdout.buffer.write(s3.get_object(Bucket='{BUCKET}', Key='{key}')['Body'].read())"
        ),
    );
    out.into_bytes()
}

/// A broker running as `broker_user`, recording `user`'s sessions to its own directory,
/// and `[audit.s3]` (`s3` added to it) at `endpoint`.
struct Bastion {
    broker: BrokerProc,
    dir: tempfile::TempDir,
}

impl Bastion {
    fn start(user: &str, broker_user: &TestUser, endpoint: &str, s3: &str, audit: &str) -> Bastion {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(broker_user.uid()), None).unwrap();
        let config = format!(
            "[mapping.users]\n{user} = \"arn:aws:iam::123456789012:role/{user}\"\n[session]\nrecord = \"all\"\n\
             [audit]\nrecordings_dir = \"{d}/sessions\"\nfile = \"{d}/audit.jsonl\"\n{audit}\n\
             [audit.s3]\nbucket = \"{BUCKET}\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\n{s3}\n",
            d = dir.path().display()
        );
        let audit_set_min_free = config.contains("min_free");
        let config = match audit_set_min_free {
            true => config,
            false => config.replace("[audit]\n", "[audit]\nmin_free = \"0%\"\n"),
        };
        let broker = BrokerProc::start_as(broker_user.uid(), "", &config);
        Bastion { broker, dir }
    }

    fn local(&self, user: &str, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("sessions")
            .join(user)
            .join(format!("{id}.cast"))
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("sessions/.spool")
    }

    /// The `recording` audit events of session `id`, once one says `state`.
    fn wait_for_upload(&self, id: &str, state: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let events: Vec<Value> = std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|r| r["event"] == "recording" && r["session_id"] == id)
                .collect();
            if events.iter().any(|e| e["upload"] == state) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "no upload {state} for {id}: {events:?}\n{}",
                self.broker.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The recorder of a session `id` of `user`, what it shows read and dropped (a session's
/// terminal would show it; unread, it would stop the recorder).
fn recording(b: &Bastion, user: &TestUser, id: &str) -> std::process::Child {
    let mut child = recorder(&b.broker, user.uid(), id, false);
    let mut shown = child.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut shown, &mut std::io::sink()));
    child
}

/// Records `lines` (the recorder's script) in a session `id` of `user`.
fn record(b: &Bastion, user: &TestUser, id: &str, lines: &str) {
    let mut child = recording(b, user, id);
    script(&mut child, lines);
    script(&mut child, "finish 0\n");
    finish(child);
}

fn location_key(event: &Value) -> String {
    let location = event["location"].as_str().unwrap();
    location
        .strip_prefix(&format!("s3://{BUCKET}/"))
        .unwrap_or_else(|| panic!("{location}"))
        .to_string()
}

fn a_recording_is_uploaded_with_its_retention_and_replays_from_s3() {
    let moto = moto_with_bucket(true);
    let alice = TestUser::create("rs3alice", &[]);
    let brk = TestUser::create("rs3brk1", &[]);
    let b = Bastion::start(
        "rs3alice",
        &brk,
        &moto.url(),
        "prefix = \"bastion-a/\"\nobject_lock_days = 30\nobject_lock_mode = \"GOVERNANCE\"\nkeep_local = \"always\"",
        "",
    );
    let id = unique_session_id();
    record(&b, &alice, &id, "o hello from the bastion\\r\\n\n");
    let events = b.wait_for_upload(&id, "uploaded", Duration::from_secs(30));
    let key = location_key(events.last().unwrap());
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    assert_eq!(
        key,
        format!(
            "bastion-a/rs3alice/{:04}/{:02}/{:02}/{id}.cast",
            today.year(),
            today.month(),
            today.day()
        )
    );
    // Byte for byte the local copy, which keep_local = "always" keeps.
    let local = std::fs::read(b.local("rs3alice", &id)).unwrap();
    assert_eq!(object(&moto, &key), local);
    assert!(String::from_utf8_lossy(&local).contains("hello from the bastion"));
    // Locked in GOVERNANCE mode for 30 days.
    let retention = python(
        &moto,
        &format!(
            "h = s3.head_object(Bucket='{BUCKET}', Key='{key}')\nprint(h['ObjectLockMode'], h['ObjectLockRetainUntilDate'].isoformat())"
        ),
    );
    let (mode, until) = retention.trim().split_once(' ').unwrap();
    assert_eq!(mode, "GOVERNANCE");
    let until: jiff::Timestamp = until.parse().unwrap();
    let days = (until - jiff::Timestamp::now())
        .total(jiff::Unit::Hour)
        .unwrap()
        / 24.0;
    assert!((29.9..=30.1).contains(&days), "{days}");
    // The spool is empty again.
    assert_eq!(std::fs::read_dir(b.spool()).unwrap().count(), 0);

    // `rolesh audit --recordings` says where it is.
    let listed = run(rolesh()
        .args(["audit", "--recordings", "--file"])
        .arg(b.dir.path().join("audit.jsonl")));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(
        row.contains("rs3alice") && row.ends_with(&format!("{id} s3://{BUCKET}/{key}")),
        "{row}"
    );

    // An auditor plays it from S3 with their own credentials.
    let played = run(rolesh()
        .args([
            "replay",
            &format!("s3://{BUCKET}/{key}"),
            "--region",
            "us-east-1",
            "--endpoint-url",
            &moto.url(),
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_ACCESS_KEY_ID", "auditor")
        .env("AWS_SECRET_ACCESS_KEY", "auditor-secret")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    assert_eq!(played.code, 0, "{}", played.stderr);
    assert_eq!(played.stdout, "hello from the bastion\r\n");
    let missing = run(rolesh()
        .args([
            "replay",
            &format!("s3://{BUCKET}/nope.cast"),
            "--region",
            "us-east-1",
            "--endpoint-url",
            &moto.url(),
        ])
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "auditor")
        .env("AWS_SECRET_ACCESS_KEY", "auditor-secret"));
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("NoSuchKey"), "{}", missing.stderr);
}

/// One `o` line of about `n` bytes of output: words and line ends, as a terminal shows
/// (one long run of letters would be redacted as a token).
fn output_line(n: usize) -> String {
    format!("o {}\n", "lorem ipsum dolor sit amet\\r\\n".repeat(n / 28))
}

fn a_recording_longer_than_a_part_is_uploaded_in_parts() {
    let moto = moto_with_bucket(false);
    let bob = TestUser::create("rs3bob", &[]);
    let brk = TestUser::create("rs3brk2", &[]);
    let b = Bastion::start("rs3bob", &brk, &moto.url(), "", "");
    let id = unique_session_id();
    // 20 MiB of output: two whole parts of 8 MiB and a tail.
    let lines: String = (0..1280).map(|_| output_line(16 << 10)).collect();
    let mut child = recording(&b, &bob, &id);
    script(&mut child, &lines);
    // Uploaded while the session runs: the first parts are there before it ends.
    let local = b.local("rs3bob", &id);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    while std::fs::metadata(&local).map_or(0, |m| m.len()) < 20 << 20 {
        assert!(
            Instant::now() < deadline,
            "the recording never reached 20 MiB: {} bytes\n{}",
            std::fs::metadata(&local).map_or(0, |m| m.len()),
            b.broker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while parts_in_progress(&moto) != "2" {
        assert!(
            Instant::now() < deadline,
            "no two parts while the session runs: {}",
            parts_in_progress(&moto)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    script(&mut child, "finish 0\n");
    finish(child);
    let events = b.wait_for_upload(&id, "uploaded", Duration::from_secs(60));
    let key = location_key(events.last().unwrap());
    // A multipart object's ETag says how many parts it has; keep_local is until_uploaded.
    let etag = python(
        &moto,
        &format!("print(s3.head_object(Bucket='{BUCKET}', Key='{key}')['ETag'])"),
    );
    assert!(etag.trim().ends_with("-3\""), "{etag}");
    let uploaded = object(&moto, &key);
    assert!(uploaded.len() > 20 << 20);
    assert!(
        !local.exists(),
        "the local copy goes once S3 has it (keep_local = until_uploaded)"
    );
    let text = String::from_utf8(uploaded).unwrap();
    assert!(
        text.ends_with("\"end: exit 0\"]\n"),
        "{}",
        &text[text.len() - 100..]
    );
}

/// A TCP relay to `target` that the test can take down (every connection closed, new ones
/// refused) and bring back.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (Arc::clone(&up), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().filter_map(Result::ok) {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                open2
                    .lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Relay { port, up, open }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

fn s3_down_at_the_start_and_back_later_leaves_a_complete_object() {
    let moto = moto_with_bucket(false);
    let relay = Relay::start(moto.port);
    let carol = TestUser::create("rs3carol", &[]);
    let brk = TestUser::create("rs3brk3", &[]);
    let b = Bastion::start(
        "rs3carol",
        &brk,
        &relay.url(),
        "keep_local = \"always\"",
        "",
    );
    relay.down();
    // The session starts and is recorded with S3 unreachable: the spool has room.
    let id = unique_session_id();
    record(&b, &carol, &id, "o written while S3 was down\\r\\n\n");
    let events = b.wait_for_upload(&id, "pending", Duration::from_secs(60));
    let pending = events.iter().find(|e| e["upload"] == "pending").unwrap();
    assert!(
        pending["reason"].as_str().is_some_and(|r| r.contains("S3")),
        "{pending}"
    );
    assert!(keys(&moto).is_empty());
    let listed = run(rolesh()
        .args(["audit", "--recordings", "--file"])
        .arg(b.dir.path().join("audit.jsonl")));
    let local = b.local("rs3carol", &id);
    assert!(
        listed
            .stdout
            .contains(&format!("{id} {} (S3 pending, S3 ", local.display())),
        "{}",
        listed.stdout
    );
    relay.up();
    let events = b.wait_for_upload(&id, "uploaded", Duration::from_secs(90));
    let key = location_key(events.last().unwrap());
    assert_eq!(
        object(&moto, &key),
        std::fs::read(b.local("rs3carol", &id)).unwrap()
    );
}

/// How many parts the bucket's incomplete uploads hold.
fn parts_in_progress(moto: &Moto) -> String {
    python(
        moto,
        &format!("u = s3.list_multipart_uploads(Bucket='{BUCKET}').get('Uploads', [])\nprint(sum(len(s3.list_parts(Bucket='{BUCKET}', Key=x['Key'], UploadId=x['UploadId']).get('Parts', [])) for x in u))"),
    )
    .trim()
    .to_string()
}

/// A session of `user` that has recorded 9 MiB, once S3 has its first whole part.
fn session_with_a_part_in_s3(
    b: &Bastion,
    user: &TestUser,
    id: &str,
    moto: &Moto,
) -> std::process::Child {
    let mut child = recording(b, user, id);
    script(
        &mut child,
        &(0..576).map(|_| output_line(16 << 10)).collect::<String>(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while parts_in_progress(moto) != "1" {
        assert!(
            Instant::now() < deadline,
            "no part uploaded: {}",
            b.broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

fn s3_stopped_mid_session_and_started_again_leaves_a_complete_object() {
    let moto = moto_with_bucket(false);
    let relay = Relay::start(moto.port);
    let jade = TestUser::create("rs3jade", &[]);
    let brk = TestUser::create("rs3brk11", &[]);
    let b = Bastion::start("rs3jade", &brk, &relay.url(), "keep_local = \"always\"", "");
    let id = unique_session_id();
    // One whole part reaches S3; then S3 stops while the session goes on and ends.
    let mut child = session_with_a_part_in_s3(&b, &jade, &id, &moto);
    relay.down();
    script(
        &mut child,
        &(0..64).map(|_| output_line(16 << 10)).collect::<String>(),
    );
    script(&mut child, "o said while S3 was away\\r\\n\nfinish 0\n");
    finish(child);
    b.wait_for_upload(&id, "pending", Duration::from_secs(60));
    relay.up();
    let events = b.wait_for_upload(&id, "uploaded", Duration::from_secs(90));
    let key = location_key(events.last().unwrap());
    let local = std::fs::read(b.local("rs3jade", &id)).unwrap();
    assert!(local.len() > 10 << 20);
    assert_eq!(object(&moto, &key), local);
    assert!(String::from_utf8_lossy(&local).contains("said while S3 was away"));
}

fn a_broker_killed_mid_upload_finishes_it_when_started_again() {
    let moto = moto_with_bucket(false);
    let relay = Relay::start(moto.port);
    let dave = TestUser::create("rs3dave", &[]);
    let brk = TestUser::create("rs3brk4", &[]);
    let mut b = Bastion::start("rs3dave", &brk, &relay.url(), "keep_local = \"always\"", "");
    let id = unique_session_id();
    // One whole part reaches S3, then S3 goes away before the rest.
    let mut child = session_with_a_part_in_s3(&b, &dave, &id, &moto);
    relay.down();
    script(&mut child, "o the last words\\r\\n\n");
    std::thread::sleep(Duration::from_millis(500));
    b.broker.kill();
    let _ = child.kill();
    let _ = child.wait();
    let spooled: Vec<PathBuf> = std::fs::read_dir(b.spool())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    relay.up();
    b.broker.spawn();
    let events = b.wait_for_upload(&id, "uploaded", Duration::from_secs(60));
    let key = location_key(events.last().unwrap());
    let local = std::fs::read(b.local("rs3dave", &id)).unwrap();
    assert_eq!(object(&moto, &key), local);
    assert!(String::from_utf8_lossy(&local).contains("the last words"));
    assert_eq!(std::fs::read_dir(b.spool()).unwrap().count(), 0);
}

fn two_bastions_share_a_bucket_and_never_replace_an_object() {
    let moto = moto_with_bucket(false);
    let erin = TestUser::create("rs3erin", &[]);
    let (brk1, brk2) = (
        TestUser::create("rs3brk5", &[]),
        TestUser::create("rs3brk6", &[]),
    );
    let keep = "keep_local = \"always\"";
    let a = Bastion::start(
        "rs3erin",
        &brk1,
        &moto.url(),
        &format!("prefix = \"a/\"\n{keep}"),
        "",
    );
    let b = Bastion::start(
        "rs3erin",
        &brk2,
        &moto.url(),
        &format!("prefix = \"b/\"\n{keep}"),
        "",
    );
    let (ia, ib) = (unique_session_id(), unique_session_id());
    record(&a, &erin, &ia, "o on a\\r\\n\n");
    record(&b, &erin, &ib, "o on b\\r\\n\n");
    let ka = location_key(
        a.wait_for_upload(&ia, "uploaded", Duration::from_secs(30))
            .last()
            .unwrap(),
    );
    let kb = location_key(
        b.wait_for_upload(&ib, "uploaded", Duration::from_secs(30))
            .last()
            .unwrap(),
    );
    assert!(
        ka.starts_with("a/rs3erin/") && kb.starts_with("b/rs3erin/"),
        "{ka} {kb}"
    );
    let mut all = keys(&moto);
    all.sort();
    assert_eq!(all, [ka.clone(), kb]);
    // A third bastion with a's prefix and the same session id: its upload is refused, and
    // a's object is left as it was.
    let brk3 = TestUser::create("rs3brk7", &[]);
    let c = Bastion::start(
        "rs3erin",
        &brk3,
        &moto.url(),
        &format!("prefix = \"a/\"\n{keep}"),
        "",
    );
    record(&c, &erin, &ia, "o an impostor\\r\\n\n");
    let events = c.wait_for_upload(&ia, "failed", Duration::from_secs(30));
    let failed = events.iter().find(|e| e["upload"] == "failed").unwrap();
    assert!(
        failed["reason"].as_str().unwrap().contains("not replaced"),
        "{failed}"
    );
    assert_eq!(
        object(&moto, &ka),
        std::fs::read(a.local("rs3erin", &ia)).unwrap()
    );
    // What could not be uploaded stays in c's spool and on its disk.
    assert_eq!(std::fs::read_dir(c.spool()).unwrap().count(), 1);
    assert!(c.local("rs3erin", &ia).exists());
}

fn with_no_room_for_the_spool_a_recorded_session_is_refused() {
    let moto = moto_with_bucket(false);
    let relay = Relay::start(moto.port);
    relay.down();
    let fay = TestUser::create("rs3fay", &[]);
    let brk = TestUser::create("rs3brk8", &[]);
    // Nothing is free enough: 99% must be.
    let b = Bastion::start("rs3fay", &brk, &relay.url(), "", "min_free = \"99%\"");
    let id = unique_session_id();
    let mut child = recorder(&b.broker, fay.uid(), &id, false);
    script(&mut child, "o refused\\r\\n\nfinish 0\n");
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("min_free"), "{stderr}");
    assert!(!b.local("rs3fay", &id).exists());
}

/// A `record` request whose connection closes at once (a hostile client, or a session
/// killed as it started): the recording ends abnormally, and its upload still finishes.
fn a_recording_whose_client_goes_away_is_still_uploaded() {
    let moto = moto_with_bucket(false);
    let gus = TestUser::create("rs3gus", &[]);
    let brk = TestUser::create("rs3brk9", &[]);
    let b = Bastion::start("rs3gus", &brk, &moto.url(), "keep_local = \"always\"", "");
    let id = unique_session_id();
    let start = format!(
        r#"{{"v":1,"op":"record","session_id":"{id}","cols":80,"rows":24,"command":null,"term":null,"record_input":false}}"#
    );
    let answers = b.broker.raw(gus.uid(), &[&start]);
    assert_eq!(answers[0]["ok"], true, "{:?}", answers);
    let events = b.wait_for_upload(&id, "uploaded", Duration::from_secs(30));
    let key = location_key(events.last().unwrap());
    let local = std::fs::read(b.local("rs3gus", &id)).unwrap();
    assert!(String::from_utf8_lossy(&local).contains("abnormal end"));
    assert_eq!(object(&moto, &key), local);
}

/// Session ids are the recorder's to choose: two users choosing the same one get two
/// recordings, two spool entries and two objects, neither in the way of the other.
fn two_users_with_one_session_id_are_each_uploaded() {
    let moto = moto_with_bucket(false);
    let relay = Relay::start(moto.port);
    let (hana, ivan) = (
        TestUser::create("rs3hana", &[]),
        TestUser::create("rs3ivan", &[]),
    );
    let brk = TestUser::create("rs3brk10", &[]);
    let b = Bastion::start("rs3hana", &brk, &relay.url(), "keep_local = \"always\"", "");
    // Both spooled at once, S3 down: neither entry may take the other's place.
    relay.down();
    let id = unique_session_id();
    let config = std::fs::read_to_string(b.broker.config_path()).unwrap();
    std::fs::write(
        b.broker.config_path(),
        config.replace(
            "[mapping.users]\n",
            "[mapping.users]\nrs3ivan = \"arn:aws:iam::123456789012:role/rs3ivan\"\n",
        ),
    )
    .unwrap();
    b.broker.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.broker.log().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "{}", b.broker.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    record(&b, &hana, &id, "o hana's\\r\\n\n");
    record(&b, &ivan, &id, "o ivan's\\r\\n\n");
    b.wait_for_upload(&id, "pending", Duration::from_secs(30));
    assert_eq!(std::fs::read_dir(b.spool()).unwrap().count(), 2);
    relay.up();
    let deadline = Instant::now() + Duration::from_secs(60);
    while keys(&moto).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            keys(&moto),
            b.broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (user, said) in [("rs3hana", "hana's"), ("rs3ivan", "ivan's")] {
        let key = keys(&moto)
            .into_iter()
            .find(|k| k.contains(&format!("/{user}/")))
            .unwrap();
        let text = String::from_utf8(object(&moto, &key)).unwrap();
        assert!(text.contains(said), "{key}: {text}");
        assert_eq!(
            text.into_bytes(),
            std::fs::read(b.local(user, &id)).unwrap()
        );
    }
}

fn check_describe_wants_the_bucket_and_its_object_lock() {
    let moto = moto_with_bucket(false);
    let dir = tempfile::tempdir().unwrap();
    let config = |bucket: &str, lock: &str| {
        write_config(
            dir.path(),
            "config.toml",
            &format!(
                "[aws]\nregion = \"us-east-1\"\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/b-{{user}}\"\n[audit.s3]\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n{lock}\n",
                moto.url()
            ),
        )
    };
    let check = |path: &Path| {
        run(rolesh()
            .args(["check", "--describe", "--config"])
            .arg(path)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing"))
    };
    let r = check(&config(BUCKET, ""));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("recordings bucket {BUCKET}: reachable\n")),
        "{}",
        r.stdout
    );
    let r = check(&config(BUCKET, "object_lock_days = 7"));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("object lock is not enabled, but [audit.s3] asks for 7 days"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("the recordings bucket is not ready"),
        "{}",
        r.stderr
    );
    let r = check(&config("no-such-bucket", ""));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("recordings bucket no-such-bucket: cannot reach it"),
        "{}",
        r.stdout
    );
}

fn bad_audit_s3_settings_are_reported_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "config.toml",
        "[aws]\nregion = \"us-east-1\"\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/b-{user}\"\n\
         [audit.s3]\nbucket = \"Bad_Bucket\"\nregion = \"moon-1\"\nprefix = \"/{hostname} x\"\n\
         endpoint = \"http://s3.example.com\"\nobject_lock_mode = \"FOREVER\"\nstorage_class = \"cold\"\n\
         keep_local = \"never\"\nkms_key_id = \"\"\n",
    );
    let r = run(rolesh().args(["check", "--config"]).arg(&path));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let p = path.display();
    for expected in [
        format!("{p}:6:10: invalid bucket name \"Bad_Bucket\""),
        format!("{p}:7:10: invalid AWS region \"moon-1\""),
        format!("{p}:8:10: `prefix` \"/{{hostname}} x\" has ' '"),
        format!("{p}:9:12: plain http is allowed only to a loopback address"),
        format!("{p}:10:20: `object_lock_mode` must be \"GOVERNANCE\" or \"COMPLIANCE\""),
        format!("{p}:11:17: `storage_class` must be"),
        format!("{p}:12:14: `keep_local` must be \"until_uploaded\" or \"always\""),
        format!(
            "{p}:13:14: `kms_key_id` must be a KMS key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not \"\""
        ),
    ] {
        assert!(
            r.stderr.contains(&expected),
            "no {expected:?} in:\n{}",
            r.stderr
        );
    }
    let path = write_config(
        dir.path(),
        "lock.toml",
        "[aws]\nregion = \"us-east-1\"\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/b-{user}\"\n\
         [audit.s3]\nregion = \"us-east-1\"\nobject_lock_mode = \"COMPLIANCE\"\n",
    );
    let r = run(rolesh().args(["check", "--config"]).arg(&path));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let p = path.display();
    assert!(
        r.stderr.contains(&format!(
            "{p}:5:1: missing required key `bucket` in [audit.s3]"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "{p}:7:20: `object_lock_mode` needs `object_lock_days`"
        )),
        "{}",
        r.stderr
    );
}

fn rbac_emits_the_recordings_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "config.toml",
        "[aws]\nregion = \"us-east-1\"\n[mapping.users]\nalice = \"arn:aws:iam::123456789012:role/a\"\n\
         [audit.s3]\nbucket = \"acme-recordings\"\nregion = \"us-east-1\"\nobject_lock_days = 365\n\
         kms_key_id = \"arn:aws:kms:us-east-1:123456789012:key/k\"\n",
    );
    let r = run(rolesh()
        .args([
            "rbac",
            "--only",
            "recordings",
            "--format",
            "json",
            "--bastion-role",
            "arn:aws:iam::123456789012:role/bastion",
            "--config",
        ])
        .arg(&path));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let policy: Value = serde_json::from_str(&r.stdout).unwrap();
    let s = &policy["Statement"];
    assert_eq!(
        s[0]["Action"],
        serde_json::json!([
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:PutObjectRetention"
        ])
    );
    assert_eq!(s[0]["Resource"][0], "arn:aws:s3:::acme-recordings/*/*");
    assert_eq!(s[1]["Resource"][0], "arn:aws:s3:::acme-recordings");
    assert_eq!(
        s[2]["Resource"][0],
        "arn:aws:kms:us-east-1:123456789012:key/k"
    );
    let text = serde_json::to_string(&policy).unwrap();
    assert!(
        !text.contains("s3:GetObject") && !text.contains("s3:DeleteObject"),
        "{text}"
    );
}
