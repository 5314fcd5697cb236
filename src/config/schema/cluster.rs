//! `[[cluster]]`: the clusters users may reach, their CA, and namespace allowlists.

use std::path::PathBuf;

use super::super::diag::{At, Loc};
use super::super::tree::Node;
use super::super::{
    AwsSettings, CertificateAuthority, ClusterRoute, ClusterSettings, NamespaceSettings, Selector,
    values,
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
        let region = match f.string("region") {
            Some(r) => self.checked(&r.loc, values::region(&r)).map(|_| r.value),
            None => aws.map(|a| a.region.clone()),
        };
        let endpoint = f.string("endpoint");
        if let Some(e) = &endpoint {
            self.checked(&e.loc, values::endpoint_url(e));
        }
        let ca = self.certificate_authority(f, endpoint.as_ref());
        let namespaces = f
            .get("namespace")
            .map(|n| self.namespaces(n, &f.path))
            .unwrap_or_default();
        let default_namespace = f.string("default_namespace");
        if let Some(ns) = &default_namespace
            && !namespaces.is_empty()
            && !namespaces.iter().any(|n| n.name == ns.value)
        {
            self.error(&ns.loc, format!("default namespace {:?} is not one of this cluster's [[cluster.namespace]] entries", ns.value));
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
        Some(ClusterSettings {
            name: String::new(),
            region: region?,
            endpoint: endpoint.map(|e| e.value.trim_end_matches('/').to_string()),
            certificate_authority: ca,
            default_namespace: default_namespace.map(|n| n.value),
            groups,
            namespaces,
            access,
            origin: String::new(),
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
