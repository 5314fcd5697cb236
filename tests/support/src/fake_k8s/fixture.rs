//! What the fake cluster holds: namespaces and pods, described in a compact YAML.
//!
//! ```yaml
//! namespaces:
//!   - name: web
//!     labels: {team: web}
//! pods:
//!   - name: frontend-6d8f7c9b5-x7k2p
//!     namespace: web
//!     labels: {app: frontend, tier: web}
//!     annotations: {kubectl.kubernetes.io/default-container: sidecar}
//!     containers: [nginx, {name: sidecar, image: "envoyproxy/envoy:v1.31"}]
//!     initContainers: [migrate]
//!     ephemeralContainers: [debugger]
//!     phase: Running          # Pending | Running | Succeeded | Failed | Unknown (default Running)
//!     node: ip-10-0-1-23.ec2.internal
//!     age: 3h                 # or creationTimestamp: "2024-05-01T12:00:00Z"
//!     ready: true             # default: phase is Running
//!     restarts: 0
//!     ip: 10.0.1.17
//!     reason: CrashLoopBackOff  # shown as STATUS instead of the phase
//! ```

use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The default fixture: namespaces `web`, `jobs`, `kube-system`, `default`.
pub const DEFAULT_FIXTURE: &str = include_str!("../../fixtures/cluster.yaml");
/// RBAC for the default fixture (see the file's comments).
pub const DEFAULT_RBAC: &str = include_str!("../../fixtures/rbac.yaml");

/// A namespace of the fixture.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels (`kubernetes.io/metadata.name` is added as the API server does).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `Active` (default) or `Terminating`.
    #[serde(default = "active")]
    pub phase: String,
    /// Age relative to the server's start (`30s`, `5m`, `3h`, `2d`); default 30d.
    #[serde(default)]
    pub age: Option<String>,
}

fn active() -> String {
    "Active".into()
}

/// A container: a bare name, or a name and an image.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Container {
    /// `nginx` (image `nginx:latest`).
    Name(String),
    /// `{name: sidecar, image: envoy}`.
    Full {
        /// Name.
        name: String,
        /// Image.
        #[serde(default)]
        image: Option<String>,
    },
}

impl Container {
    /// The container's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(name) | Self::Full { name, .. } => name,
        }
    }

    /// The container's image.
    pub fn image(&self) -> String {
        match self {
            Self::Full {
                image: Some(image), ..
            } => image.clone(),
            _ => format!("{}:latest", self.name()),
        }
    }
}

/// A pod of the fixture.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pod {
    /// Name.
    pub name: String,
    /// Namespace (must be one of the fixture's).
    pub namespace: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (e.g. `kubectl.kubernetes.io/default-container`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Containers (at least one).
    pub containers: Vec<Container>,
    /// Init containers (completed in a running pod).
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Ephemeral (debug) containers, running.
    #[serde(default)]
    pub ephemeral_containers: Vec<Container>,
    /// `Pending`, `Running` (default), `Succeeded`, `Failed`, `Unknown`.
    #[serde(default = "running")]
    pub phase: String,
    /// Node name.
    #[serde(default)]
    pub node: Option<String>,
    /// Age relative to the server's start (`30s`, `5m`, `3h`, `2d`).
    #[serde(default)]
    pub age: Option<String>,
    /// RFC 3339 creation time (instead of `age`).
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    /// Whether every container is ready; default: the pod is Running.
    #[serde(default)]
    pub ready: Option<bool>,
    /// Restart count of the first container.
    #[serde(default)]
    pub restarts: u32,
    /// Pod IP.
    #[serde(default)]
    pub ip: Option<String>,
    /// STATUS column override (`CrashLoopBackOff`, `Completed`, …).
    #[serde(default)]
    pub reason: Option<String>,
}

fn running() -> String {
    "Running".into()
}

/// Namespaces and pods.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Namespaces.
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    /// Pods.
    #[serde(default)]
    pub pods: Vec<Pod>,
}

impl Fixture {
    /// The default fixture ([`DEFAULT_FIXTURE`]).
    pub fn default_cluster() -> Self {
        Self::from_yaml(DEFAULT_FIXTURE).expect("the default fixture is valid")
    }

    /// Parses and validates a fixture.
    pub fn from_yaml(yaml: &str) -> Result<Self, String> {
        let fixture: Self = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        fixture.validate()?;
        Ok(fixture)
    }

    fn validate(&self) -> Result<(), String> {
        let mut namespaces = std::collections::BTreeSet::new();
        for ns in &self.namespaces {
            if !super::selector::is_dns_label(&ns.name) {
                return Err(format!("namespace {:?}: not a valid name", ns.name));
            }
            if !namespaces.insert(ns.name.as_str()) {
                return Err(format!("namespace {:?} is defined twice", ns.name));
            }
            check_labels(&ns.labels).map_err(|e| format!("namespace {}: {e}", ns.name))?;
            if let Some(age) = &ns.age {
                parse_age(age).map_err(|e| format!("namespace {}: {e}", ns.name))?;
            }
        }
        let mut pods = std::collections::BTreeSet::new();
        for pod in &self.pods {
            let id = format!("pod {}/{}", pod.namespace, pod.name);
            if !super::selector::is_dns_subdomain(&pod.name) {
                return Err(format!("{id}: not a valid name"));
            }
            if !namespaces.contains(pod.namespace.as_str()) {
                return Err(format!(
                    "{id}: namespace {:?} is not in the fixture",
                    pod.namespace
                ));
            }
            if !pods.insert((pod.namespace.as_str(), pod.name.as_str())) {
                return Err(format!("{id} is defined twice"));
            }
            if pod.containers.is_empty() {
                return Err(format!("{id}: needs at least one container"));
            }
            let mut names = std::collections::BTreeSet::new();
            for c in pod
                .containers
                .iter()
                .chain(&pod.init_containers)
                .chain(&pod.ephemeral_containers)
            {
                if !super::selector::is_dns_label(c.name()) || !names.insert(c.name()) {
                    return Err(format!(
                        "{id}: container name {:?} is invalid or repeated",
                        c.name()
                    ));
                }
            }
            if !matches!(
                pod.phase.as_str(),
                "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown"
            ) {
                return Err(format!("{id}: unknown phase {:?}", pod.phase));
            }
            check_labels(&pod.labels).map_err(|e| format!("{id}: {e}"))?;
            if let Some(age) = &pod.age {
                parse_age(age).map_err(|e| format!("{id}: {e}"))?;
            }
            if let Some(ts) = &pod.creation_timestamp {
                OffsetDateTime::parse(ts, &Rfc3339)
                    .map_err(|e| format!("{id}: creationTimestamp {ts:?}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The namespace `name`.
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.iter().find(|n| n.name == name)
    }
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in labels {
        let selector = format!("{key}={value}");
        super::selector::LabelSelector::parse(&selector)
            .map_err(|e| format!("label {selector:?}: {e}"))?;
    }
    Ok(())
}

/// `30s`, `5m`, `3h`, `2d`.
pub(crate) fn parse_age(age: &str) -> Result<Duration, String> {
    let bad = || format!("age {age:?}: expected a number and s, m, h or d");
    let unit = age.chars().last().ok_or_else(bad)?;
    let number: u64 = age[..age.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let seconds = match unit {
        's' => number,
        'm' => number * 60,
        'h' => number * 3600,
        'd' => number * 86400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(seconds))
}

pub(crate) fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339).unwrap_or_default()
}

/// A stable UID from a name.
fn uid(kind: &str, namespace: &str, name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
    for b in format!("{kind}/{namespace}/{name}").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        h2 = (h2 ^ u64::from(b))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(7);
    }
    let hex = format!("{h:016x}{h2:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Renders the fixture's objects as the API server would, relative to `started`.
pub(crate) struct Rendered {
    pub(crate) started: SystemTime,
}

impl Rendered {
    pub(crate) fn namespace_created(&self, ns: &Namespace) -> SystemTime {
        let age = ns
            .age
            .as_deref()
            .and_then(|a| parse_age(a).ok())
            .unwrap_or(Duration::from_secs(30 * 86400));
        self.started - age
    }

    pub(crate) fn namespace(&self, ns: &Namespace) -> Value {
        let mut labels = ns.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), ns.name.clone());
        json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": ns.name,
                "uid": uid("Namespace", "", &ns.name),
                "resourceVersion": "1",
                "creationTimestamp": rfc3339(self.namespace_created(ns)),
                "labels": labels,
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": ns.phase},
        })
    }

    pub(crate) fn pod_created(&self, pod: &Pod) -> SystemTime {
        if let Some(at) = pod
            .creation_timestamp
            .as_deref()
            .and_then(|ts| OffsetDateTime::parse(ts, &Rfc3339).ok())
        {
            return at.into();
        }
        let age = pod
            .age
            .as_deref()
            .and_then(|a| parse_age(a).ok())
            .unwrap_or(Duration::from_secs(3600));
        self.started - age
    }

    pub(crate) fn pod_ready(pod: &Pod) -> bool {
        pod.ready.unwrap_or(pod.phase == "Running")
    }

    pub(crate) fn pod(&self, pod: &Pod) -> Value {
        let created = rfc3339(self.pod_created(pod));
        let ready = Self::pod_ready(pod);
        let running = pod.phase == "Running";
        let container = |c: &Container| {
            json!({
                "name": c.name(),
                "image": c.image(),
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "resources": {},
            })
        };
        let state = |is_running: bool, completed: bool| {
            if is_running {
                json!({"running": {"startedAt": created}})
            } else if completed {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": created, "finishedAt": created}})
            } else {
                json!({"waiting": {"reason": pod.reason.clone().unwrap_or_else(|| "ContainerCreating".into())}})
            }
        };
        let statuses: Vec<Value> = pod
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "name": c.name(),
                    "image": c.image(),
                    "imageID": "",
                    "ready": ready,
                    "started": running,
                    "restartCount": if i == 0 { pod.restarts } else { 0 },
                    "state": state(running, pod.phase == "Succeeded"),
                })
            })
            .collect();
        let init_statuses: Vec<Value> = pod
            .init_containers
            .iter()
            .map(|c| {
                json!({
                    "name": c.name(),
                    "image": c.image(),
                    "imageID": "",
                    "ready": pod.phase != "Pending",
                    "restartCount": 0,
                    "state": state(false, pod.phase != "Pending"),
                })
            })
            .collect();
        let ephemeral_statuses: Vec<Value> = pod
            .ephemeral_containers
            .iter()
            .map(|c| {
                json!({
                    "name": c.name(),
                    "image": c.image(),
                    "imageID": "",
                    "ready": false,
                    "restartCount": 0,
                    "state": state(running, false),
                })
            })
            .collect();
        let condition = |kind: &str, status: bool| json!({"type": kind, "status": if status { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": created});
        let mut spec = json!({
            "containers": pod.containers.iter().map(container).collect::<Vec<_>>(),
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
        });
        if !pod.init_containers.is_empty() {
            spec["initContainers"] = pod.init_containers.iter().map(container).collect();
        }
        if !pod.ephemeral_containers.is_empty() {
            spec["ephemeralContainers"] = pod.ephemeral_containers.iter().map(container).collect();
        }
        if let Some(node) = &pod.node {
            spec["nodeName"] = json!(node);
        }
        let mut status = json!({
            "phase": pod.phase,
            "conditions": [
                condition("Initialized", pod.phase != "Pending"),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", pod.node.is_some()),
            ],
            "qosClass": "BestEffort",
            "startTime": created,
            "containerStatuses": statuses,
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        if !ephemeral_statuses.is_empty() {
            status["ephemeralContainerStatuses"] = json!(ephemeral_statuses);
        }
        if let Some(reason) = &pod.reason {
            status["reason"] = json!(reason);
        }
        if let Some(ip) = &pod.ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if pod.node.is_some() {
            status["hostIP"] = json!("10.0.0.10");
        }
        let mut metadata = json!({
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": uid("Pod", &pod.namespace, &pod.name),
            "resourceVersion": "1",
            "creationTimestamp": created,
            "labels": pod.labels,
        });
        if !pod.annotations.is_empty() {
            metadata["annotations"] = json!(pod.annotations);
        }
        json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": metadata,
            "spec": spec,
            "status": status,
        })
    }

    /// The value of a field selector's field for a pod.
    pub(crate) fn pod_field(pod: &Pod, field: &str) -> Option<Option<String>> {
        Some(match field {
            "metadata.name" => Some(pod.name.clone()),
            "metadata.namespace" => Some(pod.namespace.clone()),
            "spec.nodeName" => pod.node.clone(),
            "spec.restartPolicy" => Some("Always".into()),
            "spec.schedulerName" => Some("default-scheduler".into()),
            "spec.serviceAccountName" => Some("default".into()),
            "status.phase" => Some(pod.phase.clone()),
            "status.podIP" => pod.ip.clone(),
            "status.nominatedNodeName" => None,
            _ => return None,
        })
    }

    /// The value of a field selector's field for a namespace.
    pub(crate) fn namespace_field(ns: &Namespace, field: &str) -> Option<Option<String>> {
        Some(match field {
            "metadata.name" => Some(ns.name.clone()),
            "status.phase" => Some(ns.phase.clone()),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_fixture_is_valid() {
        let fixture = Fixture::default_cluster();
        for ns in ["web", "jobs", "kube-system"] {
            assert!(fixture.namespace(ns).is_some(), "{ns}");
        }
        assert!(fixture.pod("kube-system", "etcd-0").is_some());
    }

    #[test]
    fn annotations_are_in_the_pods_metadata_only_when_set() {
        let fixture = Fixture::default_cluster();
        let rendered = Rendered {
            started: SystemTime::now(),
        };
        let ingest = rendered.pod(fixture.pod("jobs", "ingest-5b8d7c6f4-r7t2m").unwrap());
        assert_eq!(
            ingest["metadata"]["annotations"],
            json!({"kubectl.kubernetes.io/default-container": "ingest"})
        );
        let backfill = rendered.pod(fixture.pod("jobs", "backfill-2h7x9").unwrap());
        assert!(backfill["metadata"].get("annotations").is_none());
    }

    #[test]
    fn invalid_fixtures_are_refused() {
        let cases = [
            (
                "pods: [{name: p, namespace: nope, containers: [c]}]",
                "not in the fixture",
            ),
            ("namespaces: [{name: a}, {name: a}]", "twice"),
            (
                "namespaces: [{name: a}]\npods: [{name: p, namespace: a, containers: []}]",
                "at least one",
            ),
            (
                "namespaces: [{name: a}]\npods: [{name: p, namespace: a, containers: [c, c]}]",
                "repeated",
            ),
            (
                "namespaces: [{name: a}]\npods: [{name: p, namespace: a, containers: [c], phase: Up}]",
                "phase",
            ),
            (
                "namespaces: [{name: a}]\npods: [{name: p, namespace: a, containers: [c], age: 3w}]",
                "age",
            ),
            ("namespaces: [{name: a, colour: red}]", "unknown field"),
            ("namespaces: [{name: a, labels: {'a b': c}}]", "label"),
        ];
        for (yaml, expected) in cases {
            let err = Fixture::from_yaml(yaml).expect_err(yaml);
            assert!(err.contains(expected), "{err} should mention {expected}");
        }
    }
}
