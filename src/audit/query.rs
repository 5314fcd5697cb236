//! `rolesh audit [--user U] [--since T] [--json] [--file PATH]`: who assumed which role,
//! when, and which pods they entered, read back from journald (or from the JSON Lines
//! file).
//!
//! journald takes entries from anyone (`logger --journald`, `systemd-cat`), so entries
//! are believed by who wrote them, as journald's trusted `_UID` says: the broker's user
//! or root for every event; a user's own uid only for that user's own session events
//! (shown as self-reported: the broker was unreachable). Everything else is left out and
//! counted.
//!
//! A self-reported entry is about the user journald says wrote it, whatever its
//! `ROLESH_USER` claims: its user is the `_UID`'s account, and a `ROLESH_USER` that names
//! someone else is kept as `claimed_user` and shown as `[self-reported, claims NAME]`, so
//! `--user victim` never lists what another user wrote about victim.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::error::{EXIT_OK, Failure};
use crate::protocol::SessionEventKind;

pub(crate) struct Query {
    pub user: Option<String>,
    pub since: Option<String>,
    pub json: bool,
    pub file: Option<std::path::PathBuf>,
    /// The broker's user (default [`BROKER_USER`]).
    pub broker_user: String,
    /// One line per recording (its `recording` events merged) instead of every event.
    pub recordings: bool,
}

/// The system user the broker runs as (packaging/systemd/rolesh.sysusers).
pub(crate) const BROKER_USER: &str = "rolesh";

pub(crate) fn run(query: &Query) -> Result<u8, Failure> {
    let (records, ignored) = match &query.file {
        Some(path) => (from_file(path, query)?, 0),
        None => from_journal(query)?,
    };
    let records = match query.recordings {
        true => recordings(records),
        false => records,
    };
    for r in &records {
        if query.json {
            println!("{}", super::escape::json(&Value::Object(r.clone())));
        } else {
            println!("{}", table_row(r));
        }
    }
    if ignored > 0 {
        eprintln!(
            "rolesh: {ignored} journal entries claiming to be rolesh audit events were left out: not written by the broker"
        );
    }
    Ok(EXIT_OK)
}

fn from_journal(query: &Query) -> Result<(Vec<Map<String, Value>>, usize), Failure> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["-o", "json", "--no-pager", "-t", super::IDENTIFIER]);
    if let Some(since) = &query.since {
        cmd.args(["--since", since]);
    }
    // No `ROLESH_USER=` match: who an entry is about is decided below, from `_UID` for
    // self-reported entries, and only then filtered by `--user`.
    let out = cmd
        .output()
        .map_err(|e| Failure::runtime(format!("cannot run journalctl: {e}")))?;
    if !out.status.success() {
        return Err(Failure::runtime(format!(
            "journalctl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let trusted = trusted_uids(&query.broker_user);
    let mut names = AccountNames::default();
    let mut records = Vec::new();
    let mut ignored = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(Value::Object(entry)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(source) = believe(&entry, &trusted) else {
            ignored += 1;
            continue;
        };
        let record = normalize(&entry, source, &mut names);
        if query.user.as_deref().is_none_or(|u| is_about(&record, u)) {
            records.push(record);
        }
    }
    Ok((records, ignored))
}

/// Whether a normalized record is about `user` (its `user`, never a claim).
fn is_about(record: &Map<String, Value>, user: &str) -> bool {
    record.get("user").and_then(Value::as_str) == Some(user)
}

/// uid → account name, looked up once per uid.
#[derive(Default)]
struct AccountNames(HashMap<u32, String>);

impl AccountNames {
    /// The account's name, or `uid N` for a uid with no account (a deleted user).
    fn of(&mut self, uid: u32) -> String {
        self.0
            .entry(uid)
            .or_insert_with(|| match crate::system::account_by_uid(uid) {
                Ok(Some(a)) => a.name,
                _ => format!("uid {uid}"),
            })
            .clone()
    }
}

/// Root and the broker's user.
pub(crate) fn trusted_uids(broker_user: &str) -> Vec<u32> {
    let mut uids = vec![0];
    if let Ok(Some(a)) = crate::system::account_by_name(broker_user) {
        uids.push(a.uid);
    }
    uids
}

/// Who vouches for an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Written by the broker's user or root: believed as it stands.
    Broker,
    /// A session event written by the user `uid` itself (journald's `_UID`): about that
    /// user only, whatever it claims.
    SelfReported { uid: u32 },
}

/// Who vouches for an entry, or nobody (`None`).
pub(crate) fn believe(entry: &Map<String, Value>, trusted: &[u32]) -> Option<Source> {
    let writer: u32 = entry.get("_UID")?.as_str()?.parse().ok()?;
    if trusted.contains(&writer) {
        return Some(Source::Broker);
    }
    let event = entry.get("ROLESH_EVENT")?.as_str()?;
    let claimed_uid = entry.get("ROLESH_UID")?.as_str()?;
    (SessionEventKind::parse(event).is_some() && claimed_uid == writer.to_string())
        .then_some(Source::SelfReported { uid: writer })
}

/// `ROLESH_FOO` → `foo`, plus `ts` and `source`; a self-reported entry's `user` and `uid`
/// are its writer's (journald's `_UID`), and a different `ROLESH_USER` is `claimed_user`.
fn normalize(
    entry: &Map<String, Value>,
    source: Source,
    names: &mut AccountNames,
) -> Map<String, Value> {
    let mut r = Map::new();
    let micros = entry
        .get("__REALTIME_TIMESTAMP")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(0);
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
    r.insert("ts".into(), super::rfc3339_millis(at).into());
    for (key, value) in entry {
        if let Some(name) = key.strip_prefix("ROLESH_") {
            r.insert(name.to_ascii_lowercase(), value.clone());
        }
    }
    match source {
        Source::Broker => {
            r.insert("source".into(), "broker".into());
        }
        Source::SelfReported { uid } => {
            let writer = names.of(uid);
            let claimed = r.remove("user");
            if let Some(claimed) = claimed.filter(|c| c.as_str() != Some(writer.as_str())) {
                r.insert("claimed_user".into(), claimed);
            }
            r.insert("user".into(), writer.into());
            r.insert("uid".into(), uid.to_string().into());
            r.insert("source".into(), "self-reported".into());
        }
    }
    r
}

fn from_file(path: &Path, query: &Query) -> Result<Vec<Map<String, Value>>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display())))?;
    let since = match &query.since {
        Some(s) => Some(parse_time(s).ok_or_else(|| {
            Failure::usage(format!(
                "--since {s:?}: with --file, give a time like 2026-01-31T08:00:00Z"
            ))
        })?),
        None => None,
    };
    let mut records = Vec::new();
    for line in text.lines() {
        let Ok(Value::Object(r)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let at = r.get("ts").and_then(Value::as_str).and_then(parse_time);
        if since.is_some_and(|s| at.is_none_or(|a| a < s)) {
            continue;
        }
        if query
            .user
            .as_deref()
            .is_some_and(|u| r.get("user").and_then(Value::as_str) != Some(u))
        {
            continue;
        }
        records.push(r);
    }
    Ok(records)
}

/// An RFC 3339 time (`2026-01-31T08:00:00Z`); without an offset it is UTC.
fn parse_time(text: &str) -> Option<jiff::Timestamp> {
    text.parse::<jiff::Timestamp>().ok().or_else(|| {
        let civil: jiff::civil::DateTime = text.parse().ok()?;
        civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    })
}

/// The `recording` events (from the broker alone: a session cannot report them), one
/// per session: when it started, and where the recording is now (its S3 object once
/// uploaded; else the bastion's file, with the upload's last state).
fn recordings(records: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let mut merged: Vec<Map<String, Value>> = Vec::new();
    // A session id is the user's to choose: a recording is its user's and its id's.
    let mut index: HashMap<(Option<Value>, Option<Value>), usize> = HashMap::new();
    for r in records.into_iter().filter(|r| {
        r.get("event").and_then(Value::as_str) == Some("recording")
            && r.get("source").and_then(Value::as_str) != Some("self-reported")
    }) {
        let key = (r.get("user").cloned(), r.get("session_id").cloned());
        match index.get(&key) {
            Some(&i) => {
                for (k, v) in r.into_iter().filter(|(k, _)| k != "ts") {
                    merged[i].insert(k, v);
                }
            }
            None => {
                index.insert(key, merged.len());
                merged.push(r);
            }
        }
    }
    merged
}

/// `TIME  USER  EVENT  WHAT`, where WHAT is what matters for the event.
pub(crate) fn table_row(r: &Map<String, Value>) -> String {
    let s = |k: &str| match r.get(k) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let event = s("event");
    let target = [s("cluster"), s("namespace"), s("pod"), s("container")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    let what = match event.as_str() {
        "assume_role" => s("role_arn"),
        "token" => format!("{} {}", s("cluster"), s("role_arn")),
        "exec" => format!("{target} {} (exit {})", s("command"), s("exit_code")),
        "command" => format!("{} (exit {})", s("command"), s("exit_code")),
        "denied" | "error" => s("reason"),
        "recording" => match s("upload").as_str() {
            "uploaded" => format!("{} {}", s("session_id"), s("location")),
            "" => format!("{} {}", s("session_id"), s("path")),
            state => format!(
                "{} {} (S3 {state}{}: {})",
                s("session_id"),
                s("path"),
                match s("reason").as_str() {
                    "" => String::new(),
                    why => format!(", {why}"),
                },
                s("location")
            ),
        },
        _ => [s("role_arn"), target].join(" "),
    };
    let mut row = format!(
        "{:<24} {:<12} {:<11} {}",
        s("ts"),
        s("user"),
        event,
        what.trim()
    );
    if r.get("source").and_then(Value::as_str) == Some("self-reported") {
        match r.get("claimed_user") {
            Some(_) => row.push_str(&format!(" [self-reported, claims {}]", s("claimed_user"))),
            None => row.push_str(" [self-reported]"),
        }
    }
    printable(&row)
}

/// Control characters (a user's command could carry terminal escapes) shown as `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(uid: &str, event: &str, claimed: &str) -> Map<String, Value> {
        let v = json!({"_UID": uid, "ROLESH_EVENT": event, "ROLESH_UID": claimed});
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_the_broker_vouches_for_access_events() {
        let trusted = [0, 990];
        assert_eq!(
            believe(&entry("990", "token", "1001"), &trusted),
            Some(Source::Broker)
        );
        assert_eq!(believe(&entry("1001", "token", "1001"), &trusted), None);
        assert_eq!(believe(&entry("1001", "login", "1002"), &trusted), None);
        assert_eq!(
            believe(&entry("1001", "login", "1001"), &trusted),
            Some(Source::SelfReported { uid: 1001 })
        );
    }

    #[test]
    fn a_self_reported_entry_is_its_writers_whatever_it_claims() {
        let mut e = entry("4000000001", "exec", "4000000001");
        e.insert("ROLESH_USER".into(), "victim".into());
        let mut names = AccountNames::default();
        names.0.insert(4000000001, "mallory".into());
        let r = normalize(&e, Source::SelfReported { uid: 4000000001 }, &mut names);
        assert_eq!(r["user"], "mallory");
        assert_eq!(r["claimed_user"], "victim");
        assert!(is_about(&r, "mallory") && !is_about(&r, "victim"));
        assert!(table_row(&r).ends_with(" [self-reported, claims victim]"));
        // A truthful entry carries no claim.
        e.insert("ROLESH_USER".into(), "mallory".into());
        let r = normalize(&e, Source::SelfReported { uid: 4000000001 }, &mut names);
        assert!(r.get("claimed_user").is_none());
        assert!(table_row(&r).ends_with(" [self-reported]"));
    }

    #[test]
    fn times_with_and_without_an_offset() {
        let utc = parse_time("2026-01-31T08:00:00Z").unwrap();
        assert_eq!(parse_time("2026-01-31T08:00:00").unwrap(), utc);
        assert_eq!(parse_time("2026-01-31T09:00:00+01:00").unwrap(), utc);
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn rows_show_what_matters_and_no_escapes() {
        let r = json!({"ts": "t", "user": "alice", "event": "exec", "cluster": "prod",
            "namespace": "web", "pod": "p", "command": "sh\u{1b}[2J", "exit_code": 0});
        let row = table_row(r.as_object().unwrap());
        assert!(row.contains("prod/web/p sh?[2J (exit 0)"), "{row}");
    }
}
