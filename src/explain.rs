//! `rolesh explain USER`: the mapping decision, step by step, as text or JSON.

use serde_json::{Value, json};

use crate::config::{Config, ConfigSource, SessionSettings, values};
use crate::error::{EXIT_DENIED, EXIT_OK, EXIT_USAGE, Failure};
use crate::mapping::{self, Decision, DenialKind, Grant};
use crate::system;

pub fn run(source: &ConfigSource, user: &str, as_json: bool) -> Result<u8, Failure> {
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
    let decision = mapping::decide(&loaded.config, &account, &system::hostname());
    if as_json {
        println!("{:#}", to_json(&decision));
    } else {
        print!("{}", to_text(&decision));
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

fn to_text(d: &Decision) -> String {
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
        Ok(g) => out.push_str(&grant_text(g)),
    }
    out
}

fn grant_text(g: &Grant) -> String {
    let tags: Vec<String> = g.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = format!(
        "rule:            {} ({})\nrole:            {}\nsession name:    {}\nsource identity: {}\ntags:            {}\n",
        g.rule,
        g.origin,
        g.role_arn,
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
        out.push_str(&format!("  {} ({}){default_ns}\n", c.name, c.region));
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
        "session:         mode {}, shell {}, record {}, idle {}, max {}{}\n",
        s.mode.as_str(),
        s.shell,
        s.record.as_str(),
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

fn to_json(d: &Decision) -> Value {
    let a = &d.account;
    let mut v = json!({
        "user": a.name,
        "uid": a.uid,
        "groups": a.groups,
        "trace": d.trace,
    });
    match &d.outcome {
        Err(denial) => {
            v["outcome"] = json!("denied");
            v["reason"] = json!(denial.reason);
        }
        Ok(g) => {
            v["outcome"] = json!("mapped");
            v["rule"] = json!(g.rule);
            v["origin"] = json!(g.origin);
            v["role_arn"] = json!(g.role_arn);
            v["session_name"] = json!(g.session_name);
            v["source_identity"] = json!(g.source_identity);
            v["tags"] = g
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            v["clusters"] = g
                .clusters
                .iter()
                .map(|c| {
                    json!({
                        "name": c.name,
                        "region": c.region,
                        "default_namespace": c.default_namespace,
                        "namespaces": c.namespaces.iter().map(|n| json!({
                            "name": n.name,
                            "selectors": n.selectors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            v["session"] = session_json(&g.session);
            v["session_override"] = json!(g.session_override);
        }
    }
    v
}

fn session_json(s: &SessionSettings) -> Value {
    json!({
        "mode": s.mode.as_str(),
        "shell": s.shell,
        "path": s.path,
        "allowed_commands": s.allowed_commands,
        "file_transfer": s.file_transfer,
        "idle_timeout_secs": s.idle_timeout.as_secs(),
        "max_duration_secs": s.max_duration.as_secs(),
        "banner": s.banner,
        "record": s.record.as_str(),
        "exec_command": s.exec_command,
    })
}
