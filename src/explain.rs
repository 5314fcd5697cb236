//! `rolesh explain USER`: the mapping decision, step by step, as text or JSON.

use serde::Serialize;

use crate::config::{Config, ConfigSource, values};
use crate::discovery;
use crate::error::{EXIT_DENIED, EXIT_OK, EXIT_USAGE, Failure};
use crate::mapping::{self, Decision, DenialKind, Grant};
use crate::protocol::{DiscoverySeen, Request};
use crate::system;

pub(crate) fn run(source: &ConfigSource, user: &str, as_json: bool) -> Result<u8, Failure> {
    let loaded =
        Config::load(source).map_err(|e| Failure::usage(format!("invalid configuration:\n{e}")))?;
    for w in &loaded.warnings {
        eprintln!("rolesh: {w}");
    }
    let account = system::account_by_name(user)
        .map_err(Failure::runtime)?
        .ok_or_else(|| {
            Failure::denied(format!(
                "no such user: {user} (explain looks users up through NSS)"
            ))
        })?;
    let config = with_discovered(&loaded.config);
    let decision = mapping::decide(&config, &account, &system::hostname());
    if as_json {
        println!("{}", to_json(&decision));
    } else {
        print!("{}", to_text(&decision, &config));
    }
    match &decision.outcome {
        Ok(_) => Ok(EXIT_OK),
        Err(denial) => {
            eprintln!("rolesh: {}", denial.reason);
            Ok(match denial.kind {
                DenialKind::Invalid => EXIT_USAGE,
                DenialKind::Denied | DenialKind::Unmapped => EXIT_DENIED,
            })
        }
    }
}

/// The configuration with the clusters `[[discovery]]` takes from what the broker last saw
/// (asked over its socket: root only). Without an answer, the configured clusters alone,
/// and a note on stderr.
fn with_discovered(config: &Config) -> Config {
    if config.discovery.is_empty() {
        return config.clone();
    }
    let socket = crate::client::socket_path(false);
    match crate::client::call::<DiscoverySeen>(&socket, &Request::Discovered {}) {
        Ok(seen) => discovery::with_discovered(config, &seen.regions).0,
        Err(e) => {
            eprintln!(
                "rolesh: discovered clusters are not shown: the broker did not say what [[discovery]] found: {}",
                e.message
            );
            config.clone()
        }
    }
}

fn to_text(d: &Decision, config: &Config) -> String {
    let a = &d.account;
    let mut out = format!(
        "user:            {} (uid {}; groups {})\n",
        a.name,
        a.uid,
        a.groups.join(", ")
    );
    out.push_str("decision:\n");
    for (i, step) in d.trace.iter().enumerate() {
        out.push_str(&format!("  {}. {step}\n", i + 1));
    }
    match &d.outcome {
        Err(denial) => out.push_str(&format!("result:          denied: {}\n", denial.reason)),
        Ok(g) => out.push_str(&grant_text(g, config)),
    }
    out
}

fn grant_text(g: &Grant, config: &Config) -> String {
    let tags: Vec<String> = g.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = format!(
        "rule:            {} ({})\nrole:            {}\naccess:          {} {}\nsession name:    {}\nsource identity: {}\ntags:            {}\n",
        g.rule,
        g.origin,
        g.role_arn,
        g.access.as_str(),
        match &g.namespaces {
            None => "(cluster-wide)".to_string(),
            Some(ns) => format!("in namespaces {}", ns.join(", ")),
        },
        g.session_name,
        g.source_identity,
        if tags.is_empty() {
            "(none)".into()
        } else {
            tags.join(", ")
        }
    );
    out.push_str("clusters:");
    if g.clusters.is_empty() {
        out.push_str("        (none)");
    }
    out.push('\n');
    for c in &g.clusters {
        let default_ns = c
            .default_namespace
            .as_deref()
            .map(|n| format!(", default namespace {n}"))
            .unwrap_or_default();
        let kubernetes = config
            .cluster(&c.name)
            .is_some_and(|s| s.kind == crate::config::ClusterKind::Kubernetes);
        let line = match kubernetes {
            // Not EKS: the broker's credential, impersonating the user.
            true => format!(
                "  {} (kubernetes, {}, as {} in {}){default_ns}\n",
                c.name,
                c.access.in_words(),
                g.session_name,
                mapping::kube_group(&g.rule).unwrap_or_default()
            ),
            false => format!(
                "  {} ({}, {}){default_ns}\n",
                c.name,
                c.region,
                c.access.in_words()
            ),
        };
        out.push_str(&line);
        if let Some(found) = &c.discovered {
            out.push_str(&format!(
                "    discovered {found}; shown if {} may eks:DescribeCluster it\n",
                g.role_arn
            ));
        }
        if c.namespaces.is_empty() {
            out.push_str("    all namespaces (RBAC decides)\n");
        }
        for ns in &c.namespaces {
            let selectors: Vec<String> = ns.selectors.iter().map(ToString::to_string).collect();
            let pods = if selectors.is_empty() {
                "all pods".to_string()
            } else {
                selectors.join("  OR  ")
            };
            out.push_str(&format!("    {}: {pods}\n", ns.name));
        }
    }
    let s = &g.session;
    out.push_str(&format!(
        "session:         mode {}, shell {}, record {}{}, idle {}, max {}{}\n",
        s.mode.as_str(),
        s.shell,
        s.record.as_str(),
        if s.record_input { " (with input)" } else { "" },
        values::short(s.idle_timeout),
        values::short(s.max_duration),
        g.session_override
            .as_deref()
            .map(|o| format!(" (override at {o})"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "allowed:         {}\n",
        s.allowed_commands.join(" ")
    ));
    out
}

/// `explain --json`: the account, the trace, and the grant's fields (what `whoami` says)
/// or why there is none.
#[derive(Serialize)]
struct Explanation<'a> {
    user: &'a str,
    uid: u32,
    groups: &'a [String],
    trace: &'a [String],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    grant: Option<&'a Grant>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

fn to_json(d: &Decision) -> String {
    let a = &d.account;
    let explanation = Explanation {
        user: &a.name,
        uid: a.uid,
        groups: &a.groups,
        trace: &d.trace,
        grant: d.outcome.as_ref().ok(),
        outcome: if d.outcome.is_ok() {
            "mapped"
        } else {
            "denied"
        },
        reason: d
            .outcome
            .as_ref()
            .err()
            .map(|denial| denial.reason.as_str()),
    };
    serde_json::to_string_pretty(&explanation).unwrap_or_default()
}
