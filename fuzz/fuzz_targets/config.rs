//! Arbitrary text → `Config::from_text`, which must never panic (its contract). When the
//! text is a valid configuration, everything `rolesh explain` and `rolesh check` print from
//! it is rendered too (mapping decisions for users the config names, selectors, templates,
//! durations, errors), and selectors must survive their Display round trip.
#![no_main]

use std::fmt::Write as _;

use libfuzzer_sys::fuzz_target;
use rolesh::config::{Config, Selector, Vars};
use rolesh::mapping;
use rolesh::mapping::Account;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_text("/etc/rolesh/config.toml", text) {
        Ok(config) => render(&config),
        Err(errors) => {
            // `rolesh check` prints these; every one names a place.
            let shown = errors.to_string();
            assert!(!errors.0.is_empty(), "Err with no diagnostic");
            assert!(!shown.is_empty());
        }
    }
});

fn account(name: &str, groups: &[&str]) -> Account {
    Account {
        name: name.to_string(),
        uid: 1001,
        gid: 1001,
        home: format!("/home/{name}"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn render(config: &Config) {
    let mut out = String::new();
    let _ = write!(out, "{config:?}");

    // The users `explain` would be asked about: each named user, a member of each group,
    // someone in no rule, and root.
    let mut accounts = vec![account("nobody-in-particular", &["users"]), account("root", &["root"])];
    for rule in config.mapping.users.iter().take(8) {
        accounts.push(account(&rule.user, &[rule.user.as_str()]));
    }
    for rule in config.mapping.groups.iter().take(8) {
        accounts.push(account("member", &["member", rule.group.as_str()]));
    }
    for o in config.overrides.iter().take(4) {
        for u in o.users.iter().take(2) {
            accounts.push(account(u, &[]));
        }
        let groups: Vec<&str> = o.groups.iter().take(4).map(String::as_str).collect();
        accounts.push(account("overridden", &groups));
    }
    for c in config.clusters.iter().take(4) {
        if let Some(groups) = &c.groups {
            let groups: Vec<&str> = groups.iter().take(4).map(String::as_str).collect();
            accounts.push(account("viewer", &groups));
        }
    }

    for a in &accounts {
        let d = mapping::decide(config, a, "bastion-1.example.internal");
        for step in &d.trace {
            let _ = writeln!(out, "{step}");
        }
        match &d.outcome {
            Err(denial) => {
                let _ = writeln!(out, "denied ({:?}): {}", denial.kind, denial.reason);
            }
            Ok(g) => {
                let _ = writeln!(
                    out,
                    "{} ({}) {} {} {}",
                    g.rule, g.origin, g.role_arn, g.session_name, g.source_identity
                );
                for (k, v) in &g.tags {
                    let _ = writeln!(out, "{k}={v}");
                }
                for c in &g.clusters {
                    let _ = writeln!(out, "{} ({}) {:?}", c.name, c.region, c.default_namespace);
                    for ns in &c.namespaces {
                        let selectors: Vec<String> = ns.selectors.iter().map(ToString::to_string).collect();
                        let _ = writeln!(out, "  {}: {}", ns.name, selectors.join("  OR  "));
                    }
                }
                let s = &g.session;
                let _ = writeln!(
                    out,
                    "mode {}, shell {}, record {}, idle {:?}, max {:?} {:?} {}",
                    s.mode.as_str(),
                    s.shell,
                    s.record.as_str(),
                    s.idle_timeout,
                    s.max_duration,
                    g.session_override,
                    s.allowed_commands.join(" ")
                );
            }
        }
    }

    // Templates render with any variable values, and print back as written.
    let vars = Vars {
        user: "alice",
        uid: u32::MAX,
        hostname: "",
    };
    let aws = &config.aws;
    for t in [&aws.session_name, &aws.source_identity]
        .into_iter()
        .chain(aws.tags.iter().map(|(_, t)| t))
        .chain(config.mapping.users.iter().map(|r| &r.rule.role))
        .chain(config.mapping.groups.iter().map(|r| &r.rule.role))
        .chain(config.mapping.default_role.iter().map(|r| &r.role))
    {
        let _ = t.render(&vars);
        let _ = t.literal_text();
        assert_eq!(t.to_string(), t.as_str());
    }

    // Every selector a valid config holds prints as text that parses back to itself.
    for c in &config.clusters {
        for ns in &c.namespaces {
            for s in &ns.selectors {
                let shown = s.to_string();
                let back = Selector::parse(&shown)
                    .unwrap_or_else(|e| panic!("selector {s:?} displays as {shown:?}, which does not parse: {e}"));
                assert_eq!(&back, s, "selector display round trip via {shown:?}");
            }
        }
    }
    std::hint::black_box(out);
}
