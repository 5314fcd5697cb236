//! `rolesh rbac`: the other half of the mapping, generated from the same configuration so
//! that it never drifts: Kubernetes RBAC (ClusterRoles per access level, bindings per
//! rule), the identity mapping EKS needs (aws-auth `mapRoles` or access entries), and IAM
//! trust and permissions policies for each mapped role. Output is sorted and stable.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::{AccessLevel, Config, RoleRule, Vars, values};
use crate::system;

const MANAGED_BY: &str = "rolesh";

/// Which identity mapping to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identity {
    AwsAuth,
    AccessEntries,
}

/// One mapping rule as `rbac` sees it.
#[derive(Debug, Clone)]
struct Rule {
    /// `mapping.users.alice`, `mapping.groups[group=sre]`, `mapping.default_role`.
    name: String,
    /// The Kubernetes group its users get: `rolesh:sre`, `rolesh:user-alice`, `rolesh:default`.
    kube_group: String,
    role_arn: String,
    access: AccessLevel,
    namespaces: Option<Vec<String>>,
    /// For a per-user rule: the session name and source identity STS will see.
    user: Option<(String, String)>,
    clusters: Vec<(String, String)>,
}

/// Everything `rolesh rbac` prints, and what it had to leave out.
pub(crate) struct Generated {
    pub kubernetes: Vec<Value>,
    pub identity: Value,
    pub iam: Vec<Value>,
    pub warnings: Vec<String>,
}

pub(crate) fn generate(config: &Config, identity: Identity, bastion_role: &str) -> Generated {
    let (rules, warnings) = rules(config);
    let mut kubernetes = cluster_roles();
    kubernetes.extend(bindings(&rules));
    let identity = match identity {
        Identity::AwsAuth => aws_auth(&rules),
        Identity::AccessEntries => access_entries(&rules),
    };
    let iam = iam(config, &rules, bastion_role);
    Generated {
        kubernetes,
        identity,
        iam,
        warnings,
    }
}

fn rules(config: &Config) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    let mut add = |name: String,
                   kube_group: String,
                   rule: &RoleRule,
                   user: Option<(String, String)>,
                   groups: &[String]| {
        if rule.role.has_vars() {
            warnings.push(format!(
                "{name} ({}) is a template: EKS needs one entry per rendered role; run `rolesh explain USER` for each user and map those roles",
                rule.role
            ));
            return;
        }
        let role_arn = rule.role.as_str().to_string();
        let clusters = config
            .clusters
            .iter()
            .filter(|c| {
                c.groups
                    .as_ref()
                    .is_none_or(|gs| gs.iter().any(|g| groups.contains(g)))
            })
            .map(|c| (c.name.clone(), c.region.clone()))
            .collect();
        rules.push(Rule {
            name,
            kube_group,
            role_arn,
            access: rule.access,
            namespaces: rule.namespaces.clone(),
            user,
            clusters,
        });
    };
    let hostname = system::hostname();
    for u in &config.mapping.users {
        // A user's clusters depend on their groups: ask NSS, as the broker will.
        let account = system::account_by_name(&u.user).ok().flatten();
        let vars = Vars {
            user: &u.user,
            uid: account.as_ref().map_or(0, |a| a.uid),
            hostname: &hostname,
        };
        let names = (
            config.aws.session_name.render(&vars),
            config.aws.source_identity.render(&vars),
        );
        let groups = account.map(|a| a.groups).unwrap_or_default();
        add(
            format!("mapping.users.{}", u.user),
            format!("rolesh:user-{}", u.user),
            &u.rule,
            Some(names),
            &groups,
        );
    }
    for g in &config.mapping.groups {
        add(
            format!("mapping.groups[group={}]", g.group),
            format!("rolesh:{}", g.group),
            &g.rule,
            None,
            std::slice::from_ref(&g.group),
        );
    }
    if let Some(d) = &config.mapping.default_role {
        add(
            "mapping.default_role".into(),
            "rolesh:default".into(),
            d,
            None,
            &[],
        );
    }
    rules.sort_by(|a, b| a.kube_group.cmp(&b.kube_group));
    (rules, warnings)
}

fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({"name": name, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// Which configuration rule a binding comes from, for whoever reads the cluster.
fn annotated(mut metadata: Value, r: &Rule) -> Value {
    metadata["annotations"] = json!({"rolesh/rule": r.name, "rolesh/role-arn": r.role_arn});
    metadata
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const CORE_WORKLOADS: [&str; 7] = [
    "pods",
    "services",
    "endpoints",
    "configmaps",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "events",
];
const APPS: [&str; 5] = [
    "deployments",
    "deployments/scale",
    "replicasets",
    "statefulsets",
    "daemonsets",
];

/// The three access levels as ClusterRoles (bound per namespace through RoleBindings
/// where a rule lists namespaces).
fn cluster_roles() -> Vec<Value> {
    let admin = vec![
        rule(&["*"], &["*"], &["*"]),
        json!({"nonResourceURLs": ["*"], "verbs": ["*"]}),
    ];
    let exec = rule(&[""], &["pods/exec", "pods/attach"], &["create", "get"]);
    let logs = rule(&[""], &["pods/log"], &READ);
    let poweruser = vec![
        rule(&[""], &CORE_WORKLOADS, &WRITE),
        logs.clone(),
        exec.clone(),
        rule(&[""], &["pods/portforward"], &["create", "get"]),
        rule(
            &[""],
            &[
                "secrets",
                "serviceaccounts",
                "namespaces",
                "resourcequotas",
                "limitranges",
            ],
            &READ,
        ),
        rule(&["apps"], &APPS, &WRITE),
        rule(&["batch"], &["jobs", "cronjobs"], &WRITE),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], &WRITE),
        rule(&["policy"], &["poddisruptionbudgets"], &WRITE),
        rule(&["networking.k8s.io"], &["ingresses"], &WRITE),
    ];
    let user = vec![
        rule(&[""], &CORE_WORKLOADS, &READ),
        logs,
        // What `rolesh exec` and the picker need: list and get pods, exec into them.
        exec,
        rule(&[""], &["namespaces"], &READ),
        rule(&["apps"], &APPS, &READ),
        rule(&["batch"], &["jobs", "cronjobs"], &READ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], &READ),
        rule(&["policy"], &["poddisruptionbudgets"], &READ),
        rule(&["networking.k8s.io"], &["ingresses"], &READ),
    ];
    [
        (AccessLevel::Admin, admin),
        (AccessLevel::Poweruser, poweruser),
        (AccessLevel::User, user),
    ]
    .into_iter()
    .map(|(access, rules)| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata(&cluster_role_name(access), None),
            "rules": rules,
        })
    })
    .collect()
}

pub(crate) fn cluster_role_name(access: AccessLevel) -> String {
    format!("rolesh:{}", access.as_str())
}

fn bindings(rules: &[Rule]) -> Vec<Value> {
    let mut cluster_bindings = BTreeMap::new();
    let mut namespaced = BTreeMap::new();
    for r in rules {
        let subject = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": r.kube_group}]);
        let role_ref = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role_name(r.access)});
        match &r.namespaces {
            None => {
                cluster_bindings.insert(
                    r.kube_group.clone(),
                    json!({
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "ClusterRoleBinding",
                        "metadata": annotated(metadata(&r.kube_group, None), r),
                        "roleRef": role_ref,
                        "subjects": subject,
                    }),
                );
            }
            Some(namespaces) => {
                for ns in namespaces {
                    namespaced.insert(
                        (ns.clone(), r.kube_group.clone()),
                        json!({
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "RoleBinding",
                            "metadata": annotated(metadata(&r.kube_group, Some(ns)), r),
                            "roleRef": role_ref,
                            "subjects": subject,
                        }),
                    );
                }
            }
        }
    }
    cluster_bindings
        .into_values()
        .chain(namespaced.into_values())
        .collect()
}

/// EKS's aws-auth takes the role ARN without its path, and `{{SessionName}}` becomes the
/// Kubernetes user name: the Unix user.
fn aws_auth_role_arn(arn: &str) -> String {
    match arn.split_once(":role/") {
        Some((prefix, _)) => format!("{prefix}:role/{}", values::role_name(arn)),
        None => arn.to_string(),
    }
}

/// Kubernetes groups per role ARN (several rules may share a role).
fn groups_by_role(rules: &[Rule]) -> BTreeMap<String, Vec<String>> {
    let mut by_role: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rules {
        let groups = by_role.entry(r.role_arn.clone()).or_default();
        if !groups.contains(&r.kube_group) {
            groups.push(r.kube_group.clone());
            groups.sort();
        }
    }
    by_role
}

fn aws_auth(rules: &[Rule]) -> Value {
    let map_roles: Vec<Value> = groups_by_role(rules)
        .into_iter()
        .map(|(arn, groups)| json!({"rolearn": aws_auth_role_arn(&arn), "username": "{{SessionName}}", "groups": groups}))
        .collect();
    let map_roles_yaml = serde_yaml_ng::to_string(&map_roles).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("aws-auth", Some("kube-system")),
        "data": {"mapRoles": map_roles_yaml},
    })
}

/// The EKS-managed access policy closest to each level; rolesh's own RBAC (through the
/// entry's Kubernetes groups) adds exec for `user`.
fn access_policy(access: AccessLevel) -> &'static str {
    match access {
        AccessLevel::Admin => "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
        AccessLevel::Poweruser => "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
        AccessLevel::User => "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
    }
}

fn access_entries(rules: &[Rule]) -> Value {
    let groups = groups_by_role(rules);
    let mut entries = BTreeMap::new();
    for r in rules {
        for (cluster, _) in &r.clusters {
            let key = (cluster.clone(), r.role_arn.clone());
            let entry = entries.entry(key).or_insert_with(|| {
                json!({
                    "createAccessEntry": {
                        "clusterName": cluster,
                        "principalArn": r.role_arn,
                        "type": "STANDARD",
                        "username": "{{SessionName}}",
                        "kubernetesGroups": groups[&r.role_arn],
                    },
                    "associateAccessPolicy": [],
                })
            });
            let scope = match &r.namespaces {
                None => json!({"type": "cluster"}),
                Some(ns) => json!({"type": "namespace", "namespaces": ns}),
            };
            entry["associateAccessPolicy"]
                .as_array_mut()
                .expect("array")
                .push(json!({
                    "clusterName": cluster,
                    "principalArn": r.role_arn,
                    "policyArn": access_policy(r.access),
                    "accessScope": scope,
                }));
        }
    }
    Value::Array(entries.into_values().collect())
}

/// Trust and permissions policies per role ARN.
fn iam(config: &Config, rules: &[Rule], bastion_role: &str) -> Vec<Value> {
    let mut by_role: BTreeMap<String, Vec<&Rule>> = BTreeMap::new();
    for r in rules {
        by_role.entry(r.role_arn.clone()).or_default().push(r);
    }
    let tag_keys: Vec<&str> = config.aws.tags.iter().map(|(k, _)| k.as_str()).collect();
    by_role
        .into_iter()
        .map(|(arn, rules)| {
            let account = arn.split(':').nth(4).unwrap_or_default().to_string();
            let partition = arn.split(':').nth(1).unwrap_or("aws").to_string();
            let mut clusters: Vec<String> = rules
                .iter()
                .flat_map(|r| r.clusters.iter())
                .map(|(name, region)| {
                    format!("arn:{partition}:eks:{region}:{account}:cluster/{name}")
                })
                .collect();
            clusters.sort();
            clusters.dedup();
            json!({
                "role_arn": arn,
                "trust_policy": trust_policy(&rules, bastion_role, &tag_keys),
                "permissions_policy": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "RoleshDescribeClusters",
                        "Effect": "Allow",
                        "Action": ["eks:DescribeCluster"],
                        "Resource": clusters,
                    }],
                },
            })
        })
        .collect()
}

/// The bastion's role may assume this role, set the source identity and tag the session;
/// a per-user role only under that user's name, any other only with a source identity set.
fn trust_policy(rules: &[&Rule], bastion_role: &str, tag_keys: &[&str]) -> Value {
    let users: Vec<&(String, String)> = rules.iter().filter_map(|r| r.user.as_ref()).collect();
    let mut condition = if users.len() == rules.len() {
        let sessions: Vec<&str> = users.iter().map(|u| u.0.as_str()).collect();
        let sources: Vec<&str> = users.iter().map(|u| u.1.as_str()).collect();
        json!({"StringEquals": {"sts:RoleSessionName": sessions, "sts:SourceIdentity": sources}})
    } else {
        json!({"Null": {"sts:SourceIdentity": "false"}})
    };
    if !tag_keys.is_empty() {
        condition["ForAllValues:StringEquals"] = json!({"aws:TagKeys": tag_keys});
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "RoleshBastion",
            "Effect": "Allow",
            "Principal": {"AWS": bastion_role},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Condition": condition,
        }],
    })
}

/// The whole output as one document (`--format yaml|json` without `--out`).
pub(crate) fn document(g: &Generated, identity: Identity) -> Value {
    let key = match identity {
        Identity::AwsAuth => "aws_auth",
        Identity::AccessEntries => "access_entries",
    };
    json!({"kubernetes": g.kubernetes, key: g.identity, "iam": g.iam})
}

/// `--out DIR`: files to apply or paste: `kubernetes/rbac.yaml`, `kubernetes/aws-auth.yaml`
/// or `eks/access-entries.json`, and `iam/ROLE.trust.json` + `iam/ROLE.permissions.json`.
pub(crate) fn files(g: &Generated, identity: Identity) -> Vec<(String, String)> {
    let mut files = vec![(
        "kubernetes/rbac.yaml".to_string(),
        yaml_stream(&g.kubernetes),
    )];
    match identity {
        Identity::AwsAuth => files.push((
            "kubernetes/aws-auth.yaml".into(),
            yaml_stream(std::slice::from_ref(&g.identity)),
        )),
        Identity::AccessEntries => {
            files.push(("eks/access-entries.json".into(), pretty(&g.identity)))
        }
    }
    for role in &g.iam {
        let name = values::role_name(role["role_arn"].as_str().unwrap_or_default()).to_string();
        files.push((
            format!("iam/{name}.trust.json"),
            pretty(&role["trust_policy"]),
        ));
        files.push((
            format!("iam/{name}.permissions.json"),
            pretty(&role["permissions_policy"]),
        ));
    }
    files
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Kubernetes objects as a YAML stream, `kubectl apply -f` ready.
pub(crate) fn yaml_stream(docs: &[Value]) -> String {
    let mut out = String::from(
        "# Generated by `rolesh rbac` from the rolesh configuration; regenerate, do not edit.\n",
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d).unwrap_or_default());
    }
    out
}
