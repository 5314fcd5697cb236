//! `[audit]`: where the audit trail and the recordings go, and how much one user may
//! make the broker write there.

use std::path::PathBuf;

use super::super::tree::Node;
use super::super::{
    ApiAudit, AuditSettings, KeepLocal, ObjectLock, ObjectLockMode, S3Settings, StorageClass,
    values,
};
use super::read::{Fields, Reader};

/// The smallest and largest `recording_quota`.
const QUOTA_RANGE: (u64, u64) = (1 << 10, 1 << 50);

impl Reader {
    pub(super) fn audit(&self, node: Option<&Node>) -> AuditSettings {
        let mut audit = AuditSettings::default();
        let Some(f) = node.and_then(|n| self.table(n, "audit")) else {
            return audit;
        };
        if let Some(api) = f.word("api", ApiAudit::parse, ApiAudit::choices) {
            audit.api = api;
        }
        if let Some(j) = f.bool("journald") {
            audit.journald = j;
        }
        if let Some(p) = f.absolute_path("file") {
            audit.file = Some(PathBuf::from(&p.value));
        }
        if let Some(p) = f.absolute_path("recordings_dir") {
            audit.recordings_dir = PathBuf::from(&p.value);
        }
        if let Some(q) = f.string("recording_quota") {
            let (min, max) = QUOTA_RANGE;
            if let Some(bytes) = self.checked(&q.loc, values::byte_size(&q, min, max)) {
                audit.recording_quota = bytes;
            }
        }
        if let Some(m) = f.string("min_free")
            && let Some(min_free) = self.checked(&m.loc, values::min_free(&m))
        {
            audit.min_free = min_free;
        }
        if let Some(groups) = exempt_groups(&f) {
            audit.exempt_groups = groups;
        }
        if let Some(n) = f.integer("event_rate_per_uid", 1, 10_000) {
            audit.event_rate_per_uid = n as u32;
        }
        audit.s3 = f.get("s3").and_then(|n| self.s3(n));
        audit
    }

    /// `[audit.s3]`.
    fn s3(&self, node: &Node) -> Option<S3Settings> {
        let f = self.table(node, "audit.s3")?;
        let bucket = f
            .required_string("bucket")
            .filter(|b| self.checked(&b.loc, bucket_name(b)).is_some());
        let region = f
            .required_string("region")
            .filter(|r| self.checked(&r.loc, values::region(r)).is_some());
        let prefix = match f.string("prefix") {
            Some(p) => self.checked(&p.loc, key_prefix(&p)).map(|()| p.value),
            None => Some("{hostname}/".to_string()),
        };
        let endpoint = f
            .string("endpoint")
            .filter(|e| self.checked(&e.loc, values::endpoint_url(e)).is_some());
        let object_lock = self.object_lock(&f);
        let kms_key_id = f.string("kms_key_id");
        if let Some(k) = &kms_key_id {
            self.checked(&k.loc, kms_key_arn(k));
        }
        let storage_class = f.word("storage_class", StorageClass::parse, StorageClass::choices);
        let keep_local = f
            .word("keep_local", KeepLocal::parse, KeepLocal::choices)
            .unwrap_or(KeepLocal::UntilUploaded);
        Some(S3Settings {
            bucket: bucket?.value,
            region: region?.value,
            prefix: prefix?,
            endpoint: endpoint.map(|e| e.value.trim_end_matches('/').to_string()),
            object_lock: object_lock?,
            kms_key_id: kms_key_id.map(|k| k.value),
            storage_class,
            keep_local,
            origin: node.loc.to_string(),
        })
    }

    /// `object_lock_days` and `object_lock_mode` (GOVERNANCE unless said): both or neither.
    fn object_lock(&self, f: &Fields<'_>) -> Option<Option<ObjectLock>> {
        let days = f.integer("object_lock_days", 1, 36_500);
        let mode = f.word(
            "object_lock_mode",
            ObjectLockMode::parse,
            ObjectLockMode::choices,
        );
        match (days, mode) {
            (Some(days), mode) => Some(Some(ObjectLock {
                days: days as u32,
                mode: mode.unwrap_or(ObjectLockMode::Governance),
            })),
            (None, Some(_)) if f.get("object_lock_days").is_none() => {
                let at = &f.get("object_lock_mode").expect("present").loc;
                self.error(at, "`object_lock_mode` needs `object_lock_days`: how long each recording is kept locked");
                None
            }
            (None, _) if f.get("object_lock_days").is_some() => None,
            (None, _) => Some(None),
        }
    }
}

/// `kms_key_id`: a key's ARN, which the IAM policy `rolesh rbac` writes can name (an id or
/// an alias would be a resource IAM does not know the key by).
fn kms_key_arn(arn: &str) -> Result<(), String> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = fields.len() == 6
        && fields[0] == "arn"
        && fields[2] == "kms"
        && !fields[3].is_empty()
        && fields[4].len() == 12
        && fields[4].bytes().all(|b| b.is_ascii_digit())
        && fields[5].strip_prefix("key/").is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    match ok {
        true => Ok(()),
        false => Err(format!(
            "`kms_key_id` must be a KMS key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not {arn:?}: the bastion's IAM policy names the key by it"
        )),
    }
}

/// An S3 bucket name: 3-63 lowercase letters, digits, `.` and `-`, a letter or digit at
/// each end.
fn bucket_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&b.len())
        && edge(b.first())
        && edge(b.last())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && !name.contains("..");
    match ok {
        true => Ok(()),
        false => Err(format!(
            "invalid bucket name {name:?}: S3 bucket names are 3-63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit"
        )),
    }
}

/// A key prefix: the characters S3 keeps as they are, and `{hostname}`; not starting
/// with `/`.
fn key_prefix(prefix: &str) -> Result<(), String> {
    let literal = prefix.replace("{hostname}", "");
    if let Some(c) = literal
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()/".contains(*c)))
    {
        return Err(format!(
            "`prefix` {prefix:?} has {c:?}: use letters, digits, `!-_.*'()/` and `{{hostname}}`"
        ));
    }
    if prefix.starts_with('/') || prefix.contains("//") {
        return Err(format!(
            "`prefix` {prefix:?} must not start with `/` or hold `//`"
        ));
    }
    Ok(())
}

fn exempt_groups(f: &Fields<'_>) -> Option<Vec<String>> {
    let groups = f.strings("exempt_groups")?;
    for g in &groups {
        f.reader().checked(&g.loc, values::account_name("group", g));
    }
    Some(groups.into_iter().map(|g| g.value).collect())
}
