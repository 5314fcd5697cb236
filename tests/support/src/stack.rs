//! A whole fake environment for rolesh: a fake AWS and two fake EKS clusters (`demo` in
//! us-east-1, `staging` in eu-west-1) on 127.0.0.1, with the files rolesh and its tests need
//! written to a directory:
//!
//! - `env`: `export` lines for AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS, AWS_ACCESS_KEY_ID,
//!   AWS_SECRET_ACCESS_KEY (the fake's base credentials), AWS_REGION, AWS_DEFAULT_REGION.
//!   Written last: its presence means everything is up.
//! - `config.toml`: a rolesh configuration (`rolesh check --config DIR/config.toml` accepts
//!   it) whose STS is the fake, mapping every user to `role/bastion-{user}`, with both
//!   clusters (endpoint + CA data) and their namespace allowlists; the first cluster's first
//!   namespace (`web`) holds running pods matching its selectors.
//! - `rbac.yaml`: what both clusters enforce: the aws-auth ConfigMap (`role/bastion-*` →
//!   username `{{SessionName}}`, group `rolesh:bastion-users`; `role/platform-admin` →
//!   `admin:{{SessionName}}` in `system:masters`) and, in every allowlisted namespace, a Role
//!   letting `rolesh:bastion-users` get/list/watch pods and exec into them (`kubectl exec`
//!   reads the pod first), and nothing else.
//! - `ca-demo.pem`, `ca-staging.pem`: the clusters' CAs.
//! - with `onprem` ([`Stack::start_with_onprem`], and `rolesh-testkit up`): a third cluster
//!   that is not EKS, its `[[cluster]]` in `config.toml` and the broker's token for it in
//!   `onprem.token` (0600).
//! - with `[[discovery]]` ([`StackOptions::discovery`], `rolesh-testkit up --discovery`):
//!   `config.toml` finds the EKS clusters by tag instead of naming them (onprem's
//!   `[[cluster]]` is then `config.d/50-onprem.toml`; read the stack as `--config DIR`).
//!
//! `rolesh-testkit up --dir DIR` runs a stack in the background (and writes `DIR/pid`);
//! `rolesh-testkit down --dir DIR` stops it.

use crate::fake_aws::{DEFAULT_ACCOUNT_ID, EksCluster, FakeAws, FakeAwsOptions};
use crate::fake_k8s::{FakeK8s, FakeK8sOptions, Fixture};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// A cluster of the stack and its namespace allowlist.
#[derive(Clone, Debug)]
pub struct StackCluster {
    /// Cluster name.
    pub name: &'static str,
    /// Region.
    pub region: &'static str,
    /// Allowlisted namespaces and their selectors (OR-ed).
    pub namespaces: Vec<(&'static str, Vec<&'static str>)>,
}

/// The clusters every stack has.
pub fn clusters() -> Vec<StackCluster> {
    vec![
        StackCluster {
            name: "demo",
            region: "us-east-1",
            namespaces: vec![
                ("web", vec!["app=frontend", "tier in (web,edge)"]),
                ("jobs", vec![]),
            ],
        },
        StackCluster {
            name: "staging",
            region: "eu-west-1",
            namespaces: vec![("web", vec!["app=frontend"]), ("jobs", vec![])],
        },
    ]
}

/// The group `rolesh:bastion-users` that the stack's aws-auth puts every bastion user in.
pub const BASTION_GROUP: &str = "rolesh:bastion-users";
/// The role every user is mapped to by the stack's config (`{user}` is the Unix user).
pub const BASTION_ROLE_TEMPLATE: &str = "arn:aws:iam::123456789012:role/bastion-{user}";

/// The cluster that is not EKS (`rolesh-testkit up`, [`Stack::start_with_onprem`]).
pub const ONPREM: &str = "onprem";
/// Who the `onprem` cluster knows the broker's token as.
pub const ONPREM_BROKER: &str = "rolesh-broker";
/// The group the broker impersonates for the stack's users (its config maps them with
/// `default_role`).
pub const ONPREM_GROUP: &str = "rolesh:default";

/// A running stack; stops when dropped.
#[derive(Debug)]
pub struct Stack {
    dir: PathBuf,
    aws: FakeAws,
    clusters: Vec<FakeK8s>,
    onprem: Option<FakeK8s>,
}

impl Stack {
    /// Starts the fake AWS and the clusters (each on its own runtime thread) and writes the
    /// files into `dir` (created if missing; `env` last).
    pub fn start(dir: &Path) -> io::Result<Self> {
        Self::start_with(dir, StackOptions::default())
    }

    /// Like [`Stack::start`], plus `onprem`: a cluster that is not EKS. Its API server
    /// authenticates one bearer token, written to `onprem.token` (mode 0600, owned by whoever
    /// runs the stack), as `rolesh-broker`, whom its RBAC lets impersonate any user in group
    /// `rolesh:default` (with the extras `rolesh.io/session-id` and `rolesh.io/bastion`);
    /// that group may read pods and exec and port-forward into them in its namespaces. Its
    /// `[[cluster]]` (kind `kubernetes`, through the API proxy) is in `config.toml`.
    pub fn start_with_onprem(dir: &Path) -> io::Result<Self> {
        Self::start_with(
            dir,
            StackOptions {
                onprem: true,
                ..StackOptions::default()
            },
        )
    }

    /// A stack with what `options` asks for besides its two EKS clusters.
    pub fn start_with(dir: &Path, options: StackOptions) -> io::Result<Self> {
        let StackOptions { onprem, discovery } = options;
        std::fs::create_dir_all(dir)?;
        match std::fs::remove_file(dir.join("env")) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let specs = clusters();
        let rbac = rbac_yaml(&specs);
        let aws = FakeAws::start_in_background(FakeAwsOptions::default())?;
        let mut running = Vec::new();
        for spec in &specs {
            let options = FakeK8sOptions::new(spec.name, aws.handle().clone())
                .with_fixture(Fixture::default_cluster())
                .with_rbac_yaml(&rbac)
                .map_err(io::Error::other)?;
            let k8s = FakeK8s::start_in_background(options)?;
            aws.handle().add_cluster(
                EksCluster::new(spec.name, k8s.endpoint(), k8s.ca_data())
                    .in_region(spec.region)
                    .with_tag(DISCOVERY_TAG.0, DISCOVERY_TAG.1),
            );
            write_atomically(&dir.join(format!("ca-{}.pem", spec.name)), k8s.ca_pem())?;
            running.push(k8s);
        }
        let onprem = match onprem {
            true => Some(start_onprem(dir, &aws)?),
            false => None,
        };
        let stack = Self {
            dir: dir.to_owned(),
            aws,
            clusters: running,
            onprem,
        };
        write_atomically(&dir.join("rbac.yaml"), &rbac)?;
        if discovery {
            add_undiscovered_clusters(&stack.aws);
        }
        let mut config = stack.config_toml(&specs, discovery);
        if let Some(k8s) = &stack.onprem {
            let onprem = onprem_toml(k8s, &dir.join("onprem.token"));
            match discovery {
                // config.toml holds `[[discovery]]` alone; onprem, which no EKS lists, is a
                // drop-in (the stack is then read as `--config DIR`).
                true => {
                    std::fs::create_dir_all(dir.join("config.d"))?;
                    write_atomically(&dir.join("config.d/50-onprem.toml"), &onprem)?;
                }
                false => config.push_str(&onprem),
            }
        }
        write_atomically(&dir.join("config.toml"), &config)?;
        write_atomically(&dir.join("env"), &stack.env_file())?;
        Ok(stack)
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fake AWS.
    pub fn aws(&self) -> &FakeAws {
        &self.aws
    }

    /// The clusters, `demo` first.
    pub fn clusters(&self) -> &[FakeK8s] {
        &self.clusters
    }

    /// The cluster `name` (`onprem` included, when it runs).
    pub fn cluster(&self, name: &str) -> Option<&FakeK8s> {
        self.clusters
            .iter()
            .chain(&self.onprem)
            .find(|c| c.cluster_name() == name)
    }

    /// The environment `env` holds, as pairs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let options = self.aws.options();
        vec![
            ("AWS_ENDPOINT_URL", self.aws.endpoint()),
            ("AWS_ENDPOINT_URL_STS", self.aws.endpoint()),
            ("AWS_ACCESS_KEY_ID", options.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", options.secret_access_key.clone()),
            ("AWS_REGION", options.region.clone()),
            ("AWS_DEFAULT_REGION", options.region.clone()),
        ]
    }

    fn env_file(&self) -> String {
        self.env()
            .iter()
            .map(|(name, value)| format!("export {name}={value}\n"))
            .collect()
    }

    fn config_toml(&self, specs: &[StackCluster], discovery: bool) -> String {
        let mut toml = format!(
            "# Written by rolesh-testkit: a fake AWS at {aws} and fake EKS clusters on 127.0.0.1.\n\
             # Every user maps to role/bastion-USER; the clusters' RBAC (rbac.yaml) lets them list\n\
             # pods and exec in the namespaces below, and nothing else.\n\n\
             [aws]\nregion = \"{region}\"\nsts_endpoint = \"{aws}\"\n\n\
             [mapping]\ndeny_users = [\"root\"]\ndefault_role = \"{BASTION_ROLE_TEMPLATE}\"\n",
            aws = self.aws.endpoint(),
            region = self.aws.options().region,
        );
        if discovery {
            toml.push_str(&discovery_toml(specs));
            return toml;
        }
        for (spec, k8s) in specs.iter().zip(&self.clusters) {
            let _ = write!(
                toml,
                "\n[[cluster]]\nname = \"{}\"\nregion = \"{}\"\nendpoint = \"{}\"\n\
                 certificate_authority_data = \"{}\"\ndefault_namespace = \"{}\"\n",
                spec.name,
                spec.region,
                k8s.endpoint(),
                k8s.ca_data(),
                spec.namespaces[0].0
            );
            namespaces_toml(&mut toml, "cluster", spec);
        }
        toml
    }
}

/// What a stack runs besides its two EKS clusters.
#[derive(Clone, Copy, Debug, Default)]
pub struct StackOptions {
    /// `onprem`, a cluster that is not EKS (see [`Stack::start_with_onprem`]).
    pub onprem: bool,
    /// The EKS clusters found by `[[discovery]]` instead of written as `[[cluster]]`s:
    /// `config.toml` has no EKS `[[cluster]]`, and the fake EKS also holds `next` (still
    /// `CREATING`), `demo-sandbox` (excluded by name) and `untagged` (without the tag),
    /// none of which any user sees.
    pub discovery: bool,
}

/// The tag every cluster of a stack carries, which its `[[discovery]]` blocks ask for.
pub const DISCOVERY_TAG: (&str, &str) = ("rolesh-testkit", "stack");

/// The clusters of a discovering stack's fake EKS that its blocks leave out, each for its
/// own reason (none has an API server).
fn add_undiscovered_clusters(aws: &FakeAws) {
    let nowhere = ("https://127.0.0.1:1", "bm93aGVyZQ==");
    let tagged = |name: &str| {
        EksCluster::new(name, nowhere.0, nowhere.1).with_tag(DISCOVERY_TAG.0, DISCOVERY_TAG.1)
    };
    aws.handle()
        .add_cluster(tagged("next").with_status("CREATING"));
    aws.handle().add_cluster(tagged("demo-sandbox"));
    aws.handle()
        .add_cluster(EksCluster::new("untagged", nowhere.0, nowhere.1));
}

/// `[[discovery]]` for the stack's clusters: `demo` by its own block (the demo script makes
/// it reached through the proxy), every other tagged cluster but the sandboxes by a second,
/// with the namespace allowlists of [`clusters`].
fn discovery_toml(specs: &[StackCluster]) -> String {
    let regions: Vec<String> = specs.iter().map(|s| format!("{:?}", s.region)).collect();
    let mut toml = String::new();
    for (spec, names) in [
        (&specs[0], "names = [\"demo\"]"),
        (&specs[1], "exclude = [\"*-sandbox\"]"),
    ] {
        let _ = write!(
            toml,
            "\n[[discovery]]\nregions = [{}]\ntags = {{ {} = {:?} }}\n{names}\ndefault_namespace = \"{}\"\n",
            regions.join(", "),
            DISCOVERY_TAG.0,
            DISCOVERY_TAG.1,
            spec.namespaces[0].0
        );
        namespaces_toml(&mut toml, "discovery", spec);
    }
    toml
}

/// `[[TABLE.namespace]]` for each of `spec`'s namespaces, with its selectors.
fn namespaces_toml(toml: &mut String, table: &str, spec: &StackCluster) {
    for (namespace, selectors) in &spec.namespaces {
        let _ = write!(toml, "\n[[{table}.namespace]]\nname = \"{namespace}\"\n");
        if !selectors.is_empty() {
            let quoted: Vec<String> = selectors.iter().map(|s| format!("{s:?}")).collect();
            let _ = writeln!(toml, "selectors = [{}]", quoted.join(", "));
        }
    }
}

/// The `onprem` cluster and its token file.
fn start_onprem(dir: &Path, aws: &FakeAws) -> io::Result<FakeK8s> {
    use std::os::unix::fs::PermissionsExt;
    let token = random_token()?;
    let path = dir.join("onprem.token");
    let partial = dir.join(".onprem.token.partial");
    std::fs::write(&partial, format!("{token}\n"))?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&partial, &path)?;
    let options = FakeK8sOptions::new(ONPREM, aws.handle().clone())
        .with_fixture(Fixture::default_cluster())
        .with_rbac_yaml(&onprem_rbac_yaml())
        .map_err(io::Error::other)?;
    // Not EKS: no aws-auth, no EKS tokens; the broker's token alone.
    let mut options = options.with_static_token(token, ONPREM_BROKER);
    options.identity_mappings.clear();
    FakeK8s::start_in_background(options)
}

/// 32 random bytes, hex.
fn random_token() -> io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `onprem`'s `[[cluster]]`.
fn onprem_toml(k8s: &FakeK8s, token: &Path) -> String {
    format!(
        "\n[[cluster]]\nname = \"{ONPREM}\"\nkind = \"kubernetes\"\naccess = \"proxy\"\n\
         endpoint = \"{}\"\ncertificate_authority_data = \"{}\"\ndefault_namespace = \"web\"\n\
         credentials.token_file = \"{}\"\ncredentials.identity = \"{ONPREM_BROKER}\"\n\n\
         [[cluster.namespace]]\nname = \"web\"\nselectors = [\"app=frontend\", \"tier in (web,edge)\"]\n\n\
         [[cluster.namespace]]\nname = \"jobs\"\n",
        k8s.endpoint(),
        k8s.ca_data(),
        token.display()
    )
}

/// `onprem`'s RBAC: the broker may impersonate users in `rolesh:default` (the stack's users
/// are made by the tests, so any user name), who may read pods and exec and port-forward
/// in `web` and `jobs`.
pub fn onprem_rbac_yaml() -> String {
    let mut yaml = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
         metadata: {{name: \"rolesh:impersonator\"}}\nrules:\n\
         - {{apiGroups: [\"\"], resources: [users], verbs: [impersonate]}}\n\
         - {{apiGroups: [\"\"], resources: [groups], resourceNames: [\"{ONPREM_GROUP}\"], verbs: [impersonate]}}\n\
         - {{apiGroups: [authentication.k8s.io], resources: [userextras/rolesh.io/session-id, userextras/rolesh.io/bastion], verbs: [impersonate]}}\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n\
         metadata: {{name: \"rolesh:impersonator\"}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: \"rolesh:impersonator\"}}\n\
         subjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {ONPREM_BROKER}}}\n"
    );
    for namespace in ["web", "jobs"] {
        let _ = write!(
            yaml,
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n\
             metadata: {{name: rolesh-users, namespace: {namespace}}}\nrules:\n\
             - {{apiGroups: [\"\"], resources: [pods], verbs: [get, list, watch]}}\n\
             - {{apiGroups: [\"\"], resources: [pods/exec, pods/portforward], verbs: [create]}}\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
             metadata: {{name: rolesh-users, namespace: {namespace}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: rolesh-users}}\n\
             subjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"{ONPREM_GROUP}\"}}\n"
        );
    }
    yaml
}

/// The RBAC both clusters of the stack enforce (see the module docs).
pub fn rbac_yaml(specs: &[StackCluster]) -> String {
    let mut yaml = format!(
        "# Written by rolesh-testkit. aws-auth: role/bastion-* -> {{{{SessionName}}}} in {BASTION_GROUP};\n\
         # role/platform-admin -> admin:{{{{SessionName}}}} in system:masters.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\n\
         data:\n  mapRoles: |\n\
         \x20   - rolearn: arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/platform-admin\n\
         \x20     username: \"admin:{{{{SessionName}}}}\"\n\
         \x20     groups: [\"system:masters\"]\n\
         \x20   - rolearn: arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/bastion-*\n\
         \x20     username: \"{{{{SessionName}}}}\"\n\
         \x20     groups: [\"{BASTION_GROUP}\"]\n"
    );
    let mut namespaces: Vec<&str> = specs
        .iter()
        .flat_map(|s| s.namespaces.iter().map(|(n, _)| *n))
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    for namespace in namespaces {
        let _ = write!(
            yaml,
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n\
             metadata: {{name: rolesh-bastion, namespace: {namespace}}}\nrules:\n\
             - {{apiGroups: [\"\"], resources: [pods], verbs: [get, list, watch]}}\n\
             - {{apiGroups: [\"\"], resources: [pods/exec, pods/portforward], verbs: [create]}}\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
             metadata: {{name: rolesh-bastion, namespace: {namespace}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: rolesh-bastion}}\n\
             subjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"{BASTION_GROUP}\"}}\n"
        );
    }
    yaml
}

/// Writes a file so that a reader never sees it half-written.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&partial, contents)?;
    std::fs::rename(partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_k8s::{Authorizer, IdentityMapping};

    #[test]
    fn the_stack_rbac_grants_pods_and_exec_in_allowlisted_namespaces_only() {
        let yaml = rbac_yaml(&clusters());
        let rbac = Authorizer::from_yaml(&yaml).expect("valid RBAC");
        let groups = vec![BASTION_GROUP.to_owned(), "system:authenticated".to_owned()];
        for ns in ["web", "jobs"] {
            assert!(rbac.allows("alice", &groups, "list", "", "pods", "", ns, ""));
            assert!(rbac.allows("alice", &groups, "get", "", "pods", "", ns, "p"));
            assert!(rbac.allows("alice", &groups, "create", "", "pods", "exec", ns, "p"));
            assert!(!rbac.allows("alice", &groups, "delete", "", "pods", "", ns, "p"));
            assert!(!rbac.allows("alice", &groups, "get", "", "secrets", "", ns, "s"));
            assert!(!rbac.allows("alice", &groups, "get", "", "pods", "log", ns, "p"));
        }
        assert!(!rbac.allows("alice", &groups, "list", "", "pods", "", "kube-system", ""));
        assert!(!rbac.allows("alice", &groups, "list", "", "pods", "", "", ""));
        assert!(!rbac.allows("alice", &groups, "list", "", "namespaces", "", "", ""));
        let mappings = IdentityMapping::from_aws_auth_yaml(&yaml).expect("aws-auth");
        assert_eq!(mappings.len(), 2);
        assert_eq!(mappings[1].username, "{{SessionName}}");
    }
}
