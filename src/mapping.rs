//! Unix user → IAM role, with the precedence of SPEC §5: `deny_users` > `users` >
//! `groups` (file order) > `default_role` > deny. The decision keeps a trace of every rule
//! it looked at, which `rolesh explain` prints and the broker logs on denial.

use crate::config::{ClusterSettings, Config, RoleRule, SessionSettings, Vars, values};
pub use crate::protocol::{ClusterView, Grant};
pub use crate::system::Account;

/// What the mapping decided for one account, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub account: Account,
    pub trace: Vec<String>,
    pub outcome: Result<Grant, Denial>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    /// Listed in `deny_users`.
    Denied,
    /// No rule maps the user.
    Unmapped,
    /// A rule matched but renders to something STS would reject (e.g. a session name
    /// with a space): a configuration problem for this user.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct Denial {
    pub kind: DenialKind,
    pub reason: String,
}

/// Decides the role of `account` under `config`.
pub fn decide(config: &Config, account: &Account, hostname: &str) -> Decision {
    let mut trace = Vec::new();
    let outcome = match_rule(config, account, &mut trace)
        .and_then(|(rule, role)| grant(config, account, hostname, rule, role, &mut trace));
    Decision {
        account: account.clone(),
        trace,
        outcome,
    }
}

/// The Kubernetes group `rolesh rbac` binds for the users of the rule named `rule`
/// (`mapping.users.alice` → `rolesh:user-alice`, `mapping.groups[group=sre]` →
/// `rolesh:sre`, `mapping.default_role` → `rolesh:default`).
pub fn kube_group(rule: &str) -> Option<String> {
    if let Some(user) = rule.strip_prefix("mapping.users.") {
        return Some(format!("rolesh:user-{user}"));
    }
    if let Some(group) = rule
        .strip_prefix("mapping.groups[group=")
        .and_then(|g| g.strip_suffix(']'))
    {
        return Some(format!("rolesh:{group}"));
    }
    (rule == "mapping.default_role").then(|| "rolesh:default".to_string())
}

fn match_rule<'c>(
    config: &'c Config,
    account: &Account,
    trace: &mut Vec<String>,
) -> Result<(String, &'c RoleRule), Denial> {
    let m = &config.mapping;
    let name = &account.name;
    if m.deny_users.iter().any(|u| u == name) {
        trace.push(format!("deny_users: {name} is listed: denied"));
        return Err(Denial {
            kind: DenialKind::Denied,
            reason: format!("user {name} is in [mapping] deny_users"),
        });
    }
    trace.push(format!("deny_users: {name} is not listed"));
    if let Some(rule) = m.users.iter().find(|r| &r.user == name) {
        trace.push(format!("users: {name} is listed ({})", rule.rule.origin));
        return Ok((format!("mapping.users.{name}"), &rule.rule));
    }
    trace.push(format!("users: {name} is not listed"));
    let groups = account.groups.join(", ");
    if let Some(rule) = m.groups.iter().find(|r| account.groups.contains(&r.group)) {
        trace.push(format!(
            "groups: {name} is in group {} ({})",
            rule.group, rule.rule.origin
        ));
        return Ok((format!("mapping.groups[group={}]", rule.group), &rule.rule));
    }
    trace.push(format!(
        "groups: no [[mapping.groups]] rule names any of {name}'s groups ({groups})"
    ));
    if let Some(rule) = &m.default_role {
        trace.push(format!("default_role applies ({})", rule.origin));
        return Ok(("mapping.default_role".into(), rule));
    }
    trace.push("default_role: not set: denied".into());
    Err(Denial {
        kind: DenialKind::Unmapped,
        reason: format!(
            "user {name} is not mapped to any role (no users, groups or default_role rule matches)"
        ),
    })
}

fn grant(
    config: &Config,
    account: &Account,
    hostname: &str,
    rule: String,
    role: &RoleRule,
    trace: &mut Vec<String>,
) -> Result<Grant, Denial> {
    let vars = Vars {
        user: &account.name,
        uid: account.uid,
        hostname,
    };
    let invalid = |reason: String| Denial {
        kind: DenialKind::Invalid,
        reason: format!("user {}: {reason}", account.name),
    };
    let session_name = config.aws.session_name.render(&vars);
    values::sts_name("session name", &session_name).map_err(invalid)?;
    let source_identity = config.aws.source_identity.render(&vars);
    values::sts_name("source identity", &source_identity).map_err(invalid)?;
    let role_arn = role.role.render(&vars);
    values::role_arn(&role_arn).map_err(invalid)?;
    let tags = render_tags(config, &vars).map_err(invalid)?;
    let (session, session_override) = session_for(config, account);
    if let Some(origin) = &session_override {
        trace.push(format!("session: override applies ({origin})"));
    }
    Ok(Grant {
        rule,
        origin: role.origin.clone(),
        role_arn,
        access: role.access,
        namespaces: role.namespaces.clone(),
        session_name,
        source_identity,
        tags,
        clusters: visible_clusters(&config.clusters, account),
        session,
        session_override,
    })
}

fn render_tags(config: &Config, vars: &Vars<'_>) -> Result<Vec<(String, String)>, String> {
    config
        .aws
        .tags
        .iter()
        .map(|(key, template)| {
            let value = template.render(vars);
            if value.chars().count() > 256 || !value.chars().all(values::is_tag_char) {
                return Err(format!(
                    "session tag {key} renders to {value:?}, which STS rejects (at most 256 letters, digits, spaces and _.:/=+-@)"
                ));
            }
            Ok((key.clone(), value))
        })
        .collect()
}

/// `[session]` with one `[[session.override]]` laid over it: the first that names the
/// user, else the first that names one of the user's groups. A user's own override wins
/// over a group's wherever it is written, so a per-user drop-in in `config.d` is not
/// shadowed by a group override in `config.toml`.
pub fn session_for(config: &Config, account: &Account) -> (SessionSettings, Option<String>) {
    let mut settings = config.session.clone();
    let by_user = config
        .overrides
        .iter()
        .find(|o| o.users.contains(&account.name));
    let hit = by_user.or_else(|| {
        config
            .overrides
            .iter()
            .find(|o| o.groups.iter().any(|g| account.groups.contains(g)))
    });
    if let Some(o) = hit {
        o.patch.apply(&mut settings);
    }
    (settings, hit.map(|o| o.origin.clone()))
}

fn visible_clusters(clusters: &[ClusterSettings], account: &Account) -> Vec<ClusterView> {
    clusters
        .iter()
        .filter(|c| match &c.groups {
            None => true,
            Some(groups) => groups.iter().any(|g| account.groups.contains(g)),
        })
        .map(|c| ClusterView {
            name: c.name.clone(),
            region: c.region.clone(),
            default_namespace: c.default_namespace.clone(),
            namespaces: c.namespaces.clone(),
            access: c.access,
            discovered: c.discovered.as_ref().map(|d| {
                format!(
                    "in {} by [[discovery]] #{} ({})",
                    c.region, d.block, c.origin
                )
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_names_the_kubernetes_group_rbac_binds() {
        assert_eq!(
            kube_group("mapping.users.alice").as_deref(),
            Some("rolesh:user-alice")
        );
        assert_eq!(
            kube_group("mapping.groups[group=sre]").as_deref(),
            Some("rolesh:sre")
        );
        assert_eq!(
            kube_group("mapping.default_role").as_deref(),
            Some("rolesh:default")
        );
        assert_eq!(kube_group("mapping.groups[group=sre"), None);
        assert_eq!(kube_group("aws.role"), None);
    }

    fn account(name: &str, groups: &[&str]) -> Account {
        Account {
            name: name.into(),
            uid: 1001,
            gid: 1001,
            home: format!("/home/{name}"),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    const CONFIG: &str = r#"
[aws]
region = "us-east-1"
[aws.tags]
unix_user = "{user}"
[mapping]
deny_users = ["root", "mallory"]
default_role = "arn:aws:iam::123456789012:role/bastion-{user}"
[mapping.users]
alice = "arn:aws:iam::123456789012:role/platform-admin"
mallory = "arn:aws:iam::123456789012:role/never"
[[mapping.groups]]
group = "sre"
role = "arn:aws:iam::123456789012:role/sre"
[[mapping.groups]]
group = "web-devs"
role = "arn:aws:iam::123456789012:role/web"
[[cluster]]
name = "prod"
groups = ["sre"]
[[cluster]]
name = "dev"
[session]
mode = "shell"
[[session.override]]
groups = ["contractors"]
mode = "picker"
"#;

    fn decide_for(name: &str, groups: &[&str]) -> Decision {
        let config = Config::from_text("t.toml", CONFIG).unwrap();
        decide(&config, &account(name, groups), "bastion")
    }

    #[test]
    fn deny_users_wins_over_a_user_rule() {
        let d = decide_for("mallory", &["sre"]);
        assert_eq!(d.outcome.unwrap_err().kind, DenialKind::Denied);
    }

    #[test]
    fn user_rule_wins_over_groups() {
        let g = decide_for("alice", &["alice", "sre"]).outcome.unwrap();
        assert_eq!(g.role_arn, "arn:aws:iam::123456789012:role/platform-admin");
        assert_eq!(g.rule, "mapping.users.alice");
        assert_eq!(g.tags, vec![("unix_user".to_string(), "alice".to_string())]);
    }

    #[test]
    fn first_group_rule_in_file_order_wins() {
        let g = decide_for("bob", &["bob", "web-devs", "sre"])
            .outcome
            .unwrap();
        assert_eq!(g.role_arn, "arn:aws:iam::123456789012:role/sre");
        assert_eq!(
            g.clusters
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["prod", "dev"]
        );
    }

    #[test]
    fn default_role_is_rendered_and_clusters_filtered_by_group() {
        let d = decide_for("carol", &["carol", "contractors"]);
        let g = d.outcome.unwrap();
        assert_eq!(g.role_arn, "arn:aws:iam::123456789012:role/bastion-carol");
        assert_eq!(g.session_name, "carol");
        assert_eq!(g.clusters.len(), 1, "prod is for sre only");
        assert_eq!(g.session.mode, crate::config::Mode::Picker);
        assert!(g.session_override.is_some());
        assert!(
            d.trace
                .iter()
                .any(|t| t.starts_with("default_role applies"))
        );
    }

    #[test]
    fn a_users_own_override_wins_over_an_earlier_group_override() {
        let text =
            format!("{CONFIG}[[session.override]]\nusers = [\"carol\"]\nmode = \"restricted\"\n");
        let config = Config::from_text("t.toml", &text).unwrap();
        let (settings, origin) = session_for(&config, &account("carol", &["contractors"]));
        assert_eq!(settings.mode, crate::config::Mode::Restricted);
        let origin = origin.unwrap();
        assert!(origin.starts_with("t.toml:28:"), "{origin}");
        let (settings, _) = session_for(&config, &account("dave", &["contractors"]));
        assert_eq!(settings.mode, crate::config::Mode::Picker);
    }

    #[test]
    fn without_default_role_unmapped_users_are_denied() {
        let text = CONFIG.replace("default_role =", "# default_role =");
        let config = Config::from_text("t.toml", &text).unwrap();
        let d = decide(&config, &account("dave", &["dave"]), "h");
        let denial = d.outcome.unwrap_err();
        assert_eq!(denial.kind, DenialKind::Unmapped);
        assert!(denial.reason.contains("dave is not mapped"));
    }

    #[test]
    fn a_name_sts_would_reject_is_an_error_naming_the_user() {
        let d = decide_for("bad name", &[]);
        let denial = d.outcome.unwrap_err();
        assert_eq!(denial.kind, DenialKind::Invalid);
        assert!(
            denial.reason.starts_with("user bad name: "),
            "{}",
            denial.reason
        );
        let long = "x".repeat(70);
        let denial = decide_for(&long, &[]).outcome.unwrap_err();
        assert!(
            denial.reason.contains("2-64 characters"),
            "{}",
            denial.reason
        );
    }
}
