//! What the broker answers. Fields a client needs are required: `Option`s too must be
//! present (`null` for none), so a malformed answer is an error, not a default.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use rolesh_token_core::wire::{ExecCredential, Token};

use crate::config::values::required;
use crate::config::{AccessLevel, ClusterRoute, NamespaceSettings, SessionSettings};

/// `whoami`: the account the kernel says is asking, and what the mapping grants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Whoami {
    pub user: String,
    pub uid: u32,
    #[serde(flatten)]
    pub grant: Grant,
}

/// A mapped user: the role to assume, as whom, and what the session may reach. Also what
/// `rolesh explain --json` prints. Holds no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// Which rule matched, e.g. `mapping.users.alice`.
    pub rule: String,
    /// Where that rule is written (`PATH:LINE:COL`).
    pub origin: String,
    pub role_arn: String,
    /// Kubernetes access level (what `rolesh rbac` binds for this rule).
    pub access: AccessLevel,
    /// Where that access applies; `None` is cluster-wide.
    #[serde(rename = "access_namespaces", deserialize_with = "required")]
    pub namespaces: Option<Vec<String>>,
    pub session_name: String,
    pub source_identity: String,
    /// STS session tags, in the configuration's order.
    #[serde(with = "ordered_pairs")]
    pub tags: Vec<(String, String)>,
    pub clusters: Vec<ClusterView>,
    pub session: SessionSettings,
    /// Where the `[[session.override]]` that applied is written, if one did.
    #[serde(deserialize_with = "required")]
    pub session_override: Option<String>,
}

impl Grant {
    pub fn cluster(&self, name: &str) -> Option<&ClusterView> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// A cluster as a user may see it: its namespace allowlist and each namespace's selectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    pub region: String,
    #[serde(deserialize_with = "required")]
    pub default_namespace: Option<String>,
    /// The allowlist; empty means the cluster's RBAC alone decides.
    pub namespaces: Vec<NamespaceSettings>,
    /// Straight to the cluster, or through the broker's proxy.
    pub access: ClusterRoute,
    /// For a cluster `[[discovery]]` found: where and by which block
    /// (`in us-east-1 by [[discovery]] #1 (PATH:LINE:COL)`).
    #[serde(deserialize_with = "required")]
    pub discovered: Option<String>,
}

impl ClusterView {
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n.name == namespace)
    }
}

/// `discovered`: the clusters EKS showed the broker's last good discovery, per region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySeen {
    pub regions: std::collections::BTreeMap<String, Vec<EksCluster>>,
}

/// What DescribeCluster says of a cluster, as `[[discovery]]` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EksCluster {
    pub name: String,
    pub region: String,
    /// `ACTIVE`, `CREATING`, `UPDATING`, `DELETING`, `FAILED`, `PENDING`.
    pub status: String,
    pub tags: std::collections::BTreeMap<String, String>,
    #[serde(deserialize_with = "required")]
    pub endpoint: Option<String>,
    /// Base64 PEM.
    #[serde(deserialize_with = "required")]
    pub ca_data: Option<String>,
}

/// `cluster`: where a cluster is and which CA signs its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEndpoint {
    pub name: String,
    pub endpoint: String,
    /// Base64 PEM, as in a kubeconfig.
    #[serde(rename = "certificateAuthorityData")]
    pub ca_data: String,
}

/// `credentials`: AWS `credential_process` output (Version 1) for the user's own role.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessCredentials {
    pub version: u8,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: String,
}

impl fmt::Debug for ProcessCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// `record`: the broker writes the recording at `path` (the answer to the request, and
/// again to the end line once the file is synced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub ok: bool,
    pub path: String,
}

/// `event` and the end of a recording: taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub ok: bool,
}

impl Ack {
    pub const OK: Ack = Ack { ok: true };
}

/// `(key, value)` pairs as one JSON object, in their order.
mod ordered_pairs {
    use serde::ser::SerializeMap;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        pairs: &[(String, String)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(pairs.len()))?;
        for (k, v) in pairs {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Pairs)
    }
}
