//! `[audit]`: where the audit trail and the recordings go, and how much one user may
//! make the broker write there.

use std::path::PathBuf;

use super::super::tree::Node;
use super::super::{ApiAudit, AuditSettings, values};
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
        audit
    }
}

fn exempt_groups(f: &Fields<'_>) -> Option<Vec<String>> {
    let groups = f.strings("exempt_groups")?;
    for g in &groups {
        f.reader().checked(&g.loc, values::account_name("group", g));
    }
    Some(groups.into_iter().map(|g| g.value).collect())
}
