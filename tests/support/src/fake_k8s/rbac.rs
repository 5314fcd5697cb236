//! An RBAC authorizer with the Kubernetes semantics (`plugin/pkg/auth/authorizer/rbac`):
//! Role, ClusterRole (with aggregation), RoleBinding and ClusterRoleBinding objects loaded from
//! multi-document YAML, validated as the API server validates them on create.
//!
//! ```
//! use rolesh_testkit::fake_k8s::Authorizer;
//! let rbac = Authorizer::from_yaml(r#"
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: Role
//! metadata: {name: exec, namespace: web}
//! rules:
//! - {apiGroups: [""], resources: [pods], verbs: [get, list]}
//! - {apiGroups: [""], resources: [pods/exec], verbs: [create]}
//! ---
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: RoleBinding
//! metadata: {name: exec, namespace: web}
//! roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: exec}
//! subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}]
//! "#).unwrap();
//! let groups = ["devs".to_owned()];
//! assert!(rbac.allows("alice", &groups, "create", "", "pods", "exec", "web", "p-1"));
//! assert!(!rbac.allows("alice", &groups, "create", "", "pods", "exec", "jobs", "p-1"));
//! assert!(!rbac.allows("alice", &groups, "delete", "", "pods", "", "web", "p-1"));
//! ```

use super::selector::LabelSelector;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// API group of the RBAC objects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The bootstrap policy every cluster has (a subset of the API server's): discovery and
/// self-reviews for every authenticated user, `/version` and health for everyone,
/// `cluster-admin` for `system:masters`.
const BOOTSTRAP_POLICY: &str = include_str!("bootstrap-rbac.yaml");

/// One rule of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs (`get`, `list`, `create`, … or `*`).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group, `*` any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/exec`, `*/scale`, `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names the rule is limited to (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/api/*`), ClusterRoles only.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// What a request asks to do, as the API server's request-info resolver sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, …
    pub verb: String,
    /// A resource request (`/api/…`, `/apis/…` naming a resource) or a non-resource one.
    pub resource_request: bool,
    /// API group (`""` for core).
    pub api_group: String,
    /// API version (informational).
    pub api_version: String,
    /// Resource (`pods`).
    pub resource: String,
    /// Subresource (`exec`) or empty.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
    /// Request path (what non-resource rules match).
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            verb: verb.to_owned(),
            resource_request: true,
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// A non-resource request (`get /version`).
    pub fn non_resource(verb: &str, path: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    /// `pods/exec` for a subresource, else `pods`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether some rule allows the request.
    pub allowed: bool,
    /// Which binding allowed it (`RBAC: allowed by RoleBinding "x/web" of Role "y" to Group "z"`),
    /// empty when denied.
    pub reason: String,
}

/// Why RBAC YAML was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacError(pub String);

impl fmt::Display for RbacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RbacError {}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SubjectKind {
    User,
    Group,
    ServiceAccount,
}

#[derive(Clone, Debug)]
struct Subject {
    kind: SubjectKind,
    name: String,
    namespace: String,
}

impl Subject {
    fn applies(&self, user: &str, groups: &[String], binding_namespace: &str) -> bool {
        match self.kind {
            SubjectKind::User => self.name == user,
            SubjectKind::Group => groups.contains(&self.name),
            SubjectKind::ServiceAccount => {
                let namespace = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                !namespace.is_empty()
                    && user == format!("system:serviceaccount:{namespace}:{}", self.name)
            }
        }
    }

    fn describe(&self) -> String {
        let kind = match self.kind {
            SubjectKind::User => "User",
            SubjectKind::Group => "Group",
            SubjectKind::ServiceAccount => "ServiceAccount",
        };
        if self.namespace.is_empty() {
            format!("{kind} \"{}\"", self.name)
        } else {
            format!("{kind} \"{}/{}\"", self.namespace, self.name)
        }
    }
}

#[derive(Clone, Debug)]
struct ClusterRole {
    labels: BTreeMap<String, String>,
    rules: Vec<PolicyRule>,
    aggregation: Option<Vec<LabelSelector>>,
}

#[derive(Clone, Debug)]
struct Binding {
    name: String,
    /// Empty for ClusterRoleBindings.
    namespace: String,
    /// `Role` or `ClusterRole`.
    role_kind: String,
    role_name: String,
    subjects: Vec<Subject>,
}

/// RBAC over loaded Role/ClusterRole/RoleBinding/ClusterRoleBinding objects.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: BTreeMap<String, ClusterRole>,
    role_bindings: Vec<Binding>,
    cluster_role_bindings: Vec<Binding>,
}

// Wire shapes of the RBAC objects.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleObject {
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRule>>,
    #[serde(default)]
    aggregation_rule: Option<AggregationRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregationRule {
    #[serde(default)]
    cluster_role_selectors: Vec<SelectorObject>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectorObject {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<ExpressionObject>,
}

#[derive(Deserialize)]
struct ExpressionObject {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingObject {
    metadata: ObjectMeta,
    #[serde(default)]
    subjects: Vec<SubjectObject>,
    role_ref: RoleRefObject,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectObject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    api_group: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleRefObject {
    api_group: String,
    kind: String,
    name: String,
}

/// Parses multi-document YAML (or JSON) into the objects it holds, expanding `kind: List`.
pub(crate) fn yaml_objects(yaml: &str) -> Result<Vec<Value>, String> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document)
            .map_err(|e| format!("YAML document {}: {e}", index + 1))?;
        match value {
            Value::Null => {}
            Value::Object(map) => expand_lists(Value::Object(map), &mut objects),
            other => {
                return Err(format!(
                    "YAML document {}: expected an object, got {other}",
                    index + 1
                ));
            }
        }
    }
    Ok(objects)
}

fn expand_lists(object: Value, out: &mut Vec<Value>) {
    let is_list = object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && object.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = object.get("items").cloned() {
            for item in items {
                expand_lists(item, out);
            }
        }
    } else {
        out.push(object);
    }
}

fn describe_object(object: &Value) -> String {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("?");
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

impl Authorizer {
    /// An authorizer with no objects: it denies everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bootstrap policy alone (see [`Authorizer::with_bootstrap_policy`]).
    pub fn bootstrap() -> Self {
        Self::default().with_bootstrap_policy()
    }

    /// Loads RBAC objects from multi-document YAML (no bootstrap policy).
    pub fn from_yaml(yaml: &str) -> Result<Self, RbacError> {
        let mut authorizer = Self::default();
        authorizer.load_yaml(yaml)?;
        Ok(authorizer)
    }

    /// Adds the bootstrap policy every cluster has: `system:discovery`, `system:basic-user`
    /// (self reviews), `system:public-info-viewer` and `cluster-admin` (bound to
    /// `system:masters`). Objects already loaded under those names are kept.
    pub fn with_bootstrap_policy(mut self) -> Self {
        let bootstrap = Self::from_yaml(BOOTSTRAP_POLICY).expect("the bootstrap policy is valid");
        for (name, role) in bootstrap.cluster_roles {
            self.cluster_roles.entry(name).or_insert(role);
        }
        for binding in bootstrap.cluster_role_bindings {
            if !self
                .cluster_role_bindings
                .iter()
                .any(|b| b.name == binding.name)
            {
                self.cluster_role_bindings.push(binding);
            }
        }
        self
    }

    /// Loads more objects. RBAC kinds are validated like the API server validates them;
    /// other kinds (Namespace, ConfigMap, ServiceAccount, …) are skipped. A name loaded twice
    /// is an error (generated RBAC should not carry duplicates).
    pub fn load_yaml(&mut self, yaml: &str) -> Result<(), RbacError> {
        for object in yaml_objects(yaml).map_err(RbacError)? {
            self.load_object(&object)
                .map_err(|e| RbacError(format!("{}: {e}", describe_object(&object))))?;
        }
        Ok(())
    }

    fn load_object(&mut self, object: &Value) -> Result<(), String> {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if !matches!(
            kind,
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        ) {
            return Ok(());
        }
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if api_version != format!("{RBAC_GROUP}/v1") {
            return Err(format!(
                "apiVersion must be {RBAC_GROUP}/v1, not {api_version:?}"
            ));
        }
        let namespaced = matches!(kind, "Role" | "RoleBinding");
        match kind {
            "Role" | "ClusterRole" => {
                let role: RoleObject =
                    serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
                let namespace = check_meta(&role.metadata, namespaced)?;
                let rules = role.rules.unwrap_or_default();
                for (i, rule) in rules.iter().enumerate() {
                    validate_rule(rule, namespaced).map_err(|e| format!("rules[{i}]: {e}"))?;
                }
                if namespaced {
                    let key = (namespace, role.metadata.name);
                    if self.roles.contains_key(&key) {
                        return Err("defined twice".into());
                    }
                    self.roles.insert(key, rules);
                } else {
                    if self.cluster_roles.contains_key(&role.metadata.name) {
                        return Err("defined twice".into());
                    }
                    let aggregation = role
                        .aggregation_rule
                        .map(|rule| {
                            rule.cluster_role_selectors
                                .iter()
                                .map(|s| {
                                    let expressions: Vec<(String, String, Vec<String>)> = s
                                        .match_expressions
                                        .iter()
                                        .map(|e| {
                                            (e.key.clone(), e.operator.clone(), e.values.clone())
                                        })
                                        .collect();
                                    LabelSelector::from_match(&s.match_labels, &expressions)
                                        .map_err(|e| e.0)
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .transpose()?;
                    self.cluster_roles.insert(
                        role.metadata.name,
                        ClusterRole {
                            labels: role.metadata.labels,
                            rules,
                            aggregation,
                        },
                    );
                }
            }
            _ => {
                let binding: BindingObject =
                    serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
                let namespace = check_meta(&binding.metadata, namespaced)?;
                let role_ref = &binding.role_ref;
                if role_ref.api_group != RBAC_GROUP {
                    return Err(format!(
                        "roleRef.apiGroup: Unsupported value: {:?}: supported values: {RBAC_GROUP:?}",
                        role_ref.api_group
                    ));
                }
                let kinds: &[&str] = if namespaced {
                    &["Role", "ClusterRole"]
                } else {
                    &["ClusterRole"]
                };
                if !kinds.contains(&role_ref.kind.as_str()) {
                    return Err(format!(
                        "roleRef.kind: Unsupported value: {:?}: supported values: {kinds:?}",
                        role_ref.kind
                    ));
                }
                if role_ref.name.is_empty() {
                    return Err("roleRef.name: Required value".into());
                }
                let subjects = binding
                    .subjects
                    .iter()
                    .enumerate()
                    .map(|(i, s)| subject(s, namespaced).map_err(|e| format!("subjects[{i}]: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let loaded = Binding {
                    name: binding.metadata.name,
                    namespace,
                    role_kind: role_ref.kind.clone(),
                    role_name: role_ref.name.clone(),
                    subjects,
                };
                let list = if namespaced {
                    &mut self.role_bindings
                } else {
                    &mut self.cluster_role_bindings
                };
                if list
                    .iter()
                    .any(|b| b.name == loaded.name && b.namespace == loaded.namespace)
                {
                    return Err("defined twice".into());
                }
                list.push(loaded);
            }
        }
        Ok(())
    }

    /// Whether `user` (member of `groups`; pass `system:authenticated` too if the request is
    /// authenticated) may `verb` the resource. `namespace` and `name` are empty when not
    /// applicable; `subresource` is empty for the resource itself.
    #[allow(clippy::too_many_arguments)]
    pub fn allows(
        &self,
        user: &str,
        groups: &[String],
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let attributes =
            Attributes::resource(verb, api_group, resource, subresource, namespace, name);
        self.authorize(user, groups, &attributes).allowed
    }

    /// Whether `user` may `verb` (`get`, `post`, …) the non-resource `path`.
    pub fn allows_non_resource(
        &self,
        user: &str,
        groups: &[String],
        verb: &str,
        path: &str,
    ) -> bool {
        self.authorize(user, groups, &Attributes::non_resource(verb, path))
            .allowed
    }

    /// The RBAC decision for a request, with the binding that allowed it.
    pub fn authorize(&self, user: &str, groups: &[String], attributes: &Attributes) -> Decision {
        let mut found = None;
        self.visit(
            user,
            groups,
            &attributes.namespace,
            |binding, subject, rule| {
                if rule_allows(attributes, rule) {
                    found = Some(format!(
                        "RBAC: allowed by {} of {} \"{}\" to {}",
                        binding_description(binding),
                        binding.role_kind,
                        binding.role_name,
                        subject.describe()
                    ));
                    true
                } else {
                    false
                }
            },
        );
        match found {
            Some(reason) => Decision {
                allowed: true,
                reason,
            },
            None => Decision {
                allowed: false,
                reason: String::new(),
            },
        }
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide rules included), in the
    /// order the authorizer visits them: what a SelfSubjectRulesReview lists.
    pub fn rules_for(&self, user: &str, groups: &[String], namespace: &str) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        self.visit(user, groups, namespace, |_, _, rule| {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
            false
        });
        rules
    }

    /// Calls `visit` for each rule bound to the user (ClusterRoleBindings, then the RoleBindings
    /// of `namespace`) until it returns true.
    fn visit(
        &self,
        user: &str,
        groups: &[String],
        namespace: &str,
        mut visit: impl FnMut(&Binding, &Subject, &PolicyRule) -> bool,
    ) {
        let namespaced = self
            .role_bindings
            .iter()
            .filter(|b| !namespace.is_empty() && b.namespace == namespace);
        for binding in self.cluster_role_bindings.iter().chain(namespaced) {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| s.applies(user, groups, &binding.namespace))
            else {
                continue;
            };
            for rule in self.binding_rules(binding) {
                if visit(binding, subject, &rule) {
                    return;
                }
            }
        }
    }

    fn binding_rules(&self, binding: &Binding) -> Vec<PolicyRule> {
        if binding.role_kind == "Role" {
            return self
                .roles
                .get(&(binding.namespace.clone(), binding.role_name.clone()))
                .cloned()
                .unwrap_or_default();
        }
        let mut seen = BTreeSet::new();
        self.cluster_role_rules(&binding.role_name, &mut seen)
    }

    /// A ClusterRole's rules; an aggregated one has the rules of every ClusterRole its
    /// selectors match (what the aggregation controller writes into it).
    fn cluster_role_rules(&self, name: &str, seen: &mut BTreeSet<String>) -> Vec<PolicyRule> {
        if !seen.insert(name.to_owned()) {
            return Vec::new();
        }
        let Some(role) = self.cluster_roles.get(name) else {
            return Vec::new();
        };
        let Some(selectors) = &role.aggregation else {
            return role.rules.clone();
        };
        let mut rules = Vec::new();
        for (other, candidate) in &self.cluster_roles {
            if other != name && selectors.iter().any(|s| s.matches(&candidate.labels)) {
                for rule in self.cluster_role_rules(other, seen) {
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
            }
        }
        rules
    }
}

fn binding_description(binding: &Binding) -> String {
    if binding.namespace.is_empty() {
        format!("ClusterRoleBinding \"{}\"", binding.name)
    } else {
        format!("RoleBinding \"{}/{}\"", binding.name, binding.namespace)
    }
}

fn check_meta(meta: &ObjectMeta, namespaced: bool) -> Result<String, String> {
    if meta.name.is_empty() {
        return Err("metadata.name: Required value".into());
    }
    match (&meta.namespace, namespaced) {
        (Some(ns), true) if !ns.is_empty() => {
            if super::selector::is_dns_label(ns) {
                Ok(ns.clone())
            } else {
                Err(format!("metadata.namespace: Invalid value: {ns:?}"))
            }
        }
        (_, true) => Err("metadata.namespace: Required value (a namespaced object)".into()),
        (Some(ns), false) if !ns.is_empty() => Err(format!(
            "metadata.namespace: Invalid value: {ns:?}: not allowed on this cluster-scoped type"
        )),
        (_, false) => Ok(String::new()),
    }
}

fn validate_rule(rule: &PolicyRule, namespaced: bool) -> Result<(), String> {
    if rule.verbs.is_empty() {
        return Err("verbs: Required value: verbs must contain at least one value".into());
    }
    if !rule.non_resource_urls.is_empty() {
        if namespaced {
            return Err(format!(
                "nonResourceURLs: Invalid value: {:?}: namespaced rules cannot apply to \
                 non-resource URLs",
                rule.non_resource_urls
            ));
        }
        if !rule.api_groups.is_empty()
            || !rule.resources.is_empty()
            || !rule.resource_names.is_empty()
        {
            return Err(format!(
                "nonResourceURLs: Invalid value: {:?}: rules cannot apply to both regular \
                 resources and non-resource URLs",
                rule.non_resource_urls
            ));
        }
        return Ok(());
    }
    if rule.api_groups.is_empty() {
        return Err(
            "apiGroups: Required value: resource rules must supply at least one api group".into(),
        );
    }
    if rule.resources.is_empty() {
        return Err(
            "resources: Required value: resource rules must supply at least one resource".into(),
        );
    }
    Ok(())
}

fn subject(s: &SubjectObject, namespaced_binding: bool) -> Result<Subject, String> {
    if s.name.is_empty() {
        return Err("name: Required value".into());
    }
    let api_group = s.api_group.clone().unwrap_or_default();
    let kind = match s.kind.as_str() {
        "User" | "Group" => {
            if api_group != RBAC_GROUP {
                return Err(format!(
                    "apiGroup: Unsupported value: {api_group:?}: supported values: {RBAC_GROUP:?}"
                ));
            }
            if s.kind == "User" {
                SubjectKind::User
            } else {
                SubjectKind::Group
            }
        }
        "ServiceAccount" => {
            if !api_group.is_empty() {
                return Err(format!(
                    "apiGroup: Unsupported value: {api_group:?}: supported values: \"\""
                ));
            }
            if !namespaced_binding && s.namespace.as_deref().unwrap_or("").is_empty() {
                return Err("namespace: Required value".into());
            }
            SubjectKind::ServiceAccount
        }
        other => {
            return Err(format!(
                "kind: Unsupported value: {other:?}: supported values: \"Group\", \
                 \"ServiceAccount\", \"User\""
            ));
        }
    };
    Ok(Subject {
        kind,
        name: s.name.clone(),
        namespace: s.namespace.clone().unwrap_or_default(),
    })
}

/// `RuleAllows` of the Kubernetes RBAC authorizer.
pub(crate) fn rule_allows(attributes: &Attributes, rule: &PolicyRule) -> bool {
    let verb_matches = rule.verbs.iter().any(|v| v == "*" || *v == attributes.verb);
    if !verb_matches {
        return false;
    }
    if !attributes.resource_request {
        return rule.non_resource_urls.iter().any(|url| {
            url == "*"
                || *url == attributes.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attributes.path.starts_with(prefix))
        });
    }
    let group_matches = rule
        .api_groups
        .iter()
        .any(|g| g == "*" || *g == attributes.api_group);
    let combined = attributes.combined_resource();
    let resource_matches = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!attributes.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attributes.subresource.as_str()))
    });
    let name_matches =
        rule.resource_names.is_empty() || rule.resource_names.contains(&attributes.name);
    group_matches && resource_matches && name_matches
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pod-reader, labels: {rbac.example.com/aggregate-to-viewer: "true"}}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: viewer}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {rbac.example.com/aggregate-to-viewer: "true"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: exec-one, namespace: web}
rules:
- apiGroups: [""]
  resources: [pods/exec]
  resourceNames: [frontend-1]
  verbs: [create]
- apiGroups: ["*"]
  resources: ["*/scale"]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewers, namespace: web}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: viewer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}
- {kind: ServiceAccount, name: builder}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: exec-one, namespace: web}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: exec-one}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
---
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: metrics}
  rules:
  - {nonResourceURLs: ["/metrics", "/debug/*"], verbs: [get]}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: metrics}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: metrics}
  subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: prometheus}]
"#;

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn rolebindings_grant_only_in_their_namespace() {
        let rbac = Authorizer::from_yaml(POLICY).expect("policy");
        let devs = groups(&["devs", "system:authenticated"]);
        assert!(rbac.allows("bob", &devs, "list", "", "pods", "", "web", ""));
        assert!(rbac.allows("bob", &devs, "get", "", "pods", "log", "web", "x"));
        assert!(!rbac.allows("bob", &devs, "list", "", "pods", "", "jobs", ""));
        assert!(!rbac.allows("bob", &devs, "list", "", "pods", "", "", ""));
        assert!(!rbac.allows("bob", &devs, "delete", "", "pods", "", "web", "x"));
        assert!(!rbac.allows("bob", &devs, "create", "", "pods", "exec", "web", "x"));
        assert!(!rbac.allows("bob", &[], "list", "", "pods", "", "web", ""));
    }

    #[test]
    fn subresources_resource_names_and_wildcards() {
        let rbac = Authorizer::from_yaml(POLICY).expect("policy");
        let none = groups(&[]);
        assert!(rbac.allows(
            "alice",
            &none,
            "create",
            "",
            "pods",
            "exec",
            "web",
            "frontend-1"
        ));
        assert!(!rbac.allows(
            "alice",
            &none,
            "create",
            "",
            "pods",
            "exec",
            "web",
            "frontend-2"
        ));
        assert!(!rbac.allows(
            "alice",
            &none,
            "create",
            "",
            "pods",
            "",
            "web",
            "frontend-1"
        ));
        assert!(rbac.allows(
            "alice",
            &none,
            "update",
            "apps",
            "deployments",
            "scale",
            "web",
            "d"
        ));
        assert!(!rbac.allows(
            "alice",
            &none,
            "update",
            "apps",
            "deployments",
            "",
            "web",
            "d"
        ));
    }

    #[test]
    fn service_accounts_default_to_the_binding_namespace() {
        let rbac = Authorizer::from_yaml(POLICY).expect("policy");
        let sa = "system:serviceaccount:web:builder";
        assert!(rbac.allows(sa, &[], "get", "", "pods", "", "web", "p"));
        assert!(!rbac.allows(
            "system:serviceaccount:jobs:builder",
            &[],
            "get",
            "",
            "pods",
            "",
            "web",
            "p"
        ));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let rbac = Authorizer::from_yaml(POLICY).expect("policy");
        assert!(rbac.allows_non_resource("prometheus", &[], "get", "/metrics"));
        assert!(rbac.allows_non_resource("prometheus", &[], "get", "/debug/pprof"));
        assert!(!rbac.allows_non_resource("prometheus", &[], "post", "/metrics"));
        assert!(!rbac.allows_non_resource("prometheus", &[], "get", "/api"));
        let decision = rbac.authorize(
            "prometheus",
            &[],
            &Attributes::non_resource("get", "/metrics"),
        );
        assert_eq!(
            decision.reason,
            "RBAC: allowed by ClusterRoleBinding \"metrics\" of ClusterRole \"metrics\" to User \"prometheus\""
        );
    }

    #[test]
    fn bootstrap_policy_allows_discovery_and_self_reviews() {
        let rbac = Authorizer::bootstrap();
        let authenticated = groups(&["system:authenticated"]);
        assert!(rbac.allows_non_resource("x", &authenticated, "get", "/api/v1"));
        assert!(rbac.allows_non_resource(
            "x",
            &groups(&["system:unauthenticated"]),
            "get",
            "/version"
        ));
        assert!(!rbac.allows_non_resource(
            "x",
            &groups(&["system:unauthenticated"]),
            "get",
            "/api"
        ));
        assert!(rbac.allows(
            "x",
            &authenticated,
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            "",
            ""
        ));
        assert!(rbac.allows(
            "x",
            &authenticated,
            "create",
            "authentication.k8s.io",
            "selfsubjectreviews",
            "",
            "",
            ""
        ));
        assert!(!rbac.allows("x", &authenticated, "list", "", "pods", "", "web", ""));
        assert!(rbac.allows(
            "root",
            &groups(&["system:masters"]),
            "delete",
            "",
            "nodes",
            "",
            "",
            "n"
        ));
    }

    #[test]
    fn rules_for_lists_applicable_rules() {
        let rbac = Authorizer::from_yaml(POLICY).expect("policy");
        let rules = rbac.rules_for("alice", &[], "web");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].resource_names, ["frontend-1"]);
        assert!(rbac.rules_for("alice", &[], "jobs").is_empty());
    }

    #[test]
    fn invalid_objects_are_refused_like_the_api_server_does() {
        let cases = [
            (
                "kind: Role\nmetadata: {name: r}\nrules: []",
                "namespace: Required",
            ),
            (
                "kind: Role\nmetadata: {name: r, namespace: web}\nrules: [{nonResourceURLs: [/x], verbs: [get]}]",
                "namespaced rules cannot apply",
            ),
            (
                "kind: ClusterRole\nmetadata: {name: r}\nrules: [{resources: [pods], verbs: [get]}]",
                "at least one api group",
            ),
            (
                "kind: ClusterRole\nmetadata: {name: r}\nrules: [{apiGroups: [''], resources: [pods]}]",
                "verbs: Required",
            ),
            (
                "kind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}",
                "roleRef.kind",
            ),
            (
                "kind: RoleBinding\nmetadata: {name: b, namespace: web}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{kind: User, name: u}]",
                "apiGroup: Unsupported",
            ),
        ];
        for (body, expected) in cases {
            let yaml = format!("apiVersion: rbac.authorization.k8s.io/v1\n{body}");
            let err = Authorizer::from_yaml(&yaml).expect_err(body);
            assert!(err.0.contains(expected), "{err} should mention {expected}");
        }
        let twice = format!(
            "{POLICY}\n---\n{}",
            POLICY.split("---").nth(3).expect("doc")
        );
        assert!(
            Authorizer::from_yaml(&twice)
                .expect_err("dup")
                .0
                .contains("twice")
        );
        // Other kinds are skipped.
        assert!(
            Authorizer::from_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: web}").is_ok()
        );
    }
}
