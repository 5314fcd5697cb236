//! `[[cluster]]`: the clusters users may reach, their CA, and namespace allowlists.

use std::path::PathBuf;

use super::super::diag::{At, Loc};
use super::super::tree::Node;
use super::super::{
    AwsSettings, CertificateAuthority, ClusterCredentials, ClusterKind, ClusterRoute,
    ClusterSettings, CredentialSource, NamespaceSettings, Selector, values,
};
use super::mapping::namespace_name;
use super::read::{Fields, Reader};

impl Reader {
    pub(super) fn clusters(
        &self,
        node: Option<&Node>,
        aws: Option<&AwsSettings>,
    ) -> Vec<ClusterSettings> {
        let Some(node) = node else { return vec![] };
        let mut clusters: Vec<ClusterSettings> = Vec::new();
        let mut seen: Vec<(String, Loc)> = Vec::new();
        for f in self.tables(node, "cluster") {
            let name = f.required_string("name").filter(|name| {
                self.checked(&name.loc, values::cluster_name(name))
                    .is_some()
            });
            let duplicate = name.as_ref().and_then(|name| {
                let first = seen
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, first)| first.clone());
                match &first {
                    Some(first) => self.error(&name.loc, format!("cluster name {:?} is already used at {first}; cluster names must be unique (ignoring case)", name.value)),
                    None => seen.push((name.value.clone(), name.loc.clone())),
                }
                first
            });
            // Read even without a usable name, or as a duplicate: its other errors count too.
            let cluster = self.cluster(&f, aws);
            if let (Some(name), Some(mut cluster), None) = (name, cluster, duplicate) {
                cluster.origin = name.loc.to_string();
                cluster.name = name.value;
                clusters.push(cluster);
            }
        }
        clusters
    }

    /// Everything of one `[[cluster]]` but its name.
    fn cluster(&self, f: &Fields<'_>, aws: Option<&AwsSettings>) -> Option<ClusterSettings> {
        let kind = f
            .word("kind", ClusterKind::parse, ClusterKind::choices)
            .unwrap_or(ClusterKind::Eks);
        let region = match f.string("region") {
            Some(r) => self.checked(&r.loc, values::region(&r)).map(|_| r.value),
            None => aws.map(|a| a.region.clone()),
        };
        // A cluster that is not EKS has no region to speak of; its events say the bastion's.
        let region = match kind {
            ClusterKind::Eks => region,
            ClusterKind::Kubernetes => Some(region.unwrap_or_default()),
        };
        let credentials = f
            .get("credentials")
            .and_then(|node| self.credentials(node, &f.key_path("credentials")));
        let endpoint = f.string("endpoint");
        if let Some(e) = &endpoint {
            self.checked(&e.loc, values::endpoint_url(e));
        }
        let ca = self.certificate_authority(f, endpoint.as_ref());
        let reach = self.reach(f, "cluster", aws);
        self.kind_fits(
            f,
            kind,
            reach.access,
            endpoint.is_some(),
            credentials.is_some(),
        );
        Some(ClusterSettings {
            name: String::new(),
            region: region?,
            endpoint: endpoint.map(|e| e.value.trim_end_matches('/').to_string()),
            certificate_authority: ca,
            default_namespace: reach.default_namespace,
            groups: reach.groups,
            namespaces: reach.namespaces,
            access: reach.access,
            kind,
            credentials,
            origin: String::new(),
            discovered: None,
        })
    }

    /// What a `[[cluster]]` or a `[[discovery]]` (`section`) says of how its clusters are
    /// reached: the namespace allowlist, the default namespace, who sees them, and the route.
    pub(super) fn reach(&self, f: &Fields<'_>, section: &str, aws: Option<&AwsSettings>) -> Reach {
        let namespaces = f
            .get("namespace")
            .map(|n| self.namespaces(n, &f.path))
            .unwrap_or_default();
        let default_namespace = f.string("default_namespace");
        if let Some(ns) = &default_namespace
            && !namespaces.is_empty()
            && !namespaces.iter().any(|n| n.name == ns.value)
        {
            self.error(&ns.loc, format!("default namespace {:?} is not one of this {section}'s [[{section}.namespace]] entries", ns.value));
        }
        let groups = f.strings("groups").map(|gs| {
            gs.into_iter()
                .filter(|g| {
                    self.checked(&g.loc, values::account_name("group", g))
                        .is_some()
                })
                .map(|g| g.value)
                .collect()
        });
        let access = f
            .word("access", ClusterRoute::parse, ClusterRoute::choices)
            .unwrap_or(ClusterRoute::Direct);
        if access == ClusterRoute::Proxy
            && aws.is_some_and(|a| a.expose_credentials)
            && let Some(at) = f.string("access")
        {
            self.error(&at.loc, "`access = \"proxy\"` cannot go with `[aws] expose_credentials = true`: sessions would hold the role's credentials, and `aws eks get-token` reaches the cluster around the proxy");
        }
        Reach {
            default_namespace: default_namespace.map(|n| n.value),
            groups,
            namespaces,
            access,
        }
    }

    /// What a `kind` asks of the rest of its `[[cluster]]`.
    fn kind_fits(
        &self,
        f: &Fields<'_>,
        kind: ClusterKind,
        access: ClusterRoute,
        has_endpoint: bool,
        has_credentials: bool,
    ) {
        let at = |key: &str| f.get(key).map(|n| n.loc.clone()).unwrap_or(f.loc.clone());
        match kind {
            ClusterKind::Eks if has_credentials => self.error(&at("credentials"), "`credentials` are for `kind = \"kubernetes\"`: an EKS cluster is reached with each user's own role"),
            ClusterKind::Eks => {}
            ClusterKind::Kubernetes => {
                if access != ClusterRoute::Proxy {
                    self.error(&at("kind"), "a `kind = \"kubernetes\"` cluster needs `access = \"proxy\"`: the broker holds its credential and impersonates each user, so kubectl reaches it only through the broker's API proxy");
                }
                if !has_endpoint {
                    self.error(&at("kind"), "a `kind = \"kubernetes\"` cluster needs `endpoint` and its CA (`ca_file` or `certificate_authority_data`): there is no DescribeCluster to ask");
                }
                if !has_credentials && f.get("credentials").is_none() {
                    self.error(&at("kind"), "a `kind = \"kubernetes\"` cluster needs `[cluster.credentials]`: the broker's own `kubeconfig`, `token_file`, or `client_certificate` and `client_key`");
                }
            }
        }
    }

    /// `[cluster.credentials]`: exactly one source, in files only root or the broker's user
    /// owns and only their owner may read.
    fn credentials(&self, node: &Node, path: &str) -> Option<ClusterCredentials> {
        let f = self.table(node, path)?;
        let kubeconfig = f.absolute_path("kubeconfig");
        let context = f.string("context");
        let token_file = f.absolute_path("token_file");
        let certificate = f.absolute_path("client_certificate");
        let key = f.absolute_path("client_key");
        let identity = f.string("identity");
        if let Some(i) = &identity {
            self.checked(&i.loc, values::kube_user_name(i));
        }
        let files: Vec<&At<String>> = [&kubeconfig, &token_file, &certificate, &key]
            .into_iter()
            .flatten()
            .collect();
        for file in &files {
            self.checked(
                &file.loc,
                super::super::credential_file(std::path::Path::new(&file.value)),
            );
        }
        if let (Some(c), None) = (&context, &kubeconfig) {
            self.error(
                &c.loc,
                "`context` names a context of `kubeconfig`: set `kubeconfig` too",
            );
        }
        let source = match (kubeconfig, token_file, certificate, key) {
            (Some(k), None, None, None) => CredentialSource::Kubeconfig {
                path: PathBuf::from(&k.value),
                context: context.map(|c| c.value),
            },
            (None, Some(t), None, None) => CredentialSource::TokenFile(PathBuf::from(&t.value)),
            (None, None, Some(c), Some(k)) => CredentialSource::ClientCertificate {
                certificate: PathBuf::from(&c.value),
                key: PathBuf::from(&k.value),
            },
            (None, None, Some(c), None) => {
                self.error(&c.loc, "`client_certificate` needs its `client_key`");
                return None;
            }
            (None, None, None, Some(k)) => {
                self.error(&k.loc, "`client_key` needs its `client_certificate`");
                return None;
            }
            (None, None, None, None) => {
                self.error(&node.loc, format!("[{path}] needs one of `kubeconfig`, `token_file`, or `client_certificate` with `client_key`"));
                return None;
            }
            _ => {
                self.error(&node.loc, format!("[{path}] takes one credential: `kubeconfig`, `token_file`, or `client_certificate` with `client_key`, not several"));
                return None;
            }
        };
        Some(ClusterCredentials {
            source,
            identity: identity.map_or_else(|| DEFAULT_IDENTITY.to_string(), |i| i.value),
            origin: node.loc.to_string(),
        })
    }

    fn certificate_authority(
        &self,
        f: &Fields<'_>,
        endpoint: Option<&At<String>>,
    ) -> Option<CertificateAuthority> {
        let data = f.string("certificate_authority_data");
        let file = f.string("ca_file");
        let ca = match (&data, &file) {
            (Some(d), Some(_)) => {
                self.error(
                    &d.loc,
                    "set either `certificate_authority_data` or `ca_file`, not both",
                );
                None
            }
            (Some(d), None) => self.checked(&d.loc, certificate_data(d)),
            (None, Some(p)) if p.value.starts_with('/') => {
                // It decides whom the broker trusts with a token: no one else may write it
                // (a file not there yet is the broker's error when it is needed).
                let path = PathBuf::from(&p.value);
                match path.exists() {
                    true => self
                        .checked(&p.loc, super::super::trusted_file(&path, false))
                        .map(|_| CertificateAuthority::File(path)),
                    false => Some(CertificateAuthority::File(path)),
                }
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

    fn namespaces(&self, node: &Node, cluster_path: &str) -> Vec<NamespaceSettings> {
        let path = format!("{cluster_path}.namespace");
        let mut out: Vec<NamespaceSettings> = Vec::new();
        for f in self.tables(node, &path) {
            // Selectors are checked even when the name is wrong: every error at once.
            let selectors: Vec<Selector> = f
                .strings("selectors")
                .unwrap_or_default()
                .iter()
                .filter_map(|s| {
                    let parsed = Selector::parse(s)
                        .map_err(|e| format!("invalid selector {:?}: {e}", s.value));
                    self.checked(&s.loc, parsed)
                })
                .collect();
            let Some(name) = f.required_string("name") else {
                continue;
            };
            if self.checked(&name.loc, namespace_name(&name)).is_none() {
                continue;
            }
            if out.iter().any(|n| n.name == name.value) {
                self.error(
                    &name.loc,
                    format!("namespace {:?} is listed twice in this cluster", name.value),
                );
                continue;
            }
            out.push(NamespaceSettings {
                name: name.value,
                selectors,
            });
        }
        out
    }
}

/// How the clusters of a `[[cluster]]` or `[[discovery]]` are reached, and by whom.
pub(super) struct Reach {
    pub(super) default_namespace: Option<String>,
    pub(super) groups: Option<Vec<String>>,
    pub(super) namespaces: Vec<NamespaceSettings>,
    pub(super) access: ClusterRoute,
}

/// The name a `kubernetes` cluster knows the broker's credential by, unless
/// `credentials.identity` says otherwise.
pub(crate) const DEFAULT_IDENTITY: &str = "rolesh-broker";

/// `certificate_authority_data`: base64 of a PEM certificate, as in a kubeconfig.
fn certificate_data(data: &str) -> Result<CertificateAuthority, String> {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(data.trim());
    match decoded {
        Ok(bytes) if String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") => {
            Ok(CertificateAuthority::Data(data.trim().to_string()))
        }
        _ => Err("`certificate_authority_data` must be a base64-encoded PEM certificate (as in a kubeconfig)".into()),
    }
}
