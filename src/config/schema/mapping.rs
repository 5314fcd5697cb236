//! `[mapping]`: who maps to which role, at which Kubernetes access level.

use super::super::diag::At;
use super::super::tree::{Node, Value};
use super::super::{AccessLevel, GroupRule, MappingSettings, RoleRule, UserRule, selector, values};
use super::read::{Fields, Reader};

impl Reader {
    pub(super) fn mapping(&self, node: &Node) -> Option<MappingSettings> {
        let f = self.table(node, "mapping")?;
        let deny_users = f.strings("deny_users").unwrap_or_default();
        for user in &deny_users {
            self.checked(&user.loc, values::account_name("user", user));
        }
        let default_role = self.rule_from_fields(&f, "default_");
        if f.get("default_role").is_none() {
            for key in ["default_access", "default_namespaces"] {
                if let Some(n) = f.get(key) {
                    self.error(&n.loc, format!("`{key}` without a `default_role`"));
                }
            }
        }
        let users = f
            .get("users")
            .map(|n| self.user_rules(n))
            .unwrap_or_default();
        let groups = f
            .get("groups")
            .map(|n| self.group_rules(n))
            .unwrap_or_default();
        Some(MappingSettings {
            deny_users: deny_users.into_iter().map(|u| u.value).collect(),
            users,
            groups,
            default_role,
        })
    }

    fn user_rules(&self, node: &Node) -> Vec<UserRule> {
        let Value::Table(table) = &node.value else {
            self.type_error(node, "mapping.users", "a table of user names to role ARNs");
            return vec![];
        };
        let mut rules = Vec::new();
        for (user, value) in &table.entries {
            self.checked(&user.loc, values::account_name("user", user));
            if let Some(rule) = self.role_rule(value, &format!("mapping.users.{}", user.value)) {
                rules.push(UserRule {
                    user: user.value.clone(),
                    rule,
                });
            }
        }
        rules
    }

    fn group_rules(&self, node: &Node) -> Vec<GroupRule> {
        let mut rules = Vec::new();
        for f in self.tables(node, "mapping.groups") {
            let group = f.required_string("group");
            if let Some(g) = &group {
                self.checked(&g.loc, values::account_name("group", g));
                // Its Kubernetes group is `rolesh:GROUP`: it must not be another rule's.
                if g.value == "default" || g.value.starts_with("user-") {
                    self.error(&g.loc, format!("group {:?} would share its Kubernetes group rolesh:{} with {}: rename the rule's group", g.value, g.value, if g.value == "default" { "mapping.default_role" } else { "a [mapping.users] rule" }));
                }
            }
            let rule = self.rule_from_fields(&f, "");
            if let (Some(group), Some(rule)) = (group, rule) {
                rules.push(GroupRule {
                    group: group.value,
                    rule,
                });
            }
        }
        rules
    }

    /// A rule's role (a string, or a table with `role`, `access`, `namespaces`).
    fn role_rule(&self, node: &Node, path: &str) -> Option<RoleRule> {
        match &node.value {
            Value::String(text) => {
                let role = self.role_template(&At::new(text.clone(), node.loc.clone()))?;
                Some(RoleRule {
                    role,
                    access: AccessLevel::User,
                    namespaces: None,
                    origin: node.loc.to_string(),
                })
            }
            Value::Table(_) => {
                let f = self.table(node, path)?;
                self.rule_from_fields(&f, "")
            }
            _ => {
                self.type_error(node, path, "a role ARN string or a table with `role`");
                None
            }
        }
    }

    /// `{prefix}role`, `{prefix}access` and `{prefix}namespaces` (`prefix` is "" or
    /// "default_"); the role is required without a prefix.
    fn rule_from_fields(&self, f: &Fields<'_>, prefix: &str) -> Option<RoleRule> {
        let key = format!("{prefix}role");
        let text = if prefix.is_empty() {
            f.required_string(&key)
        } else {
            f.string(&key)
        };
        let role = text.as_ref().and_then(|t| self.role_template(t));
        let access = self.access_level(f, prefix);
        let namespaces = self.access_namespaces(f, prefix);
        Some(RoleRule {
            role: role?,
            access: access?,
            namespaces,
            origin: text?.loc.to_string(),
        })
    }

    fn access_level(&self, f: &Fields<'_>, prefix: &str) -> Option<AccessLevel> {
        let key = format!("{prefix}access");
        match f.get(&key) {
            None => Some(AccessLevel::User),
            Some(_) => f.word(&key, AccessLevel::parse, AccessLevel::choices),
        }
    }

    fn access_namespaces(&self, f: &Fields<'_>, prefix: &str) -> Option<Vec<String>> {
        let list = f.strings(&format!("{prefix}namespaces"))?;
        Some(
            list.into_iter()
                .filter(|n| self.checked(&n.loc, namespace_name(n)).is_some())
                .map(|n| n.value)
                .collect(),
        )
    }
}

/// A Kubernetes namespace name (a DNS label).
pub(super) fn namespace_name(name: &str) -> Result<(), String> {
    if selector::is_dns_label(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid namespace name {name:?}: lowercase letters, digits and `-`, at most 63"
        ))
    }
}
