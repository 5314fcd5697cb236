//! Walks the merged TOML tree against rolesh's schema: every unknown key, wrong type and
//! invalid value becomes a diagnostic at its own position, and walking goes on so that
//! all of them are reported together.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::diag::{At, ConfigErrors, Diagnostic, Loc, SourceFile, did_you_mean};
use super::tree::{Node, Table, Value};
use super::*;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

pub fn build(
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
    let mut w = Walker::default();
    if root.entries.is_empty() {
        w.error(
            &start,
            "the configuration is empty: set at least [aws] region and a [mapping] (see /usr/share/doc/rolesh/examples)",
        );
        return Err(ConfigErrors::sorted(w.errors));
    }
    let top = Fields::new(
        root,
        start.clone(),
        "",
        &mut w,
        &["aws", "mapping", "cluster", "session", "broker", "audit"],
    );
    let aws = w.required_table(&top, "aws").map(|t| w.aws(t));
    let mapping = w.required_table(&top, "mapping").map(|t| w.mapping(t));
    let clusters = w.clusters(top.get("cluster"), aws.as_ref().and_then(|a| a.as_ref()));
    let (session, overrides) = w.session_section(top.get("session"));
    let broker = w.broker(top.get("broker"), aws.as_ref().and_then(|a| a.as_ref()));
    let audit = w.audit(top.get("audit"));
    if !w.errors.is_empty() {
        return Err(ConfigErrors::sorted(w.errors));
    }
    // Without errors every section was built.
    let (Some(Some(aws)), Some(Some(mapping))) = (aws, mapping) else {
        return Err(ConfigErrors::sorted(w.errors));
    };
    Ok(Config {
        aws,
        mapping,
        clusters,
        session,
        overrides,
        broker,
        audit,
        files,
    })
}

#[derive(Default)]
struct Walker {
    errors: Vec<Diagnostic>,
}

/// A table being read: its known keys were checked when it was opened.
struct Fields<'a> {
    table: &'a Table,
    loc: Loc,
    path: String,
}

impl<'a> Fields<'a> {
    fn new(table: &'a Table, loc: Loc, path: &str, w: &mut Walker, known: &[&str]) -> Self {
        for (key, _) in &table.entries {
            if !known.contains(&key.value.as_str()) {
                let place = if path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in [{path}]")
                };
                w.error(
                    &key.loc,
                    format!(
                        "unknown key `{}` {place}{}",
                        key.value,
                        did_you_mean(&key.value, known.iter().copied())
                    ),
                );
            }
        }
        Fields {
            table,
            loc,
            path: path.to_string(),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.table
            .entries
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(_, v)| v)
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl Walker {
    fn error(&mut self, loc: &Loc, message: impl Into<String>) {
        self.errors.push(Diagnostic::at(loc, message));
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            &node.loc,
            format!(
                "`{path}` must be {expected}, not {}",
                node.value.type_name()
            ),
        );
    }

    fn table<'a>(&mut self, node: &'a Node, path: &str, known: &[&str]) -> Option<Fields<'a>> {
        match &node.value {
            Value::Table(t) => Some(Fields::new(t, node.loc.clone(), path, self, known)),
            _ => {
                self.type_error(node, path, "a table");
                None
            }
        }
    }

    fn required_table<'a>(&mut self, parent: &Fields<'a>, key: &str) -> Option<&'a Node> {
        let node = parent.get(key);
        if node.is_none() {
            self.error(&parent.loc, format!("missing required section [{key}]"));
        }
        node
    }

    fn string(&mut self, f: &Fields<'_>, key: &str) -> Option<At<String>> {
        let node = f.get(key)?;
        match &node.value {
            Value::String(s) => Some(At::new(s.clone(), node.loc.clone())),
            _ => {
                self.type_error(node, &f.key_path(key), "a string");
                None
            }
        }
    }

    fn required_string(&mut self, f: &Fields<'_>, key: &str) -> Option<At<String>> {
        if f.get(key).is_none() {
            self.error(
                &f.loc,
                format!("missing required key `{key}` in [{}]", f.path),
            );
        }
        self.string(f, key)
    }

    fn bool(&mut self, f: &Fields<'_>, key: &str) -> Option<bool> {
        let node = f.get(key)?;
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(node, &f.key_path(key), "true or false");
                None
            }
        }
    }

    fn integer(&mut self, f: &Fields<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        let node = f.get(key)?;
        match node.value {
            Value::Integer(n) if (min..=max).contains(&n) => Some(n),
            Value::Integer(n) => {
                self.error(
                    &node.loc,
                    format!(
                        "`{}` = {n} is out of range ({min}..={max})",
                        f.key_path(key)
                    ),
                );
                None
            }
            _ => {
                self.type_error(node, &f.key_path(key), "an integer");
                None
            }
        }
    }

    fn strings(&mut self, f: &Fields<'_>, key: &str) -> Option<Vec<At<String>>> {
        let node = f.get(key)?;
        let Value::Array(items) = &node.value else {
            self.type_error(node, &f.key_path(key), "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::String(s) => out.push(At::new(s.clone(), item.loc.clone())),
                _ => self.type_error(item, &format!("{}[{i}]", f.key_path(key)), "a string"),
            }
        }
        Some(out)
    }

    fn tables<'a>(&mut self, node: &'a Node, path: &str, known: &[&str]) -> Vec<Fields<'a>> {
        let Value::Array(items) = &node.value else {
            self.type_error(node, path, &format!("an array of tables ([[{path}]])"));
            return vec![];
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.table(item, &format!("{path}[{i}]"), known))
            .collect()
    }

    fn checked<T>(&mut self, loc: &Loc, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.error(loc, e)).ok()
    }

    fn duration(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let text = self.string(f, key)?;
        self.checked(&text.loc, values::duration(&text, min, max))
    }

    fn template(&mut self, text: &At<String>) -> Option<Template> {
        self.checked(&text.loc, Template::parse(text))
    }

    /// A template whose rendering must be an STS name: its literal text must already obey
    /// the character rules, and its shortest rendering (one character a variable) must
    /// fit; the rendered name is checked again for each user.
    fn sts_name_template(&mut self, f: &Fields<'_>, key: &str, what: &str) -> Option<Template> {
        let text = self.string(f, key)?;
        let template = self.template(&text)?;
        let literal = template.literal_text();
        let shortest = template.render(&Vars {
            user: "x",
            uid: 0,
            hostname: "x",
        });
        let problem = if let Some(c) = literal
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c)))
        {
            Some(format!(
                "contains {c:?}; STS allows only letters, digits and +=,.@_-"
            ))
        } else if shortest.len() > 64 {
            Some("is longer than 64 characters before any substitution".to_string())
        } else if !template.has_vars() {
            values::sts_name(what, &shortest)
                .err()
                .map(|e| format!("is invalid: {e}"))
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.error(&text.loc, format!("{what} template {:?} {p}", text.value));
                None
            }
            None => Some(template),
        }
    }

    fn role_template(&mut self, text: &At<String>) -> Option<Template> {
        let template = self.template(text)?;
        let sample = template.render(&Vars {
            user: "user",
            uid: 1000,
            hostname: "host",
        });
        self.checked(&text.loc, values::role_arn(&sample))?;
        Some(template)
    }

    /// `access` and `namespaces` of a rule (`prefix` is "" or "default_").
    fn access(&mut self, f: &Fields<'_>, prefix: &str) -> (Option<Access>, Option<Vec<String>>) {
        let key = format!("{prefix}access");
        let access = match self.string(f, &key) {
            None => Some(Access::User),
            Some(a) => {
                let parsed = Access::parse(&a).ok_or_else(|| {
                    format!(
                        "`{key}` must be \"admin\", \"poweruser\" or \"user\", not {:?}",
                        a.value
                    )
                });
                self.checked(&a.loc, parsed)
            }
        };
        let namespaces = self.strings(f, &format!("{prefix}namespaces")).map(|list| {
            list.into_iter()
                .filter(|n| {
                    let ok = if selector::is_dns_label(n) {
                        Ok(())
                    } else {
                        Err(format!("invalid namespace name {:?}: lowercase letters, digits and `-`, at most 63", n.value))
                    };
                    self.checked(&n.loc, ok).is_some()
                })
                .map(|n| n.value)
                .collect()
        });
        (access, namespaces)
    }

    /// A rule's role (a string, or a table with `role`, `access`, `namespaces`).
    fn role_rule(&mut self, node: &Node, path: &str) -> Option<RoleRule> {
        match &node.value {
            Value::String(text) => {
                let role = self.role_template(&At::new(text.clone(), node.loc.clone()))?;
                Some(RoleRule {
                    role,
                    access: Access::User,
                    namespaces: None,
                    origin: node.loc.to_string(),
                })
            }
            Value::Table(_) => {
                let f = self.table(node, path, &["role", "access", "namespaces"])?;
                self.rule_from_fields(&f, "")
            }
            _ => {
                self.type_error(node, path, "a role ARN string or a table with `role`");
                None
            }
        }
    }

    fn rule_from_fields(&mut self, f: &Fields<'_>, prefix: &str) -> Option<RoleRule> {
        let key = format!("{prefix}role");
        let text = if prefix.is_empty() {
            self.required_string(f, &key)
        } else {
            self.string(f, &key)
        };
        let role = text.as_ref().and_then(|t| self.role_template(t));
        let (access, namespaces) = self.access(f, prefix);
        Some(RoleRule {
            role: role?,
            access: access?,
            namespaces,
            origin: text?.loc.to_string(),
        })
    }

    fn aws(&mut self, node: &Node) -> Option<Aws> {
        let f = self.table(
            node,
            "aws",
            &[
                "region",
                "sts_endpoint",
                "session_duration",
                "session_name",
                "source_identity",
                "expose_credentials",
                "tags",
            ],
        )?;
        let region = self.required_string(&f, "region").and_then(|r| {
            let ok = self.checked(&r.loc, values::region(&r));
            ok.map(|_| r.value)
        });
        let sts_endpoint = match self.string(&f, "sts_endpoint") {
            None => Some(StsEndpoint::Regional),
            Some(s) if s.value == "regional" => Some(StsEndpoint::Regional),
            Some(s) if s.value == "legacy" => Some(StsEndpoint::Legacy),
            Some(s) if s.value.contains("://") => self
                .checked(&s.loc, values::endpoint_url(&s))
                .map(|_| StsEndpoint::Url(s.value.trim_end_matches('/').to_string())),
            Some(s) => {
                self.error(&s.loc, format!("`aws.sts_endpoint` must be \"regional\", \"legacy\" or an https URL, not {:?}", s.value));
                None
            }
        };
        let session_duration = if f.get("session_duration").is_some() {
            self.duration(&f, "session_duration", 15 * MINUTE, 12 * HOUR)
        } else {
            Some(HOUR)
        };
        let session_name = self.optional_sts_template(&f, "session_name", "session name");
        let source_identity = self.optional_sts_template(&f, "source_identity", "source identity");
        let expose_credentials = self.bool(&f, "expose_credentials").unwrap_or(false);
        let tags = f.get("tags").map(|n| self.tags(n)).unwrap_or_default();
        Some(Aws {
            region: region?,
            sts_endpoint: sts_endpoint?,
            session_duration: session_duration?,
            session_name: session_name?,
            source_identity: source_identity?,
            expose_credentials,
            tags,
        })
    }

    fn optional_sts_template(&mut self, f: &Fields<'_>, key: &str, what: &str) -> Option<Template> {
        if f.get(key).is_some() {
            self.sts_name_template(f, key, what)
        } else {
            Template::parse("{user}").ok()
        }
    }

    fn tags(&mut self, node: &Node) -> Vec<(String, Template)> {
        let Value::Table(table) = &node.value else {
            self.type_error(node, "aws.tags", "a table of tag names to values");
            return vec![];
        };
        if table.entries.len() > 50 {
            self.error(
                &node.loc,
                format!(
                    "STS allows at most 50 session tags; [aws.tags] has {}",
                    table.entries.len()
                ),
            );
        }
        let mut tags = Vec::new();
        for (key, value) in &table.entries {
            self.checked(&key.loc, values::tag_key(key));
            let Value::String(text) = &value.value else {
                self.type_error(value, &format!("aws.tags.{}", key.value), "a string");
                continue;
            };
            let Some(template) = self.template(&At::new(text.clone(), value.loc.clone())) else {
                continue;
            };
            let literal = template.literal_text();
            if literal.chars().count() > 256 || literal.chars().any(|c| !values::is_tag_char(c)) {
                self.error(&value.loc, format!("tag value {text:?} must be at most 256 characters of letters, digits, spaces and _.:/=+-@"));
                continue;
            }
            tags.push((key.value.clone(), template));
        }
        tags
    }

    fn mapping(&mut self, node: &Node) -> Option<Mapping> {
        let known = [
            "deny_users",
            "default_role",
            "default_access",
            "default_namespaces",
            "users",
            "groups",
        ];
        let f = self.table(node, "mapping", &known)?;
        let deny_users = self.strings(&f, "deny_users").unwrap_or_default();
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
        Some(Mapping {
            deny_users: deny_users.into_iter().map(|u| u.value).collect(),
            users,
            groups,
            default_role,
        })
    }

    fn user_rules(&mut self, node: &Node) -> Vec<UserRule> {
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

    fn group_rules(&mut self, node: &Node) -> Vec<GroupRule> {
        let mut rules = Vec::new();
        for f in self.tables(
            node,
            "mapping.groups",
            &["group", "role", "access", "namespaces"],
        ) {
            let group = self.required_string(&f, "group");
            if let Some(g) = &group {
                self.checked(&g.loc, values::account_name("group", g));
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

    fn clusters(&mut self, node: Option<&Node>, aws: Option<&Aws>) -> Vec<Cluster> {
        let Some(node) = node else { return vec![] };
        let known = [
            "name",
            "region",
            "endpoint",
            "certificate_authority_data",
            "ca_file",
            "default_namespace",
            "groups",
            "namespace",
        ];
        let mut clusters: Vec<Cluster> = Vec::new();
        let mut seen: Vec<(String, Loc)> = Vec::new();
        for f in self.tables(node, "cluster", &known) {
            let Some(name) = self.required_string(&f, "name") else {
                continue;
            };
            if self
                .checked(&name.loc, values::cluster_name(&name))
                .is_none()
            {
                continue;
            }
            let duplicate = seen
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, first)| first.clone());
            if let Some(first) = &duplicate {
                self.error(&name.loc, format!("cluster name {:?} is already used at {first}; cluster names must be unique (ignoring case)", name.value));
            } else {
                seen.push((name.value.clone(), name.loc.clone()));
            }
            // A duplicate is still read, so that its other errors are reported too.
            if let Some(cluster) = self.cluster(&f, name, aws)
                && duplicate.is_none()
            {
                clusters.push(cluster);
            }
        }
        clusters
    }

    fn cluster(&mut self, f: &Fields<'_>, name: At<String>, aws: Option<&Aws>) -> Option<Cluster> {
        let region = match self.string(f, "region") {
            Some(r) => self.checked(&r.loc, values::region(&r)).map(|_| r.value),
            None => aws.map(|a| a.region.clone()),
        };
        let endpoint = self.string(f, "endpoint");
        if let Some(e) = &endpoint {
            self.checked(&e.loc, values::endpoint_url(e));
        }
        let ca = self.certificate_authority(f, endpoint.as_ref());
        let namespaces = f
            .get("namespace")
            .map(|n| self.namespaces(n, &f.path))
            .unwrap_or_default();
        let default_namespace = self.string(f, "default_namespace");
        if let Some(ns) = &default_namespace
            && !namespaces.is_empty()
            && !namespaces.iter().any(|n| n.name == ns.value)
        {
            self.error(&ns.loc, format!("default namespace {:?} is not one of this cluster's [[cluster.namespace]] entries", ns.value));
        }
        let groups = self.strings(f, "groups").map(|gs| {
            gs.into_iter()
                .filter(|g| {
                    self.checked(&g.loc, values::account_name("group", g))
                        .is_some()
                })
                .map(|g| g.value)
                .collect()
        });
        Some(Cluster {
            name: name.value,
            region: region?,
            endpoint: endpoint.map(|e| e.value.trim_end_matches('/').to_string()),
            certificate_authority: ca,
            default_namespace: default_namespace.map(|n| n.value),
            groups,
            namespaces,
            origin: name.loc.to_string(),
        })
    }

    fn certificate_authority(
        &mut self,
        f: &Fields<'_>,
        endpoint: Option<&At<String>>,
    ) -> Option<CertificateAuthority> {
        let data = self.string(f, "certificate_authority_data");
        let file = self.string(f, "ca_file");
        let ca = match (&data, &file) {
            (Some(d), Some(_)) => {
                self.error(
                    &d.loc,
                    "set either `certificate_authority_data` or `ca_file`, not both",
                );
                None
            }
            (Some(d), None) => {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD.decode(d.value.trim());
                match decoded {
                    Ok(bytes)
                        if String::from_utf8_lossy(&bytes)
                            .contains("-----BEGIN CERTIFICATE-----") =>
                    {
                        Some(CertificateAuthority::Data(d.value.trim().to_string()))
                    }
                    _ => {
                        self.error(&d.loc, "`certificate_authority_data` must be a base64-encoded PEM certificate (as in a kubeconfig)");
                        None
                    }
                }
            }
            (None, Some(p)) if p.value.starts_with('/') => {
                Some(CertificateAuthority::File(PathBuf::from(&p.value)))
            }
            (None, Some(p)) => {
                self.error(&p.loc, "`ca_file` must be an absolute path");
                None
            }
            (None, None) => None,
        };
        match (endpoint, data.as_ref().or(file.as_ref())) {
            (Some(e), None) => self.error(&e.loc, "an `endpoint` needs `certificate_authority_data` or `ca_file` (or omit both to use DescribeCluster)"),
            (None, Some(c)) => self.error(&c.loc, "a certificate authority without an `endpoint`: set `endpoint` too, or omit both to use DescribeCluster"),
            _ => {}
        }
        ca
    }

    fn namespaces(&mut self, node: &Node, cluster_path: &str) -> Vec<Namespace> {
        let path = format!("{cluster_path}.namespace");
        let mut out: Vec<Namespace> = Vec::new();
        for f in self.tables(node, &path, &["name", "selectors"]) {
            // Selectors are checked even when the name is wrong: every error at once.
            let selectors: Vec<Selector> = self
                .strings(&f, "selectors")
                .unwrap_or_default()
                .iter()
                .filter_map(|s| {
                    let parsed = Selector::parse(s)
                        .map_err(|e| format!("invalid selector {:?}: {e}", s.value));
                    self.checked(&s.loc, parsed)
                })
                .collect();
            let Some(name) = self.required_string(&f, "name") else {
                continue;
            };
            if !selector::is_dns_label(&name) {
                self.error(&name.loc, format!("invalid namespace name {:?}: lowercase letters, digits and `-`, at most 63", name.value));
                continue;
            }
            if out.iter().any(|n| n.name == name.value) {
                self.error(
                    &name.loc,
                    format!("namespace {:?} is listed twice in this cluster", name.value),
                );
                continue;
            }
            out.push(Namespace {
                name: name.value,
                selectors,
            });
        }
        out
    }

    const SESSION_KEYS: [&'static str; 11] = [
        "mode",
        "shell",
        "path",
        "allowed_commands",
        "file_transfer",
        "idle_timeout",
        "max_duration",
        "banner",
        "record",
        "record_input",
        "exec_command",
    ];

    fn session_section(&mut self, node: Option<&Node>) -> (SessionSettings, Vec<SessionOverride>) {
        let mut settings = SessionSettings::default();
        let Some(node) = node else {
            return (settings, vec![]);
        };
        let mut known = Self::SESSION_KEYS.to_vec();
        known.push("override");
        let Some(f) = self.table(node, "session", &known) else {
            return (settings, vec![]);
        };
        self.session_patch(&f).apply(&mut settings);
        let overrides = f
            .get("override")
            .map(|n| self.overrides(n))
            .unwrap_or_default();
        (settings, overrides)
    }

    fn overrides(&mut self, node: &Node) -> Vec<SessionOverride> {
        let mut known = Self::SESSION_KEYS.to_vec();
        known.extend(["users", "groups"]);
        let mut out = Vec::new();
        for f in self.tables(node, "session.override", &known) {
            let users: Vec<String> = self
                .strings(&f, "users")
                .unwrap_or_default()
                .into_iter()
                .map(|u| u.value)
                .collect();
            let groups: Vec<String> = self
                .strings(&f, "groups")
                .unwrap_or_default()
                .into_iter()
                .map(|g| g.value)
                .collect();
            if users.is_empty() && groups.is_empty() {
                self.error(
                    &f.loc,
                    "a [[session.override]] needs `users` or `groups` to say whom it applies to",
                );
            }
            let patch = self.session_patch(&f);
            out.push(SessionOverride {
                users,
                groups,
                patch,
                origin: f.loc.to_string(),
            });
        }
        out
    }

    fn session_patch(&mut self, f: &Fields<'_>) -> SessionPatch {
        let mode = self.string(f, "mode").and_then(|m| {
            let mode = match m.value.as_str() {
                "shell" => Ok(Mode::Shell),
                "restricted" => Ok(Mode::Restricted),
                "picker" => Ok(Mode::Picker),
                other => Err(format!(
                    "`mode` must be \"shell\", \"restricted\" or \"picker\", not {other:?}"
                )),
            };
            self.checked(&m.loc, mode)
        });
        let record = self.string(f, "record").and_then(|r| {
            let record = match r.value.as_str() {
                "off" => Ok(Record::Off),
                "interactive" => Ok(Record::Interactive),
                "all" => Ok(Record::All),
                other => Err(format!(
                    "`record` must be \"off\", \"interactive\" or \"all\", not {other:?}"
                )),
            };
            self.checked(&r.loc, record)
        });
        let shell = self.string(f, "shell").and_then(|s| {
            let ok = if s.starts_with('/') {
                Ok(())
            } else {
                Err(format!(
                    "`shell` must be an absolute path, not {:?}",
                    s.value
                ))
            };
            self.checked(&s.loc, ok).map(|_| s.value)
        });
        let path = self.string(f, "path").and_then(|p| {
            let ok = match p.split(':').find(|d| !d.starts_with('/')) {
                Some(d) => Err(format!(
                    "every `path` entry must be an absolute directory; {d:?} is not"
                )),
                None => Ok(()),
            };
            self.checked(&p.loc, ok).map(|_| p.value)
        });
        let allowed_commands = self.strings(f, "allowed_commands").map(|cmds| {
            cmds.into_iter()
                .filter(|c| {
                    let ok = if c.is_empty() || c.chars().any(|ch| ch.is_whitespace() || ch == '/')
                    {
                        Err(format!(
                            "allowed command {:?} must be a plain command name (found on `path`)",
                            c.value
                        ))
                    } else {
                        Ok(())
                    };
                    self.checked(&c.loc, ok).is_some()
                })
                .map(|c| c.value)
                .collect()
        });
        let exec_command = self.strings(f, "exec_command").and_then(|argv| {
            if argv.is_empty() {
                self.error(
                    &f.get("exec_command").expect("present").loc,
                    "`exec_command` must not be empty",
                );
                return None;
            }
            Some(argv.into_iter().map(|a| a.value).collect())
        });
        SessionPatch {
            mode,
            shell,
            path,
            allowed_commands,
            file_transfer: self.bool(f, "file_transfer"),
            idle_timeout: self.duration(f, "idle_timeout", MINUTE, 24 * HOUR),
            max_duration: self.duration(f, "max_duration", 5 * MINUTE, 7 * 24 * HOUR),
            banner: self.string(f, "banner").map(|b| b.value),
            record,
            record_input: self.bool(f, "record_input"),
            exec_command,
        }
    }

    fn broker(&mut self, node: Option<&Node>, aws: Option<&Aws>) -> Broker {
        let mut broker = Broker::default();
        let known = [
            "refresh_before",
            "max_connections",
            "max_connections_per_uid",
            "idle_timeout",
            "rate_per_uid",
        ];
        let Some(f) = node.and_then(|n| self.table(n, "broker", &known)) else {
            return broker;
        };
        if let Some(d) = self.duration(&f, "refresh_before", MINUTE, HOUR) {
            if let Some(aws) = aws
                && d >= aws.session_duration
            {
                let loc = f.get("refresh_before").expect("present").loc.clone();
                self.error(
                    &loc,
                    "`broker.refresh_before` must be shorter than `aws.session_duration`",
                );
            }
            broker.refresh_before = d;
        }
        if let Some(n) = self.integer(&f, "max_connections", 1, 65_536) {
            broker.max_connections = n as u32;
        }
        if let Some(n) = self.integer(&f, "max_connections_per_uid", 1, 65_536) {
            broker.max_connections_per_uid = n as u32;
        }
        if let Some(d) = self.duration(&f, "idle_timeout", Duration::from_secs(1), HOUR) {
            broker.idle_timeout = d;
        }
        if let Some(n) = self.integer(&f, "rate_per_uid", 1, 1_000_000) {
            broker.rate_per_uid = n as u32;
        }
        broker
    }

    fn audit(&mut self, node: Option<&Node>) -> Audit {
        let mut audit = Audit {
            journald: true,
            file: None,
            recordings_dir: PathBuf::from("/var/log/rolesh/sessions"),
        };
        let Some(f) =
            node.and_then(|n| self.table(n, "audit", &["journald", "file", "recordings_dir"]))
        else {
            return audit;
        };
        if let Some(j) = self.bool(&f, "journald") {
            audit.journald = j;
        }
        for key in ["file", "recordings_dir"] {
            let Some(p) = self.string(&f, key) else {
                continue;
            };
            if !p.starts_with('/') {
                self.error(&p.loc, format!("`audit.{key}` must be an absolute path"));
            } else if key == "file" {
                audit.file = Some(PathBuf::from(&p.value));
            } else {
                audit.recordings_dir = PathBuf::from(&p.value);
            }
        }
        audit
    }
}
