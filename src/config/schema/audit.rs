//! `[audit]`: where the audit trail and the recordings go.

use std::path::PathBuf;

use super::super::tree::Node;
use super::super::{ApiAudit, AuditSettings};
use super::read::Reader;

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
        audit
    }
}
