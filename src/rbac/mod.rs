//! `rolesh rbac`: the other half of the mapping, generated from the same configuration so
//! that it never drifts: Kubernetes RBAC (ClusterRoles per access level, bindings per
//! rule), the identity mapping EKS needs (aws-auth `mapRoles` or access entries), and IAM
//! trust and permissions policies for each mapped role. Output is sorted and stable, and
//! typed: k8s-openapi's objects for the cluster, [`iam`]'s documents for AWS.
//!
//! What goes where: stdout is what `kubectl apply -f -` takes (the Kubernetes objects,
//! the aws-auth ConfigMap among them); the IAM policies and EKS access entries are not
//! Kubernetes objects and go to `--out DIR` or to stdout with `--only`.

mod iam;
mod impersonation;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use std::path::{Path, PathBuf};

use crate::config::{AccessLevel, Config, ConfigSource, RoleRule, Vars, values};
use crate::error::{EXIT_OK, Failure};
use crate::system;
use iam::{ConditionValue, PolicyDocument, Principal, Statement};

const MANAGED_BY: &str = "rolesh";

/// `rolesh rbac`, as plain values.
pub(crate) struct Request {
    pub(crate) source: ConfigSource,
    pub(crate) json: bool,
    pub(crate) out: Option<PathBuf>,
    pub(crate) only: Option<Part>,
    pub(crate) identity: Identity,
    pub(crate) bastion_role: String,
}

/// What `--only` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Kubernetes,
    Iam,
    AccessEntries,
    Impersonation,
    Discovery,
    Recordings,
}

pub(crate) fn run(request: &Request) -> Result<u8, Failure> {
    values::role_arn(&request.bastion_role)
        .map_err(|e| Failure::usage(format!("--bastion-role: {e}")))?;
    let loaded = Config::load(&request.source)
        .map_err(|e| Failure::usage(format!("invalid configuration:\n{e}")))?;
    // Access entries asked for by name are generated whatever --identity says.
    let identity = match request.only {
        Some(Part::AccessEntries) => Identity::AccessEntries,
        _ => request.identity,
    };
    let generated = generate(&loaded.config, identity, &request.bastion_role);
    for w in &generated.warnings {
        eprintln!("rolesh: warning: {w}");
    }
    if let Some(note) = proxied_note(&loaded.config) {
        eprintln!("rolesh: {note}");
    }
    if let Some(dir) = &request.out {
        return write_files(&generated, dir);
    }
    let json = request.json;
    match request.only {
        Some(Part::Iam) => print!("{}", document_text(&generated.iam, json)),
        Some(Part::AccessEntries) => {
            let entries = generated.access_entries.unwrap_or_default();
            print!("{}", document_text(&entries, json));
        }
        Some(Part::Kubernetes) => print!("{}", kubernetes_text(&generated.kubernetes, json)),
        Some(Part::Impersonation) => {
            let objects: Vec<KubeObject> = generated
                .impersonation
                .iter()
                .flat_map(|i| i.objects.iter().cloned())
                .collect();
            print!("{}", kubernetes_text(&objects, json));
        }
        Some(Part::Recordings) => match &generated.recordings {
            Some(policy) => print!("{}", document_text(policy, json)),
            None => {
                return Err(Failure::usage(
                    "no [audit.s3] in the configuration: the bastion's role needs no recordings policy",
                ));
            }
        },
        Some(Part::Discovery) => match &generated.discovery {
            Some(policy) => print!("{}", document_text(policy, json)),
            None => {
                return Err(Failure::usage(
                    "no [[discovery]] in the configuration: the bastion's role needs no discovery policy",
                ));
            }
        },
        None => {
            print!("{}", kubernetes_text(&generated.kubernetes, json));
            if let Some(note) = left_out(&generated) {
                eprintln!("rolesh: {note}");
            }
        }
    }
    Ok(EXIT_OK)
}

/// Clusters behind the API proxy need nothing else: the broker signs each user's own token,
/// so the cluster sees the same identities, groups and bindings as in direct mode.
fn proxied_note(config: &Config) -> Option<String> {
    let proxied: Vec<&str> = config
        .clusters
        .iter()
        .filter(|c| {
            c.access == crate::config::ClusterRoute::Proxy
                && c.kind == crate::config::ClusterKind::Eks
        })
        .map(|c| c.name.as_str())
        .collect();
    (!proxied.is_empty()).then(|| {
        format!(
            "{} reached through the API proxy: the same objects apply (the proxy signs each user's own token, so the cluster sees the same users and groups)",
            proxied.join(", ")
        )
    })
}

/// What the default stdout leaves out, and how to get it.
fn left_out(g: &Generated) -> Option<String> {
    let mut parts = Vec::new();
    if !g.iam.is_empty() {
        parts.push(format!(
            "the IAM trust and permissions policies of {} role{} (--only iam)",
            g.iam.len(),
            if g.iam.len() == 1 { "" } else { "s" }
        ));
    }
    if g.access_entries.is_some() {
        parts.push("the EKS access entries (--only access-entries)".to_string());
    }
    if g.discovery.is_some() {
        parts.push("the bastion role's [[discovery]] policy (--only discovery)".to_string());
    }
    if g.recordings.is_some() {
        parts.push("the bastion role's [audit.s3] policy (--only recordings)".to_string());
    }
    if !g.impersonation.is_empty() {
        let clusters: Vec<&str> = g.impersonation.iter().map(|i| i.cluster.as_str()).collect();
        parts.push(format!(
            "the impersonation RBAC of {}, to apply to that cluster alone (--only impersonation)",
            clusters.join(", ")
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "stdout has the Kubernetes objects only; not on it: {}; `rolesh rbac --out DIR` writes everything",
            parts.join(" and ")
        )
    })
}

fn write_files(generated: &Generated, dir: &Path) -> Result<u8, Failure> {
    for (name, text) in files(generated) {
        let path = dir.join(&name);
        let write = std::fs::create_dir_all(path.parent().unwrap_or(dir))
            .and_then(|()| std::fs::write(&path, text));
        write.map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
        println!("{}", path.display());
    }
    Ok(EXIT_OK)
}

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
    /// For a group rule: the Unix group.
    unix_group: Option<String>,
    /// The EKS clusters its users see (name, region): what IAM and access entries cover.
    clusters: Vec<(String, String)>,
    /// Every cluster its users see, `kubernetes` ones included.
    all_clusters: Vec<String>,
    /// The `[[discovery]]` blocks whose clusters its users may see (by `groups`).
    discovery: Vec<crate::config::DiscoverySettings>,
}

/// A Kubernetes object `rolesh rbac` generates.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum KubeObject {
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
}

/// One `aws eks create-access-entry` and its `associate-access-policy` calls.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessEntry {
    create_access_entry: CreateAccessEntry,
    associate_access_policy: Vec<AssociateAccessPolicy>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateAccessEntry {
    cluster_name: String,
    principal_arn: String,
    #[serde(rename = "type")]
    kind: &'static str,
    username: &'static str,
    kubernetes_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct AssociateAccessPolicy {
    cluster_name: String,
    principal_arn: String,
    policy_arn: &'static str,
    access_scope: AccessScope,
}

#[derive(Debug, Clone, Serialize)]
struct AccessScope {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaces: Option<Vec<String>>,
}

/// A mapped role's two policies.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RolePolicies {
    role_arn: String,
    trust_policy: PolicyDocument,
    permissions_policy: PolicyDocument,
}

/// Everything `rolesh rbac` generates, and what it had to leave out.
pub(crate) struct Generated {
    /// RBAC, and the aws-auth ConfigMap when that is the identity mapping.
    pub(crate) kubernetes: Vec<KubeObject>,
    /// With access entries as the identity mapping.
    pub(crate) access_entries: Option<Vec<AccessEntry>>,
    pub(crate) iam: Vec<RolePolicies>,
    /// For each `kind = "kubernetes"` cluster, what lets the broker impersonate its users.
    pub(crate) impersonation: Vec<impersonation::Impersonation>,
    /// What the bastion's own role needs for `[[discovery]]`.
    pub(crate) discovery: Option<PolicyDocument>,
    /// What the bastion's own role needs for `[audit.s3]`.
    pub(crate) recordings: Option<PolicyDocument>,
    pub(crate) warnings: Vec<String>,
}

pub(crate) fn generate(config: &Config, identity: Identity, bastion_role: &str) -> Generated {
    let (rules, mut warnings) = rules(config);
    let (impersonation, unlisted) = impersonation::generate(config, &rules);
    warnings.extend(unlisted);
    let mut kubernetes = cluster_roles();
    kubernetes.extend(bindings(&rules));
    let access_entries = match identity {
        Identity::AwsAuth => {
            kubernetes.push(KubeObject::ConfigMap(aws_auth(&rules)));
            None
        }
        Identity::AccessEntries => Some(access_entries(&rules)),
    };
    let iam = iam(config, &rules, bastion_role);
    Generated {
        kubernetes,
        access_entries,
        iam,
        impersonation,
        discovery: discovery_policy(config, bastion_role),
        recordings: recordings_policy(config, bastion_role),
        warnings,
    }
}

fn rules(config: &Config) -> (Vec<Rule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut warnings = Vec::new();
    let mut add = |name: String,
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
        // The same group the API proxy impersonates on a `kubernetes` cluster.
        let kube_group = crate::mapping::kube_group(&name).expect("a mapping rule's name");
        let role_arn = rule.role.as_str().to_string();
        let seen: Vec<&crate::config::ClusterSettings> = config
            .clusters
            .iter()
            .filter(|c| {
                c.groups
                    .as_ref()
                    .is_none_or(|gs| gs.iter().any(|g| groups.contains(g)))
            })
            .collect();
        let clusters = seen
            .iter()
            .filter(|c| c.kind == crate::config::ClusterKind::Eks)
            .map(|c| (c.name.clone(), c.region.clone()))
            .collect();
        let unix_group = name
            .strip_prefix("mapping.groups[group=")
            .and_then(|g| g.strip_suffix(']'))
            .map(str::to_string);
        let discovery = config
            .discovery
            .iter()
            .filter(|d| {
                d.groups
                    .as_ref()
                    .is_none_or(|gs| gs.iter().any(|g| groups.contains(g)))
            })
            .cloned()
            .collect();
        rules.push(Rule {
            discovery,
            all_clusters: seen.iter().map(|c| c.name.clone()).collect(),
            name,
            kube_group,
            role_arn,
            access: rule.access,
            namespaces: rule.namespaces.clone(),
            user,
            unix_group,
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
            &u.rule,
            Some(names),
            &groups,
        );
    }
    for g in &config.mapping.groups {
        add(
            format!("mapping.groups[group={}]", g.group),
            &g.rule,
            None,
            std::slice::from_ref(&g.group),
        );
    }
    if let Some(d) = &config.mapping.default_role {
        add("mapping.default_role".into(), d, None, &[]);
    }
    rules.sort_by(|a, b| a.kube_group.cmp(&b.kube_group));
    (rules, warnings)
}

fn metadata(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        )])),
        ..ObjectMeta::default()
    }
}

/// Which configuration rule a binding comes from, for whoever reads the cluster.
fn annotated(mut metadata: ObjectMeta, r: &Rule) -> ObjectMeta {
    metadata.annotations = Some(BTreeMap::from([
        ("rolesh/rule".to_string(), r.name.clone()),
        ("rolesh/role-arn".to_string(), r.role_arn.clone()),
    ]));
    metadata
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
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
fn cluster_roles() -> Vec<KubeObject> {
    let admin = vec![
        rule(&["*"], &["*"], &["*"]),
        PolicyRule {
            non_resource_urls: Some(strings(&["*"])),
            verbs: strings(&["*"]),
            ..PolicyRule::default()
        },
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
        KubeObject::ClusterRole(ClusterRole {
            metadata: metadata(&cluster_role_name(access), None),
            rules: Some(rules),
            ..ClusterRole::default()
        })
    })
    .collect()
}

pub(crate) fn cluster_role_name(access: AccessLevel) -> String {
    format!("rolesh:{}", access.as_str())
}

fn bindings(rules: &[Rule]) -> Vec<KubeObject> {
    let mut cluster_bindings = BTreeMap::new();
    let mut namespaced = BTreeMap::new();
    for r in rules {
        let subjects = vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: r.kube_group.clone(),
            namespace: None,
        }];
        let role_ref = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role_name(r.access),
        };
        match &r.namespaces {
            None => {
                let binding = ClusterRoleBinding {
                    metadata: annotated(metadata(&r.kube_group, None), r),
                    role_ref,
                    subjects: Some(subjects),
                };
                cluster_bindings.insert(r.kube_group.clone(), binding);
            }
            Some(namespaces) => {
                for ns in namespaces {
                    let binding = RoleBinding {
                        metadata: annotated(metadata(&r.kube_group, Some(ns)), r),
                        role_ref: role_ref.clone(),
                        subjects: Some(subjects.clone()),
                    };
                    namespaced.insert((ns.clone(), r.kube_group.clone()), binding);
                }
            }
        }
    }
    cluster_bindings
        .into_values()
        .map(KubeObject::ClusterRoleBinding)
        .chain(namespaced.into_values().map(KubeObject::RoleBinding))
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

/// One `mapRoles` entry of aws-auth.
#[derive(Serialize)]
struct MapRole {
    rolearn: String,
    username: &'static str,
    groups: Vec<String>,
}

fn aws_auth(rules: &[Rule]) -> ConfigMap {
    let map_roles: Vec<MapRole> = groups_by_role(rules)
        .into_iter()
        .map(|(arn, groups)| MapRole {
            rolearn: aws_auth_role_arn(&arn),
            username: "{{SessionName}}",
            groups,
        })
        .collect();
    let map_roles_yaml = serde_yaml_ng::to_string(&map_roles).unwrap_or_default();
    ConfigMap {
        metadata: metadata("aws-auth", Some("kube-system")),
        data: Some(BTreeMap::from([("mapRoles".to_string(), map_roles_yaml)])),
        ..ConfigMap::default()
    }
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

fn access_entries(rules: &[Rule]) -> Vec<AccessEntry> {
    let groups = groups_by_role(rules);
    let mut entries: BTreeMap<(String, String), AccessEntry> = BTreeMap::new();
    for r in rules {
        for (cluster, _) in &r.clusters {
            let key = (cluster.clone(), r.role_arn.clone());
            let entry = entries.entry(key).or_insert_with(|| AccessEntry {
                create_access_entry: CreateAccessEntry {
                    cluster_name: cluster.clone(),
                    principal_arn: r.role_arn.clone(),
                    kind: "STANDARD",
                    username: "{{SessionName}}",
                    kubernetes_groups: groups[&r.role_arn].clone(),
                },
                associate_access_policy: Vec::new(),
            });
            let access_scope = match &r.namespaces {
                None => AccessScope {
                    kind: "cluster",
                    namespaces: None,
                },
                Some(ns) => AccessScope {
                    kind: "namespace",
                    namespaces: Some(ns.clone()),
                },
            };
            entry.associate_access_policy.push(AssociateAccessPolicy {
                cluster_name: cluster.clone(),
                principal_arn: r.role_arn.clone(),
                policy_arn: access_policy(r.access),
                access_scope,
            });
        }
    }
    entries.into_values().collect()
}

/// Trust and permissions policies per role ARN.
fn iam(config: &Config, rules: &[Rule], bastion_role: &str) -> Vec<RolePolicies> {
    let mut by_role: BTreeMap<String, Vec<&Rule>> = BTreeMap::new();
    for r in rules {
        by_role.entry(r.role_arn.clone()).or_default().push(r);
    }
    let tag_keys: Vec<&str> = config.aws.tags.iter().map(|(k, _)| k.as_str()).collect();
    by_role
        .into_iter()
        .map(|(arn, rules)| {
            let (partition, account) = partition_and_account(&arn);
            let mut clusters: Vec<String> = rules
                .iter()
                .flat_map(|r| r.clusters.iter())
                .map(|(name, region)| {
                    format!("arn:{partition}:eks:{region}:{account}:cluster/{name}")
                })
                .chain(
                    rules
                        .iter()
                        .flat_map(|r| &r.discovery)
                        .flat_map(|d| discovery_arns(d, partition, account)),
                )
                .collect();
            clusters.sort();
            clusters.dedup();
            let describe = Statement::allow(
                "RoleshDescribeClusters",
                &["eks:DescribeCluster"],
                Some(clusters),
            );
            RolePolicies {
                trust_policy: trust_policy(&rules, bastion_role, &tag_keys),
                permissions_policy: PolicyDocument::new(vec![describe]),
                role_arn: arn,
            }
        })
        .collect()
}

/// An ARN's partition (`aws` if it has none) and account.
fn partition_and_account(arn: &str) -> (&str, &str) {
    let field = |n: usize| arn.split(':').nth(n);
    (field(1).unwrap_or("aws"), field(4).unwrap_or_default())
}

/// The clusters a `[[discovery]]` may take, as IAM resource ARNs: each region, each name
/// glob (a `[...]` class becomes `?`, IAM having no classes; `exclude` cannot be said).
fn discovery_arns(
    block: &crate::config::DiscoverySettings,
    partition: &str,
    account: &str,
) -> Vec<String> {
    let names: Vec<String> = match block.names.is_empty() {
        true => vec!["*".to_string()],
        false => block.names.iter().map(|g| iam_wildcard(&g.text)).collect(),
    };
    block
        .regions
        .iter()
        .flat_map(|region| {
            names
                .iter()
                .map(move |n| format!("arn:{partition}:eks:{region}:{account}:cluster/{n}"))
        })
        .collect()
}

/// A name glob in IAM's wildcards: `*` and `?` as they are, a `[...]` class as `?`.
fn iam_wildcard(glob: &str) -> String {
    let mut out = String::new();
    let mut in_class = false;
    for c in glob.chars() {
        match (in_class, c) {
            (false, '[') => {
                in_class = true;
                out.push('?');
            }
            (true, ']') => in_class = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

/// What the bastion's own role (the broker's base credentials) needs for `[[discovery]]`:
/// ListClusters, which IAM cannot narrow to a resource, and DescribeCluster on what each
/// block may take, where the cluster carries the block's tags. `None` without a block.
fn discovery_policy(config: &Config, bastion_role: &str) -> Option<PolicyDocument> {
    if config.discovery.is_empty() {
        return None;
    }
    let (partition, account) = partition_and_account(bastion_role);
    let list = Statement::allow(
        "RoleshDiscoveryList",
        &["eks:ListClusters"],
        Some(vec!["*".into()]),
    );
    let mut statements = vec![list];
    for d in &config.discovery {
        let mut describe = Statement::allow(
            &format!("RoleshDiscoveryDescribe{}", d.number),
            &["eks:DescribeCluster"],
            Some(discovery_arns(d, partition, account)),
        );
        for (key, value) in &d.tags {
            describe = describe.when(
                "StringEquals",
                &format!("aws:ResourceTag/{key}"),
                ConditionValue::One(value.clone()),
            );
        }
        statements.push(describe);
    }
    Some(PolicyDocument::new(statements))
}

/// What the bastion's own role needs for `[audit.s3]`: multipart uploads under its
/// prefix (any host's, `{hostname}` being `*`), with retention when object lock is asked
/// for; the bucket's existence and lock configuration for `check --describe`; the KMS key
/// for SSE-KMS. No read or delete: a bastion cannot take back what it recorded.
fn recordings_policy(config: &Config, bastion_role: &str) -> Option<PolicyDocument> {
    let s3 = config.audit.s3.as_ref()?;
    let (partition, _) = partition_and_account(bastion_role);
    let prefix = s3.prefix.replace("{hostname}", "*");
    let mut write = vec!["s3:PutObject", "s3:AbortMultipartUpload"];
    if s3.object_lock.is_some() {
        write.push("s3:PutObjectRetention");
    }
    let objects = format!("arn:{partition}:s3:::{}/{prefix}*", s3.bucket);
    let mut statements = vec![
        Statement::allow("RoleshRecordingsWrite", &write, Some(vec![objects])),
        Statement::allow(
            "RoleshRecordingsBucket",
            &["s3:ListBucket", "s3:GetBucketObjectLockConfiguration"],
            Some(vec![format!("arn:{partition}:s3:::{}", s3.bucket)]),
        ),
    ];
    if let Some(key) = &s3.kms_key_id {
        statements.push(Statement::allow(
            "RoleshRecordingsKms",
            &["kms:GenerateDataKey", "kms:Decrypt"],
            Some(vec![key.clone()]),
        ));
    }
    Some(PolicyDocument::new(statements))
}

/// The bastion's role may assume this role, set the source identity and tag the session;
/// a per-user role only under that user's name, any other only with a source identity set.
fn trust_policy(rules: &[&Rule], bastion_role: &str, tag_keys: &[&str]) -> PolicyDocument {
    let mut statement = Statement::allow(
        "RoleshBastion",
        &["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        None,
    );
    statement.principal = Some(Principal {
        aws: bastion_role.into(),
    });
    let users: Vec<&(String, String)> = rules.iter().filter_map(|r| r.user.as_ref()).collect();
    statement = if users.len() == rules.len() {
        let sessions = users.iter().map(|u| u.0.clone()).collect();
        let sources = users.iter().map(|u| u.1.clone()).collect();
        statement
            .when(
                "StringEquals",
                "sts:RoleSessionName",
                ConditionValue::Many(sessions),
            )
            .when(
                "StringEquals",
                "sts:SourceIdentity",
                ConditionValue::Many(sources),
            )
    } else {
        statement.when(
            "Null",
            "sts:SourceIdentity",
            ConditionValue::One("false".into()),
        )
    };
    if !tag_keys.is_empty() {
        let keys = tag_keys.iter().map(|k| k.to_string()).collect();
        statement = statement.when(
            "ForAllValues:StringEquals",
            "aws:TagKeys",
            ConditionValue::Many(keys),
        );
    }
    PolicyDocument::new(vec![statement])
}

/// A `v1 List` of Kubernetes objects (`--format json`), what `kubectl apply -f -` takes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a> {
    api_version: &'static str,
    kind: &'static str,
    items: &'a [KubeObject],
}

/// Kubernetes objects as `kubectl apply -f -` takes them: a YAML stream, or a `v1 List`.
pub(crate) fn kubernetes_text(objects: &[KubeObject], json: bool) -> String {
    if json {
        let list = List {
            api_version: "v1",
            kind: "List",
            items: objects,
        };
        return pretty(&list);
    }
    yaml_stream(objects)
}

/// Something that is not a Kubernetes object (IAM, access entries), as JSON or YAML.
pub(crate) fn document_text<T: Serialize>(value: &T, json: bool) -> String {
    if json {
        pretty(value)
    } else {
        serde_yaml_ng::to_string(value).unwrap_or_default()
    }
}

/// `--out DIR`: files to apply or paste: `kubernetes/rbac.yaml`, `kubernetes/aws-auth.yaml`
/// or `eks/access-entries.json`, and `iam/ROLE.trust.json` + `iam/ROLE.permissions.json`.
pub(crate) fn files(g: &Generated) -> Vec<(String, String)> {
    let (config_maps, rbac): (Vec<KubeObject>, Vec<KubeObject>) = g
        .kubernetes
        .iter()
        .cloned()
        .partition(|o| matches!(o, KubeObject::ConfigMap(_)));
    let mut files = vec![("kubernetes/rbac.yaml".to_string(), yaml_stream(&rbac))];
    if !config_maps.is_empty() {
        files.push(("kubernetes/aws-auth.yaml".into(), yaml_stream(&config_maps)));
    }
    if let Some(entries) = &g.access_entries {
        files.push(("eks/access-entries.json".into(), pretty(entries)));
    }
    for i in &g.impersonation {
        files.push((
            format!("kubernetes/impersonation-{}.yaml", i.cluster),
            yaml_stream(&i.objects),
        ));
    }
    if let Some(policy) = &g.discovery {
        files.push(("iam/bastion.discovery.json".into(), pretty(policy)));
    }
    if let Some(policy) = &g.recordings {
        files.push(("iam/bastion.recordings.json".into(), pretty(policy)));
    }
    for role in &g.iam {
        let name = values::role_name(&role.role_arn).to_string();
        files.push((format!("iam/{name}.trust.json"), pretty(&role.trust_policy)));
        files.push((
            format!("iam/{name}.permissions.json"),
            pretty(&role.permissions_policy),
        ));
    }
    files
}

fn pretty<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Kubernetes objects as a YAML stream, `kubectl apply -f` ready.
fn yaml_stream(docs: &[KubeObject]) -> String {
    let mut out = String::from(
        "# Generated by `rolesh rbac` from the rolesh configuration; regenerate, do not edit.\n",
    );
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d).unwrap_or_default());
    }
    out
}
