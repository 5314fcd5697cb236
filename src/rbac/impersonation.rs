//! The RBAC a `kind = "kubernetes"` cluster needs so that the broker may act as each user:
//! a ClusterRole that lets the broker's identity `impersonate` exactly the mapped users
//! (their session names) and rolesh groups (`resourceNames`), and the two extras the proxy
//! sends (`rolesh.io/session-id`, `rolesh.io/bastion`, any value), bound to that identity
//! alone. Users are listed by name: the users of `[mapping.users]`, and the members a
//! `[[mapping.groups]]` group has now (NSS, as the broker asks); `default_role` users cannot
//! be listed and are left out, with a warning.
//!
//! These objects belong on the cluster they are named for, never on an EKS cluster (where a
//! Unix user could have the broker identity's name): they are not part of the default
//! output; `--only impersonation` prints them and `--out` writes
//! `kubernetes/impersonation-CLUSTER.yaml`.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};

use super::{KubeObject, Rule, metadata, strings};
use crate::config::{ClusterKind, Config, Vars};
use crate::system;

/// The extras the proxy sends, as `userextras/KEY` resources.
const EXTRAS: [&str; 2] = [
    "userextras/rolesh.io/session-id",
    "userextras/rolesh.io/bastion",
];

/// One `kubernetes` cluster's impersonation objects.
pub(crate) struct Impersonation {
    pub(crate) cluster: String,
    pub(crate) objects: Vec<KubeObject>,
}

/// Every `kubernetes` cluster's objects, and what could not be listed.
pub(super) fn generate(config: &Config, rules: &[Rule]) -> (Vec<Impersonation>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for cluster in &config.clusters {
        let (ClusterKind::Kubernetes, Some(credentials)) = (cluster.kind, &cluster.credentials)
        else {
            continue;
        };
        let visible: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.all_clusters.iter().any(|c| c == &cluster.name))
            .collect();
        let mut users = BTreeSet::new();
        for rule in &visible {
            match (&rule.user, &rule.unix_group) {
                (Some((session_name, _)), _) => {
                    users.insert(session_name.clone());
                }
                (None, Some(group)) => users.extend(members(config, group)),
                (None, None) => warnings.push(format!(
                    "{}: users mapped by {} cannot be listed for impersonation on cluster {}; map them in [mapping.users] or [[mapping.groups]] to reach it",
                    cluster.name, rule.name, cluster.name
                )),
            }
        }
        let groups: BTreeSet<String> = visible.iter().map(|r| r.kube_group.clone()).collect();
        let name = format!("rolesh:impersonator:{}", cluster.name);
        let mut rules = vec![
            named_rule("", "users", &users),
            named_rule("", "groups", &groups),
        ];
        rules.push(PolicyRule {
            api_groups: Some(strings(&["authentication.k8s.io"])),
            resources: Some(strings(&EXTRAS)),
            verbs: strings(&["impersonate"]),
            ..Default::default()
        });
        let role = ClusterRole {
            metadata: metadata(&name, None),
            rules: Some(rules),
            ..Default::default()
        };
        let binding = ClusterRoleBinding {
            metadata: metadata(&name, None),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: name.clone(),
            },
            subjects: Some(vec![subject(&credentials.identity)]),
        };
        out.push(Impersonation {
            cluster: cluster.name.clone(),
            objects: vec![
                KubeObject::ClusterRole(role),
                KubeObject::ClusterRoleBinding(binding),
            ],
        });
    }
    (out, warnings)
}

/// `impersonate` on `resource` named exactly `names` (none: a rule that matches nothing,
/// rather than one without `resourceNames`, which would match everything).
fn named_rule(group: &str, resource: &str, names: &BTreeSet<String>) -> PolicyRule {
    let names: Vec<String> = match names.is_empty() {
        true => vec![String::new()],
        false => names.iter().cloned().collect(),
    };
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(vec![resource.to_string()]),
        resource_names: Some(names),
        verbs: strings(&["impersonate"]),
        ..Default::default()
    }
}

/// The broker's identity as an RBAC subject: a service account for
/// `system:serviceaccount:NS:NAME`, a user otherwise.
fn subject(identity: &str) -> Subject {
    match identity
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            api_group: None,
        },
        None => Subject {
            kind: "User".into(),
            name: identity.into(),
            namespace: None,
            api_group: Some("rbac.authorization.k8s.io".into()),
        },
    }
}

/// The session names of a Unix group's members (its member list, as NSS has it now).
fn members(config: &Config, group: &str) -> Vec<String> {
    let hostname = system::hostname();
    system::group_members(group)
        .into_iter()
        .filter_map(|user| {
            let account = system::account_by_name(&user).ok().flatten()?;
            let vars = Vars {
                user: &user,
                uid: account.uid,
                hostname: &hostname,
            };
            Some(config.aws.session_name.render(&vars))
        })
        .collect()
}
