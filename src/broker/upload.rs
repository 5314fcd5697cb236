//! Recordings streamed to S3 (`[audit.s3]`) while the session runs, with the broker's own
//! credentials, as one multipart upload per recording under
//! `PREFIX/USER/YYYY/MM/DD/SESSION_ID.cast`.
//!
//! The local recording is the spool: what S3 does not have yet is in it. Beside it,
//! `recordings_dir/.spool/UID-SESSION_ID.json` (0600 in a 0700 directory, the broker's
//! user) says where it goes and which parts S3 has. Every [`PART_SIZE`] of recording
//! becomes a part; what comes after the last whole part is uploaded every [`CHECKPOINT`]
//! as the next part and uploaded again, larger, until it is whole or the recording ends.
//! S3 accepts a part number again and keeps the last, and every part but the last must be
//! at least 5 MiB, so the object is whole parts and one tail. A bastion that dies loses at
//! most the last [`CHECKPOINT`] of it in S3 (the upload is left incomplete, its parts
//! listed by ListMultipartUploads), and nothing locally.
//!
//! When the recording ends the tail is uploaded, the parts are written to the spool, and
//! the upload is completed with `If-None-Match: *`: an object already at that key
//! (another bastion's) is never replaced. A completion whose answer is lost, or that a
//! broker stopped before it could note it, is recognised by the object's ETag, which S3
//! makes from the parts' own (this broker's uploads, not anything a user chose). S3
//! errors are retried with backoff until they stop; a broker started again finishes every
//! spooled recording. Each state is an audit event `recording` with `upload` = `pending`
//! (with the reason, once per run of failures), `failed` (a refusal no retry mends: the
//! bucket is gone, access is denied, the key is taken; the spool stays for the next
//! start) or `uploaded`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

use crate::config::{KeepLocal, S3Settings};
use crate::protocol::{ErrorCode, WireError};

/// A whole part.
pub(super) const PART_SIZE: u64 = 8 << 20;

/// How often the tail is uploaded while the session runs.
pub(super) const CHECKPOINT: Duration = Duration::from_secs(30);

/// How often a running recording's size is looked at.
const POLL: Duration = Duration::from_secs(1);

/// The longest wait between two attempts while S3 fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Parts read and uploaded at once, all recordings together: each is held in memory
/// (8 MiB at most), so this bounds what uploads take, however many recordings wait.
static PART_SLOTS: Semaphore = Semaphore::const_new(4);

const SPOOL: &str = ".spool";

/// One recording's way to S3, as the spool keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spooled {
    local: PathBuf,
    bucket: String,
    key: String,
    user: String,
    uid: u32,
    session_id: String,
    upload_id: Option<String>,
    /// When its object lock retention ends (Unix seconds), decided when the upload began.
    retain_until: Option<i64>,
    /// The whole parts S3 has, in order (part N holds bytes (N-1)·PART_SIZE..N·PART_SIZE).
    parts: Vec<UploadedPart>,
    /// Every part, the tail included, as sent to CompleteMultipartUpload: set before it
    /// is sent, so that a completion whose answer never came is recognised.
    completing: Option<Vec<UploadedPart>>,
    /// S3 has the whole object (only its retention may be left to set).
    completed: bool,
    /// The recording's size when its tail was last uploaded (an idle session's tail is
    /// not uploaded again).
    #[serde(skip)]
    tail_uploaded_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadedPart {
    number: i32,
    etag: String,
}

impl Spooled {
    /// Starts over: a new upload from the first byte (the old one gone, or no longer
    /// matching the local recording).
    fn restart(&mut self) {
        self.upload_id = None;
        self.parts.clear();
        self.completing = None;
        self.tail_uploaded_at = 0;
    }
}

/// A running upload: finished when the recording is complete, or when the broker lets
/// go of it (a dropped connection is a recording's end too).
pub(super) struct Upload {
    finished: watch::Sender<bool>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.finished.send_replace(true);
    }
}

/// `recordings_dir/.spool`, made (0700) if missing.
fn spool_dir(recordings_dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = recordings_dir.join(SPOOL);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Where a recording's spool entry is.
struct Entry(PathBuf);

impl Entry {
    /// A new entry: refused if one is there (a recording is spooled once).
    fn create(&self, spooled: &Spooled) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.0)?;
        self.save(spooled)
    }

    fn save(&self, spooled: &Spooled) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let partial = self.0.with_extension("json.partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        file.write_all(&serde_json::to_vec(spooled).unwrap_or_default())?;
        file.sync_all()?;
        std::fs::rename(&partial, &self.0)
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Spools the recording at `local` of `user`'s session and starts its upload. An error
/// (the spool cannot be written, or already holds this recording) refuses the recording:
/// it would never reach S3.
pub(super) fn begin(
    client: aws_sdk_s3::Client,
    settings: &S3Settings,
    recordings_dir: &Path,
    hostname: &str,
    who: (&str, u32),
    session_id: &str,
    local: &Path,
) -> Result<Upload, WireError> {
    let (user, uid) = who;
    let prefix = settings.prefix_for(hostname);
    let retain_until = settings.object_lock.map(|lock| {
        let until = SystemTime::now() + Duration::from_secs(u64::from(lock.days) * 86_400);
        until
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let spooled = Spooled {
        local: local.to_path_buf(),
        bucket: settings.bucket.clone(),
        key: crate::s3::recording_key(&prefix, user, session_id, SystemTime::now()),
        user: user.to_string(),
        uid,
        session_id: session_id.to_string(),
        upload_id: None,
        retain_until,
        parts: Vec::new(),
        completing: None,
        completed: false,
        tail_uploaded_at: 0,
    };
    let unavailable = |e: std::io::Error| {
        WireError::new(
            ErrorCode::Unavailable,
            format!("cannot spool the recording for S3: {e}"),
        )
    };
    let dir = spool_dir(recordings_dir).map_err(unavailable)?;
    let entry = Entry(dir.join(format!("{uid}-{session_id}.json")));
    entry.create(&spooled).map_err(unavailable)?;
    let (finished, running) = watch::channel(false);
    tokio::spawn(run(client, settings.clone(), entry, spooled, running));
    Ok(Upload { finished })
}

/// Finishes every recording in the spool (a broker started again): they have no writer
/// any more.
pub(super) fn resume(client: &aws_sdk_s3::Client, settings: &S3Settings, recordings_dir: &Path) {
    for (path, spooled) in spooled(recordings_dir) {
        info!(session_id = %spooled.session_id, key = %spooled.key, "resuming a spooled recording's upload");
        let (_done, running) = watch::channel(true);
        tokio::spawn(run(
            client.clone(),
            settings.clone(),
            Entry(path),
            spooled,
            running,
        ));
    }
}

/// Without `[audit.s3]` any more: what the spool still holds, said in the log.
pub(super) fn left_in_spool(recordings_dir: &Path) {
    for (path, spooled) in spooled(recordings_dir) {
        warn!(path = %path.display(), key = %spooled.key, local = %spooled.local.display(),
            "a recording waits in the spool for S3, but [audit.s3] is gone: it is not uploaded");
    }
}

/// The spool's entries that can be read.
fn spooled(recordings_dir: &Path) -> Vec<(PathBuf, Spooled)> {
    let Ok(entries) = std::fs::read_dir(recordings_dir.join(SPOOL)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let read = std::fs::read(&path).map_err(|e| e.to_string());
        match read.and_then(|b| serde_json::from_slice::<Spooled>(&b).map_err(|e| e.to_string())) {
            Ok(spooled) => found.push((path, spooled)),
            Err(why) => {
                warn!(path = %path.display(), "an unreadable spool entry is left as it is: {why}")
            }
        }
    }
    found
}

/// Why an attempt failed.
enum Failed {
    /// Worth trying again (throttled, down, unreachable).
    Retry(String),
    /// No retry mends it.
    Refused(String),
    /// The upload is gone (aborted, or expired by a lifecycle rule) or its parts no longer
    /// fit: start it again.
    Lost(String),
}

/// Uploads until the recording is complete in S3 or S3 refuses it.
async fn run(
    client: aws_sdk_s3::Client,
    settings: S3Settings,
    entry: Entry,
    mut spooled: Spooled,
    mut finished: watch::Receiver<bool>,
) {
    let mut last_checkpoint = tokio::time::Instant::now();
    let mut backoff = Duration::from_secs(1);
    let mut pending = false;
    loop {
        let done = *finished.borrow_and_update() || finished.has_changed().is_err();
        let checkpoint = last_checkpoint.elapsed() >= CHECKPOINT;
        let failure = match step(&client, &settings, &entry, &mut spooled, done, checkpoint).await {
            Ok(true) => return uploaded(&settings, &entry, &spooled),
            Ok(false) => {
                if checkpoint {
                    last_checkpoint = tokio::time::Instant::now();
                }
                backoff = Duration::from_secs(1);
                pending = false;
                None
            }
            Err(Failed::Refused(why)) => {
                abort(&client, &spooled).await;
                return audit(&spooled, "failed", Some(&why));
            }
            Err(Failed::Lost(why)) => {
                warn!(session_id = %spooled.session_id, key = %spooled.key, "the upload starts again: {why}");
                abort(&client, &spooled).await;
                spooled.restart();
                Some(why)
            }
            Err(Failed::Retry(why)) => Some(why),
        };
        if let Some(why) = failure {
            if !pending {
                audit(&spooled, "pending", Some(&why));
                pending = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        if !done {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = finished.changed() => {}
            }
        }
    }
}

/// One look at the recording: whole parts uploaded, the tail too when a checkpoint is due,
/// and the upload completed when the recording is. `true` once S3 has the whole object.
async fn step(
    client: &aws_sdk_s3::Client,
    settings: &S3Settings,
    entry: &Entry,
    spooled: &mut Spooled,
    done: bool,
    checkpoint: bool,
) -> Result<bool, Failed> {
    if spooled.completed {
        return retain(client, settings, spooled).await.map(|()| true);
    }
    if let Some(parts) = spooled.completing.clone() {
        return complete(client, settings, entry, spooled, parts).await;
    }
    let size = tokio::fs::metadata(&spooled.local)
        .await
        .map_err(|e| Failed::Refused(format!("the local recording is gone: {e}")))?
        .len();
    let whole = spooled.parts.len() as u64 * PART_SIZE;
    // Shorter than what S3 has (a file system that lost its last writes): from the start.
    let Some(tail) = size.checked_sub(whole) else {
        return Err(Failed::Lost(format!(
            "the local recording ({size} bytes) is shorter than its uploaded parts ({whole})"
        )));
    };
    if !done && tail < PART_SIZE && !checkpoint {
        return Ok(false);
    }
    let upload_id = match &spooled.upload_id {
        Some(id) => id.clone(),
        None => {
            let id = create(client, settings, spooled).await?;
            spooled.upload_id = Some(id.clone());
            save(entry, spooled)?;
            id
        }
    };
    while size - spooled.parts.len() as u64 * PART_SIZE >= PART_SIZE {
        let number = spooled.parts.len() as i32 + 1;
        let from = (number as u64 - 1) * PART_SIZE;
        let etag = upload_part(client, spooled, &upload_id, number, from, PART_SIZE).await?;
        spooled.parts.push(UploadedPart { number, etag });
        save(entry, spooled)?;
    }
    let whole = spooled.parts.len() as u64 * PART_SIZE;
    let tail = size - whole;
    let number = spooled.parts.len() as i32 + 1;
    if !done {
        if checkpoint && tail > 0 && size != spooled.tail_uploaded_at {
            upload_part(client, spooled, &upload_id, number, whole, tail).await?;
            spooled.tail_uploaded_at = size;
        }
        return Ok(false);
    }
    let mut parts = spooled.parts.clone();
    if tail > 0 || parts.is_empty() {
        let etag = upload_part(client, spooled, &upload_id, number, whole, tail).await?;
        parts.push(UploadedPart { number, etag });
    }
    spooled.completing = Some(parts.clone());
    save(entry, spooled)?;
    complete(client, settings, entry, spooled, parts).await
}

/// CompleteMultipartUpload with `parts`, unless it is already done: an answer that never
/// came (a retry finds the upload gone) is recognised by the object's ETag.
async fn complete(
    client: &aws_sdk_s3::Client,
    settings: &S3Settings,
    entry: &Entry,
    spooled: &mut Spooled,
    parts: Vec<UploadedPart>,
) -> Result<bool, Failed> {
    let upload_id = spooled.upload_id.clone().unwrap_or_default();
    let completed_parts: Vec<CompletedPart> = parts
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.number)
                .e_tag(&p.etag)
                .build()
        })
        .collect();
    let answer = client
        .complete_multipart_upload()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed_parts))
                .build(),
        )
        .if_none_match("*")
        .send()
        .await;
    match answer.map_err(|e| failed("CompleteMultipartUpload", &e)) {
        Ok(_) => {}
        Err(Failed::Retry(_) | Failed::Lost(_)) if is_ours(client, spooled, &parts).await => {}
        Err(other) => return Err(other),
    }
    spooled.completed = true;
    save(entry, spooled)?;
    retain(client, settings, spooled).await.map(|()| true)
}

/// Whether the object at the recording's key was made of exactly these parts: S3's ETag
/// for a multipart object is the MD5 of its parts' MD5s, and a dash and their number
/// (ListObjectsV2, which the bastion's `s3:ListBucket` allows; it may not read objects).
async fn is_ours(client: &aws_sdk_s3::Client, spooled: &Spooled, parts: &[UploadedPart]) -> bool {
    let Some(expected) = multipart_etag(parts) else {
        return false;
    };
    let Ok(listed) = client
        .list_objects_v2()
        .bucket(&spooled.bucket)
        .prefix(&spooled.key)
        .max_keys(1)
        .send()
        .await
    else {
        return false;
    };
    listed
        .contents()
        .iter()
        .find(|o| o.key() == Some(spooled.key.as_str()))
        .and_then(|o| o.e_tag())
        .is_some_and(|etag| etag.trim_matches('"') == expected)
}

/// The ETag S3 gives an object completed from `parts`: the MD5 of their MD5s, `-N`.
/// `None` when a part's ETag is not an MD5 (SSE-KMS), and nothing can be told from it.
fn multipart_etag(parts: &[UploadedPart]) -> Option<String> {
    use md5::{Digest, Md5};
    let mut md5s = Md5::new();
    for p in parts {
        let hex = p.etag.trim_matches('"');
        if hex.len() != 32 {
            return None;
        }
        for i in (0..32).step_by(2) {
            md5s.update([u8::from_str_radix(&hex[i..i + 2], 16).ok()?]);
        }
    }
    let digest: String = md5s.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{digest}-{}", parts.len()))
}

fn save(entry: &Entry, spooled: &Spooled) -> Result<(), Failed> {
    entry
        .save(spooled)
        .map_err(|e| Failed::Retry(format!("cannot write the spool entry: {e}")))
}

/// Sets the object's retention, as its upload began with it: S3 applies it from the
/// upload's own headers, and this makes sure of it (the same date again changes nothing).
async fn retain(
    client: &aws_sdk_s3::Client,
    settings: &S3Settings,
    spooled: &Spooled,
) -> Result<(), Failed> {
    let (Some(lock), Some(until)) = (settings.object_lock, spooled.retain_until) else {
        return Ok(());
    };
    let retention = aws_sdk_s3::types::ObjectLockRetention::builder()
        .mode(lock.mode.as_str().into())
        .retain_until_date(aws_smithy_types::DateTime::from_secs(until))
        .build();
    client
        .put_object_retention()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .retention(retention)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| failed("PutObjectRetention", &e))
}

/// CreateMultipartUpload, with the retention, encryption and storage class configured.
async fn create(
    client: &aws_sdk_s3::Client,
    settings: &S3Settings,
    spooled: &Spooled,
) -> Result<String, Failed> {
    let mut call = client
        .create_multipart_upload()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .content_type("application/x-asciicast")
        .metadata("rolesh-session-id", &spooled.session_id)
        .metadata("rolesh-user", &spooled.user);
    if let (Some(lock), Some(until)) = (settings.object_lock, spooled.retain_until) {
        call = call
            .object_lock_mode(lock.mode.as_str().into())
            .object_lock_retain_until_date(aws_smithy_types::DateTime::from_secs(until));
    }
    if let Some(key) = &settings.kms_key_id {
        call = call
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
            .ssekms_key_id(key);
    }
    if let Some(class) = settings.storage_class {
        call = call.storage_class(class.as_str().into());
    }
    let out = call
        .send()
        .await
        .map_err(|e| failed("CreateMultipartUpload", &e))?;
    out.upload_id()
        .map(str::to_string)
        .ok_or_else(|| Failed::Retry("CreateMultipartUpload gave no upload id".into()))
}

/// Uploads `len` bytes of the local recording from `from` as part `number`; its ETag.
async fn upload_part(
    client: &aws_sdk_s3::Client,
    spooled: &Spooled,
    upload_id: &str,
    number: i32,
    from: u64,
    len: u64,
) -> Result<String, Failed> {
    let _slot = PART_SLOTS
        .acquire()
        .await
        .map_err(|_| Failed::Retry("the broker is stopping".into()))?;
    let bytes = read_range(&spooled.local, from, len)
        .await
        .map_err(|e| Failed::Refused(format!("cannot read the local recording: {e}")))?;
    let out = client
        .upload_part()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(|e| failed("UploadPart", &e))?;
    out.e_tag()
        .map(str::to_string)
        .ok_or_else(|| Failed::Retry("UploadPart gave no ETag".into()))
}

async fn read_range(path: &Path, from: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(from)).await?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes).await?;
    Ok(bytes)
}

/// Best effort: the upload's parts are not left behind for nothing.
async fn abort(client: &aws_sdk_s3::Client, spooled: &Spooled) {
    let (Some(upload_id), false) = (&spooled.upload_id, spooled.completed) else {
        return;
    };
    let _ = client
        .abort_multipart_upload()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .upload_id(upload_id)
        .send()
        .await;
}

/// What an S3 error means for the upload.
fn failed<E>(op: &str, e: &aws_sdk_s3::error::SdkError<E>) -> Failed
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let why = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("S3 {op}: {c}: {m}"),
        (Some(c), None) => format!("S3 {op}: {c}"),
        _ => format!("S3 {op}: {}", crate::error::error_chain(e)),
    };
    match (e.code(), status) {
        (Some("NoSuchUpload" | "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall"), _) => {
            Failed::Lost(why)
        }
        (Some("PreconditionFailed"), _) | (_, Some(412)) => Failed::Refused(format!(
            "{why} (an object is already at this key; it is not replaced)"
        )),
        (
            Some(
                "NoSuchBucket"
                | "NoSuchKey"
                | "AccessDenied"
                | "InvalidRequest"
                | "InvalidArgument"
                | "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "KMS.NotFoundException"
                | "KMS.DisabledException",
            ),
            _,
        )
        | (_, Some(301 | 403)) => Failed::Refused(why),
        _ => Failed::Retry(why),
    }
}

/// The recording is in S3: the audit event, the spool entry gone, and the local copy too
/// unless `keep_local = "always"`.
fn uploaded(settings: &S3Settings, entry: &Entry, spooled: &Spooled) {
    audit(spooled, "uploaded", None);
    entry.remove();
    if settings.keep_local == KeepLocal::UntilUploaded {
        let _ = std::fs::remove_file(&spooled.local);
    }
}

fn audit(spooled: &Spooled, state: &str, reason: Option<&str>) {
    let location = crate::s3::url(&spooled.bucket, &spooled.key);
    info!(target: "rolesh::audit", event = "recording", upload = state,
        user = %spooled.user, uid = spooled.uid, session_id = %spooled.session_id,
        location = %location, path = %spooled.local.display(), reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: i32, etag: &str) -> UploadedPart {
        UploadedPart {
            number,
            etag: etag.into(),
        }
    }

    #[test]
    fn a_multipart_etag_is_the_md5_of_the_parts_md5s() {
        // Two parts, "hello" and "world" (their MD5s as S3 gives them, quoted or not);
        // the value is Python's hashlib.md5(bytes.fromhex(a) + bytes.fromhex(b)).
        let hello = "5d41402abc4b2a76b9719d911017c592";
        let world = "7d793037a0760186574b0282f2f435e7";
        let etag = multipart_etag(&[part(1, &format!("\"{hello}\"")), part(2, world)]).unwrap();
        assert_eq!(etag, "065947336a2f2a95ba8899f3675c3be6-2");
        assert_ne!(
            etag,
            multipart_etag(&[part(1, world), part(2, hello)]).unwrap(),
            "the order of the parts counts"
        );
        assert_eq!(multipart_etag(&[part(1, "not-an-md5")]), None);
    }
}
