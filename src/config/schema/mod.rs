//! The configuration's schema: each section of the merged TOML tree read into its typed
//! settings (`aws.rs`, `mapping.rs`, `cluster.rs`, `session.rs`, `broker.rs`,
//! `audit.rs`) by one [`read::Reader`], which reports every problem at its position.

mod audit;
mod aws;
mod broker;
mod cluster;
mod discovery;
mod mapping;
mod read;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Config;
use super::diag::{ConfigErrors, Loc, SourceFile};
use super::tree::Table;
use read::{Fields, Reader};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

pub(super) fn build(
    root: &Table,
    sources: &[Arc<SourceFile>],
    files: Vec<PathBuf>,
) -> Result<Config, ConfigErrors> {
    let Some(first) = sources.first() else {
        return Err(ConfigErrors(vec![]));
    };
    let start = Loc {
        file: Arc::clone(first),
        span: 0..0,
    };
    let reader = Reader::default();
    if root.entries.is_empty() {
        reader.error(
            &start,
            "the configuration is empty: set at least [aws] region and a [mapping] (see /usr/share/doc/rolesh/examples)",
        );
        return Err(ConfigErrors::sorted(reader.into_errors()));
    }
    let built = read_sections(&reader, root, start, files);
    match built {
        Some(config) if !reader.has_errors() => Ok(config),
        _ => Err(ConfigErrors::sorted(reader.into_errors())),
    }
}

/// Every section, each read even when an earlier one failed (all errors at once).
fn read_sections(reader: &Reader, root: &Table, start: Loc, files: Vec<PathBuf>) -> Option<Config> {
    let top = Fields::root(reader, root, start);
    let aws = top.required_table("aws").and_then(|t| reader.aws(t));
    let mapping = top
        .required_table("mapping")
        .and_then(|t| reader.mapping(t));
    let clusters = reader.clusters(top.get("cluster"), aws.as_ref());
    let discovery = reader.discovery(top.get("discovery"), aws.as_ref());
    let (session, overrides) = reader.session_section(top.get("session"));
    let broker = reader.broker(top.get("broker"), aws.as_ref());
    let audit = reader.audit(top.get("audit"));
    drop(top);
    Some(Config {
        aws: aws?,
        mapping: mapping?,
        clusters,
        discovery,
        session,
        overrides,
        broker,
        audit,
        files,
    })
}
