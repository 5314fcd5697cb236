//! The `rolesh exec` argument, `[[CLUSTER/]NAMESPACE/POD[/CONTAINER]]`, with `--cluster` and
//! `-n` narrowing it. Names are checked to be Kubernetes names here, so nothing odd ever
//! reaches a URL path.

use crate::config::selector::{is_dns_label, is_dns_subdomain};
use crate::error::Failure;

/// What the command line names; the picker asks for the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Target {
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

const FORM: &str = "[[CLUSTER/]NAMESPACE/POD[/CONTAINER]]";

impl Target {
    /// Parses the argument. A first part that names one of `clusters` is the cluster:
    /// `demo` is a cluster, `demo/web` a cluster and namespace, `demo/web/pod` a pod;
    /// otherwise the parts start at the namespace (`web`, `web/pod`, `web/pod/container`).
    /// (`--cluster` and `-n` reach a namespace that happens to be named like a cluster.)
    pub(super) fn parse(arg: Option<&str>, clusters: &[&str]) -> Result<Target, Failure> {
        let Some(arg) = arg else {
            return Ok(Target::default());
        };
        let parts: Vec<&str> = arg.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad_form(arg));
        }
        let some = |s: &str| Some(s.to_string());
        let is_cluster = |s: &str| clusters.contains(&s);
        let target = match parts.as_slice() {
            [c] if is_cluster(c) => Target {
                cluster: some(c),
                ..Target::default()
            },
            [ns] => Target {
                namespace: some(ns),
                ..Target::default()
            },
            [c, ns] if is_cluster(c) => Target {
                cluster: some(c),
                namespace: some(ns),
                ..Target::default()
            },
            [ns, pod] => Target {
                namespace: some(ns),
                pod: some(pod),
                ..Target::default()
            },
            [c, ns, pod] if is_cluster(c) => Target {
                cluster: some(c),
                namespace: some(ns),
                pod: some(pod),
                container: None,
            },
            [ns, pod, ctr] => Target {
                cluster: None,
                namespace: some(ns),
                pod: some(pod),
                container: some(ctr),
            },
            [c, ns, pod, ctr] => Target {
                cluster: some(c),
                namespace: some(ns),
                pod: some(pod),
                container: some(ctr),
            },
            _ => return Err(bad_form(arg)),
        };
        target.check_names()?;
        Ok(target)
    }

    /// Applies `--cluster` and `-n`; a flag that contradicts the argument is a usage error.
    pub(super) fn narrow(
        mut self,
        cluster: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Target, Failure> {
        merge(&mut self.cluster, cluster, "--cluster")?;
        merge(&mut self.namespace, namespace, "-n/--namespace")?;
        self.check_names()?;
        Ok(self)
    }

    fn check_names(&self) -> Result<(), Failure> {
        let checks = [
            (
                &self.cluster,
                "cluster",
                is_cluster_name as fn(&str) -> bool,
            ),
            (&self.namespace, "namespace", is_dns_label),
            (&self.pod, "pod", is_dns_subdomain),
            (&self.container, "container", is_dns_label),
        ];
        for (value, what, valid) in checks {
            if let Some(v) = value
                && !valid(v)
            {
                return Err(Failure::usage(format!("{v:?} is not a valid {what} name")));
            }
        }
        Ok(())
    }
}

/// rolesh's config allows cluster names in the characters EKS allows; a discovered one
/// found in several regions is `NAME@REGION`.
fn is_cluster_name(s: &str) -> bool {
    let (name, region) = s.split_once('@').unwrap_or((s, "x"));
    let word = |w: &str, extra: char| {
        !w.is_empty()
            && w.len() <= 100
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == extra)
    };
    word(name, '_') && word(region, '-')
}

fn merge(slot: &mut Option<String>, flag: Option<&str>, name: &str) -> Result<(), Failure> {
    match (slot.as_deref(), flag) {
        (Some(a), Some(b)) if a != b => Err(Failure::usage(format!(
            "{name} {b} contradicts the target, which names {a}"
        ))),
        (None, Some(b)) => {
            *slot = Some(b.to_string());
            Ok(())
        }
        _ => Ok(()),
    }
}

fn bad_form(arg: &str) -> Failure {
    Failure::usage(format!("{arg:?}: expected {FORM}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(c: Option<&str>, ns: Option<&str>, pod: Option<&str>, ctr: Option<&str>) -> Target {
        let s = |v: Option<&str>| v.map(str::to_string);
        Target {
            cluster: s(c),
            namespace: s(ns),
            pod: s(pod),
            container: s(ctr),
        }
    }

    const CLUSTERS: &[&str] = &["demo", "staging"];

    #[test]
    fn every_form_of_the_argument() {
        let p = |a| Target::parse(Some(a), CLUSTERS).unwrap();
        assert_eq!(p("demo"), t(Some("demo"), None, None, None));
        assert_eq!(p("web"), t(None, Some("web"), None, None));
        assert_eq!(p("web/pod-1"), t(None, Some("web"), Some("pod-1"), None));
        assert_eq!(p("demo/web"), t(Some("demo"), Some("web"), None, None));
        assert_eq!(
            p("demo/web/pod-1"),
            t(Some("demo"), Some("web"), Some("pod-1"), None)
        );
        assert_eq!(
            p("web/pod-1/nginx"),
            t(None, Some("web"), Some("pod-1"), Some("nginx"))
        );
        assert_eq!(
            p("staging/web/pod-1/nginx"),
            t(Some("staging"), Some("web"), Some("pod-1"), Some("nginx"))
        );
        assert_eq!(Target::parse(None, CLUSTERS).unwrap(), Target::default());
    }

    #[test]
    fn malformed_arguments_are_usage_errors() {
        for bad in [
            "",
            "/",
            "web/",
            "a/b/c/d/e",
            "web/../x",
            "Web/pod",
            "web/pod/Ctr_1",
        ] {
            let err = Target::parse(Some(bad), CLUSTERS).unwrap_err();
            assert_eq!(err.code, crate::error::EXIT_USAGE, "{bad}");
        }
    }

    #[test]
    fn flags_narrow_but_may_not_contradict() {
        let target = Target::parse(Some("web/pod-1"), CLUSTERS).unwrap();
        let narrowed = target.clone().narrow(Some("staging"), Some("web")).unwrap();
        assert_eq!(narrowed.cluster.as_deref(), Some("staging"));
        let err = target.narrow(None, Some("jobs")).unwrap_err();
        assert!(err.message.contains("contradicts"), "{}", err.message);
    }
}
