//! Recordings streamed to S3 (`[audit.s3]`) while the session runs, with the broker's own
//! credentials, as one multipart upload per recording under
//! `PREFIX/USER/YYYY/MM/DD/SESSION_ID.cast`.
//!
//! The local recording is the spool: what S3 does not have yet is in it. Beside it,
//! `recordings_dir/.spool/SESSION_ID.json` (0600 in a 0700 directory, the broker's user)
//! says where it goes and which parts S3 has. Every [`PART_SIZE`] of recording becomes a
//! part; what comes after the last whole part is uploaded every [`CHECKPOINT`] as the next
//! part and uploaded again, larger, until it is whole or the recording ends. S3 accepts a
//! part number again and keeps the last, and every part but the last must be at least
//! 5 MiB, so the object is whole parts and one tail. A bastion that dies loses at most the
//! last [`CHECKPOINT`] of it in S3 (the upload is left incomplete, its parts listed by
//! ListMultipartUploads), and nothing locally.
//!
//! When the recording ends the tail is uploaded and the upload completed with
//! `If-None-Match: *`: an object already at that key (another bastion's) is never
//! replaced. S3 errors are retried with backoff until they stop; a broker started again
//! finishes every spooled recording. Each state is an audit event `recording` with
//! `upload` = `pending` (with the reason, while retrying), `failed` (a refusal no retry
//! mends: the bucket is gone, access is denied, the key is taken; the spool stays for the
//! next start) or `uploaded`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
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
    /// The bastion that records it, as the object's metadata says too.
    host: String,
    upload_id: Option<String>,
    /// When its object lock retention ends (Unix seconds), decided when the upload began.
    retain_until: Option<i64>,
    /// S3 has the whole object (only its retention may be left to set).
    #[serde(default)]
    completed: bool,
    /// The whole parts S3 has, in order (part N holds bytes (N-1)·PART_SIZE..N·PART_SIZE).
    parts: Vec<UploadedPart>,
    /// The recording's size when its tail was last uploaded (an idle session's tail is
    /// not uploaded again).
    #[serde(skip)]
    tail_uploaded_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadedPart {
    number: i32,
    etag: String,
}

/// A running upload: [`finish`](Self::finish) when the recording is complete.
pub(super) struct Upload {
    finished: watch::Sender<bool>,
}

impl Upload {
    pub(super) fn finish(&self) {
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
/// (the spool cannot be written) refuses the recording: it would never reach S3.
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
    let spooled = Spooled {
        local: local.to_path_buf(),
        bucket: settings.bucket.clone(),
        key: crate::s3::recording_key(&prefix, user, session_id, SystemTime::now()),
        user: user.to_string(),
        uid,
        session_id: session_id.to_string(),
        host: hostname.to_string(),
        upload_id: None,
        retain_until: settings.object_lock.map(|lock| {
            let until = SystemTime::now() + Duration::from_secs(u64::from(lock.days) * 86_400);
            until
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        }),
        completed: false,
        parts: Vec::new(),
        tail_uploaded_at: 0,
    };
    let unavailable = |e: std::io::Error| {
        WireError::new(
            ErrorCode::Unavailable,
            format!("cannot spool the recording for S3: {e}"),
        )
    };
    let entry = Entry(
        spool_dir(recordings_dir)
            .map_err(unavailable)?
            .join(format!("{session_id}.json")),
    );
    entry.save(&spooled).map_err(unavailable)?;
    let (finished, running) = watch::channel(false);
    tokio::spawn(run(client, settings.clone(), entry, spooled, running));
    Ok(Upload { finished })
}

/// Finishes every recording in the spool (a broker started again): they have no writer
/// any more.
pub(super) fn resume(client: &aws_sdk_s3::Client, settings: &S3Settings, recordings_dir: &Path) {
    let Ok(dir) = spool_dir(recordings_dir) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let read = std::fs::read(&path).map_err(|e| e.to_string());
        match read.and_then(|b| serde_json::from_slice::<Spooled>(&b).map_err(|e| e.to_string())) {
            Ok(spooled) => {
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
            Err(why) => {
                warn!(path = %path.display(), "an unreadable spool entry is left as it is: {why}")
            }
        }
    }
}

/// Why an attempt failed.
enum Failed {
    /// Worth trying again (throttled, down, unreachable).
    Retry(String),
    /// No retry mends it.
    Refused(String),
    /// The upload is gone (aborted, or expired by a lifecycle rule): start it again.
    Lost,
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
        let done = *finished.borrow_and_update();
        let checkpoint = last_checkpoint.elapsed() >= CHECKPOINT;
        match step(&client, &settings, &entry, &mut spooled, done, checkpoint).await {
            Ok(true) => return uploaded(&settings, &entry, &spooled),
            Ok(false) => {
                if checkpoint {
                    last_checkpoint = tokio::time::Instant::now();
                }
                backoff = Duration::from_secs(1);
                pending = false;
            }
            Err(Failed::Lost) => {
                spooled.upload_id = None;
                spooled.parts.clear();
                continue;
            }
            Err(Failed::Refused(why)) => return audit(&spooled, "failed", Some(&why)),
            Err(Failed::Retry(why)) => {
                if !pending {
                    audit(&spooled, "pending", Some(&why));
                    pending = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
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
    let size = tokio::fs::metadata(&spooled.local)
        .await
        .map_err(|e| Failed::Refused(format!("the local recording is gone: {e}")))?
        .len();
    let whole = spooled.parts.len() as u64 * PART_SIZE;
    if !done && size - whole < PART_SIZE && !checkpoint {
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
    let mut parts: Vec<CompletedPart> = spooled
        .parts
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.number)
                .e_tag(&p.etag)
                .build()
        })
        .collect();
    if tail > 0 || parts.is_empty() {
        let etag = upload_part(client, spooled, &upload_id, number, whole, tail).await?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build(),
        );
    }
    let completed = client
        .complete_multipart_upload()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .if_none_match("*")
        .send()
        .await;
    match completed.map_err(|e| failed("CompleteMultipartUpload", &e)) {
        Ok(_) => {}
        // An answer lost or unreadable (S3 may have completed it: a retry would then find
        // the upload gone, or the key taken by this very recording), or the upload gone:
        // the object itself says whether it is this one.
        Err(Failed::Retry(_) | Failed::Lost) if is_ours(client, spooled, size).await => {}
        Err(other) => return Err(other),
    }
    spooled.completed = true;
    save(entry, spooled)?;
    retain(client, settings, spooled).await.map(|()| true)
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

/// Whether the object at the recording's key is this recording: this bastion's, this
/// session's, this size.
async fn is_ours(client: &aws_sdk_s3::Client, spooled: &Spooled, size: u64) -> bool {
    let Ok(head) = client
        .head_object()
        .bucket(&spooled.bucket)
        .key(&spooled.key)
        .send()
        .await
    else {
        return false;
    };
    let meta = head.metadata();
    let said = |k: &str| meta.and_then(|m| m.get(k)).map(String::as_str);
    head.content_length() == Some(size as i64)
        && said(META_SESSION) == Some(spooled.session_id.as_str())
        && said(META_HOST) == Some(spooled.host.as_str())
}

/// The object's metadata naming the session and the bastion that recorded it.
const META_SESSION: &str = "rolesh-session-id";
const META_HOST: &str = "rolesh-bastion";

fn save(entry: &Entry, spooled: &Spooled) -> Result<(), Failed> {
    entry
        .save(spooled)
        .map_err(|e| Failed::Retry(format!("cannot write the spool entry: {e}")))
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
        .metadata(META_SESSION, &spooled.session_id)
        .metadata(META_HOST, &spooled.host);
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
        (Some("NoSuchUpload"), _) => Failed::Lost,
        (Some("PreconditionFailed"), _) | (_, Some(412)) => Failed::Refused(format!(
            "{why} (an object is already at this key; it is not replaced)"
        )),
        (Some("NoSuchBucket" | "AccessDenied" | "InvalidRequest" | "InvalidArgument"), _)
        | (_, Some(403)) => Failed::Refused(why),
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
