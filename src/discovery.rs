//! `[[discovery]]`: EKS clusters found with ListClusters and DescribeCluster instead of
//! written by hand. [`fetch`] asks EKS (the broker's own credentials: one ListClusters page
//! set per region, one DescribeCluster per cluster a block's names take); [`select`] turns
//! what it saw into clusters, the way a `[[cluster]]` would have described them, and says
//! why it left each other one out. The broker keeps the last good answer of each region;
//! `rolesh check --describe` asks once.
//!
//! Naming: a cluster keeps its EKS name, unless clusters of that name were found in more
//! than one region: then every one of them is `NAME@REGION`, so that a name never moves to
//! another region's cluster while one of them is deleted. An explicit `[[cluster]]` wins
//! over a discovered cluster of the same name (case aside) or the same EKS cluster; the
//! first `[[discovery]]` that takes a cluster (file order) decides what it gets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::broker::aws::{Aws, EksCluster, EksError, RoleCredentials};
use crate::config::{
    CertificateAuthority, ClusterKind, ClusterSettings, Config, Discovered, DiscoverySettings,
};

/// DescribeCluster calls in flight at once: per region for the broker, per user for a
/// user's check.
const DESCRIBE_CONCURRENCY: usize = 8;

/// What EKS showed, per region.
pub(crate) type Seen = BTreeMap<String, Vec<EksCluster>>;

/// What one refresh saw in each region, or why it could not see it.
pub(crate) type Fetched = BTreeMap<String, Result<Vec<EksCluster>, String>>;

/// A cluster EKS listed that no cluster came of, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeftOut {
    pub name: String,
    pub region: String,
    pub reason: String,
}

/// The clusters found, and those left out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    pub clusters: Vec<ClusterSettings>,
    pub left_out: Vec<LeftOut>,
}

/// Every region a block names, each once, in the order first named.
pub(crate) fn regions(config: &Config) -> Vec<String> {
    let mut regions: Vec<String> = Vec::new();
    for r in config.discovery.iter().flat_map(|d| &d.regions) {
        if !regions.contains(r) {
            regions.push(r.clone());
        }
    }
    regions
}

/// Lists every region of `config`'s blocks and describes each cluster some block's names
/// take, with the broker's own credentials. A region that fails is an `Err` of its own;
/// the others are still seen.
pub(crate) async fn fetch(aws: &Arc<Aws>, config: &Config) -> Fetched {
    let blocks: Arc<[DiscoverySettings]> = config.discovery.clone().into();
    let mut regions = tokio::task::JoinSet::new();
    for region in self::regions(config) {
        let (aws, blocks) = (Arc::clone(aws), Arc::clone(&blocks));
        regions.spawn(async move {
            let seen = fetch_region(&aws, &region, &blocks).await;
            (region, seen)
        });
    }
    let mut fetched = Fetched::new();
    while let Some(done) = regions.join_next().await {
        if let Ok((region, seen)) = done {
            fetched.insert(region, seen);
        }
    }
    fetched
}

async fn fetch_region(
    aws: &Arc<Aws>,
    region: &str,
    blocks: &[DiscoverySettings],
) -> Result<Vec<EksCluster>, String> {
    let wanted: Vec<EksKey> = aws
        .list_clusters_as_broker(region)
        .await?
        .into_iter()
        .filter(|name| blocks.iter().any(|b| b.takes_name(region, name)))
        .map(|name| (name, region.to_string()))
        .collect();
    let mut clusters = Vec::new();
    for (_, answer) in describe_each(aws, None, wanted, None).await {
        match answer {
            Ok(cluster) => clusters.push(cluster),
            // Deleted between the list and the describe: not there.
            Err(EksError::Refused(_)) => {}
            Err(EksError::Failed(why)) => return Err(why),
        }
    }
    Ok(clusters)
}

/// A cluster as EKS names it: its name there and its region.
pub(crate) type EksKey = (String, String);

/// DescribeCluster for each of `clusters`, [`DESCRIBE_CONCURRENCY`] at once, with `role`'s
/// credentials or (`None`) the broker's own; a call that takes longer than `within` (when
/// given) failed. The answers come in the order asked.
pub(crate) async fn describe_each(
    aws: &Arc<Aws>,
    role: Option<&RoleCredentials>,
    clusters: Vec<EksKey>,
    within: Option<Duration>,
) -> Vec<(EksKey, Result<EksCluster, EksError>)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(DESCRIBE_CONCURRENCY));
    let mut asking = tokio::task::JoinSet::new();
    for (i, key) in clusters.into_iter().enumerate() {
        let (aws, limit, role) = (Arc::clone(aws), Arc::clone(&limit), role.cloned());
        asking.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let call = aws.describe_eks(role.as_ref(), &key.0, &key.1);
            let answer = match within {
                None => call.await,
                Some(within) => tokio::time::timeout(within, call)
                    .await
                    .unwrap_or_else(|_| {
                        Err(EksError::Failed(format!(
                            "EKS DescribeCluster {} in {} took more than {}s",
                            key.0,
                            key.1,
                            within.as_secs()
                        )))
                    }),
            };
            (i, key, answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = asking.join_next().await {
        match done {
            Ok(answer) => answers.push(answer),
            Err(e) => answers.push((
                usize::MAX,
                (String::new(), String::new()),
                Err(EksError::Failed(format!(
                    "DescribeCluster did not finish: {e}"
                ))),
            )),
        }
    }
    answers.sort_by_key(|(i, _, _)| *i);
    answers
        .into_iter()
        .map(|(_, key, answer)| (key, answer))
        .collect()
}

/// The clusters `config`'s blocks take from what EKS showed (`seen`, per region), named,
/// and why each other listed cluster was left out.
pub(crate) fn select(config: &Config, seen: &Seen) -> Selection {
    let mut selection = Selection::default();
    let mut taken: Vec<(&EksCluster, &DiscoverySettings)> = Vec::new();
    for cluster in seen.values().flatten() {
        match block_for(config, cluster) {
            Ok(block) => taken.push((cluster, block)),
            Err(reason) => selection.left_out.push(left_out(cluster, reason)),
        }
    }
    let mut regions_of: HashMap<&str, usize> = HashMap::new();
    for (cluster, _) in &taken {
        *regions_of.entry(cluster.name.as_str()).or_default() += 1;
    }
    for (cluster, block) in taken {
        let name = match regions_of[cluster.name.as_str()] {
            1 => cluster.name.clone(),
            _ => format!("{}@{}", cluster.name, cluster.region),
        };
        if let Some(explicit) = explicit_twin(config, &name, cluster) {
            let reason = format!(
                "the [[cluster]] {} at {} names it; that block wins",
                explicit.name, explicit.origin
            );
            selection.left_out.push(left_out(cluster, reason));
            continue;
        }
        selection.clusters.push(settings(name, cluster, block));
    }
    selection.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    selection
}

/// The first block that takes `cluster`, or why none does.
fn block_for<'c>(
    config: &'c Config,
    cluster: &EksCluster,
) -> Result<&'c DiscoverySettings, String> {
    let by_name: Vec<&DiscoverySettings> = config
        .discovery
        .iter()
        .filter(|b| b.takes_name(&cluster.region, &cluster.name))
        .collect();
    let Some(first) = by_name.first() else {
        return Err("no [[discovery]] takes this name in this region (names, exclude)".into());
    };
    let Some(block) = by_name.iter().find(|b| tags_match(b, cluster)) else {
        let missing: Vec<String> = first
            .tags
            .iter()
            .filter(|(k, v)| cluster.tags.get(k) != Some(v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return Err(format!(
            "its tags lack {} ([[discovery]] #{})",
            missing.join(", "),
            first.number
        ));
    };
    if cluster.status != "ACTIVE" {
        return Err(format!("it is {}, not ACTIVE", cluster.status));
    }
    if cluster.endpoint.is_none() || cluster.ca_data.is_none() {
        return Err("DescribeCluster gave no endpoint or CA".into());
    }
    Ok(block)
}

fn tags_match(block: &DiscoverySettings, cluster: &EksCluster) -> bool {
    block
        .tags
        .iter()
        .all(|(k, v)| cluster.tags.get(k) == Some(v))
}

/// The `[[cluster]]` a discovered cluster gives way to: one of the same name, ignoring
/// case as cluster names are compared, or an EKS cluster naming the same cluster.
fn explicit_twin<'c>(
    config: &'c Config,
    name: &str,
    cluster: &EksCluster,
) -> Option<&'c ClusterSettings> {
    config.clusters.iter().find(|c| {
        c.name.eq_ignore_ascii_case(name)
            || (c.kind == ClusterKind::Eks && c.name == cluster.name && c.region == cluster.region)
    })
}

fn left_out(cluster: &EksCluster, reason: String) -> LeftOut {
    LeftOut {
        name: cluster.name.clone(),
        region: cluster.region.clone(),
        reason,
    }
}

/// A discovered cluster as a `[[cluster]]` with its endpoint and CA would describe it.
fn settings(name: String, cluster: &EksCluster, block: &DiscoverySettings) -> ClusterSettings {
    ClusterSettings {
        name,
        region: cluster.region.clone(),
        endpoint: cluster.endpoint.clone(),
        certificate_authority: cluster.ca_data.clone().map(CertificateAuthority::Data),
        default_namespace: block.default_namespace.clone(),
        groups: block.groups.clone(),
        namespaces: block.namespaces.clone(),
        access: block.access,
        kind: ClusterKind::Eks,
        credentials: None,
        origin: block.origin.clone(),
        discovered: Some(Discovered {
            eks_name: cluster.name.clone(),
            block: block.number,
        }),
    }
}

/// `config` with the clusters its blocks take from `seen` after its own: what the broker
/// answers with; and the selection they came from.
pub(crate) fn with_discovered(config: &Config, seen: &Seen) -> (Config, Selection) {
    let selection = select(config, seen);
    let mut effective = config.clone();
    effective
        .clusters
        .extend(selection.clusters.iter().cloned());
    (effective, selection)
}

/// The regions that answered, and why each other one did not.
pub(crate) fn split(fetched: Fetched) -> (Seen, Vec<(String, String)>) {
    let mut answered = BTreeMap::new();
    let mut failures = Vec::new();
    for (region, answer) in fetched {
        match answer {
            Ok(clusters) => {
                answered.insert(region, clusters);
            }
            Err(why) => failures.push((region, why)),
        }
    }
    (answered, failures)
}

/// `[[cluster]]` blocks that a `[[discovery]]` would also take by name and region: the
/// explicit block wins, and `rolesh check` says so.
pub(crate) fn overlaps(config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    for c in config
        .clusters
        .iter()
        .filter(|c| c.kind == ClusterKind::Eks)
    {
        if let Some(block) = config
            .discovery
            .iter()
            .find(|b| b.takes_name(&c.region, &c.name))
        {
            notes.push(format!(
                "[[cluster]] {} ({}) is also taken by [[discovery]] #{} ({}) if its tags match: the [[cluster]] block wins",
                c.name, c.origin, block.number, block.origin
            ));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[aws]
region = "us-east-1"
[mapping]
default_role = "arn:aws:iam::123456789012:role/bastion-{user}"
[[cluster]]
name = "legacy"
region = "us-east-1"
[[discovery]]
regions = ["us-east-1", "eu-west-1"]
tags = { team = "platform" }
names = ["prod-*", "legacy", "shared"]
exclude = ["*-sandbox"]
default_namespace = "web"
groups = ["sre"]
access = "proxy"
[[discovery.namespace]]
name = "web"
selectors = ["app=frontend"]
[[discovery]]
regions = ["us-east-1"]
names = ["dev-*"]
"#;

    fn config() -> Config {
        Config::from_text("/etc/rolesh/config.toml", CONFIG).expect("valid")
    }

    fn eks(name: &str, region: &str, tags: &[(&str, &str)]) -> EksCluster {
        EksCluster {
            name: name.into(),
            region: region.into(),
            status: "ACTIVE".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            endpoint: Some(format!("https://{name}.{region}.eks.example")),
            ca_data: Some("Q0E=".into()),
        }
    }

    fn seen(clusters: Vec<EksCluster>) -> BTreeMap<String, Vec<EksCluster>> {
        let mut seen: BTreeMap<String, Vec<EksCluster>> = BTreeMap::new();
        for c in clusters {
            seen.entry(c.region.clone()).or_default().push(c);
        }
        seen
    }

    fn names(s: &Selection) -> Vec<&str> {
        s.clusters.iter().map(|c| c.name.as_str()).collect()
    }

    fn reason<'s>(s: &'s Selection, name: &str) -> &'s str {
        &s.left_out
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name} not left out: {:?}", s.left_out))
            .reason
    }

    const PLATFORM: &[(&str, &str)] = &[("team", "platform"), ("env", "prod")];

    #[test]
    fn a_cluster_without_every_tag_is_left_out_with_the_tag_it_lacks() {
        let s = select(
            &config(),
            &seen(vec![
                eks("prod-a", "us-east-1", PLATFORM),
                eks("prod-b", "us-east-1", &[("team", "web")]),
            ]),
        );
        assert_eq!(names(&s), ["prod-a"]);
        assert!(reason(&s, "prod-b").contains("team=platform"), "{s:?}");
    }

    #[test]
    fn names_and_exclude_globs_decide_which_names_are_taken() {
        let config = config();
        let block = &config.discovery[0];
        assert!(block.takes_name("us-east-1", "prod-web"));
        assert!(!block.takes_name("us-east-1", "prod-web-sandbox"));
        assert!(!block.takes_name("us-east-1", "staging"));
        assert!(!block.takes_name("ap-south-1", "prod-web"));
        let s = select(
            &config,
            &seen(vec![eks("prod-x-sandbox", "us-east-1", PLATFORM)]),
        );
        assert!(s.clusters.is_empty());
        assert!(reason(&s, "prod-x-sandbox").contains("names, exclude"));
    }

    #[test]
    fn a_discovered_cluster_gets_what_its_block_says() {
        let s = select(&config(), &seen(vec![eks("prod-a", "us-east-1", PLATFORM)]));
        let c = &s.clusters[0];
        assert_eq!(c.default_namespace.as_deref(), Some("web"));
        assert_eq!(c.groups.as_deref(), Some(&["sre".to_string()][..]));
        assert_eq!(c.access, crate::config::ClusterRoute::Proxy);
        assert_eq!(c.namespaces[0].selectors[0].to_string(), "app=frontend");
        assert_eq!(
            c.endpoint.as_deref(),
            Some("https://prod-a.us-east-1.eks.example")
        );
        assert_eq!(c.discovered.as_ref().map(|d| d.block), Some(1));
        assert_eq!(c.eks_name(), "prod-a");
    }

    #[test]
    fn the_first_block_that_takes_a_cluster_decides() {
        let mut text = CONFIG.replace("names = [\"dev-*\"]", "names = [\"*\"]");
        text.push_str("default_namespace = \"other\"\n");
        let config = Config::from_text("/c.toml", &text).unwrap();
        let s = select(
            &config,
            &seen(vec![
                eks("prod-a", "us-east-1", PLATFORM),
                eks("tools", "us-east-1", &[]),
            ]),
        );
        let by_name = |n: &str| s.clusters.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by_name("prod-a").discovered.as_ref().unwrap().block, 1);
        assert_eq!(by_name("tools").discovered.as_ref().unwrap().block, 2);
        assert_eq!(by_name("tools").default_namespace.as_deref(), Some("other"));
    }

    #[test]
    fn a_name_found_in_two_regions_is_name_at_region_in_both() {
        let s = select(
            &config(),
            &seen(vec![
                eks("prod-a", "us-east-1", PLATFORM),
                eks("prod-a", "eu-west-1", PLATFORM),
                eks("prod-b", "eu-west-1", PLATFORM),
            ]),
        );
        assert_eq!(
            names(&s),
            ["prod-a@eu-west-1", "prod-a@us-east-1", "prod-b"]
        );
        let eu = &s.clusters[0];
        assert_eq!((eu.eks_name(), eu.region.as_str()), ("prod-a", "eu-west-1"));
    }

    #[test]
    fn an_explicit_cluster_wins_over_the_same_discovered_one() {
        let s = select(&config(), &seen(vec![eks("legacy", "us-east-1", PLATFORM)]));
        assert!(names(&s).is_empty(), "{s:?}");
        assert!(reason(&s, "legacy").contains("[[cluster]] legacy"), "{s:?}");
        assert!(overlaps(&config())[0].contains("[[cluster]] legacy"));
    }

    #[test]
    fn a_cluster_that_is_not_active_is_left_out_with_its_status() {
        let mut creating = eks("prod-new", "us-east-1", PLATFORM);
        creating.status = "CREATING".into();
        let s = select(&config(), &seen(vec![creating]));
        assert!(s.clusters.is_empty());
        assert_eq!(reason(&s, "prod-new"), "it is CREATING, not ACTIVE");
    }

    #[test]
    fn regions_are_each_listed_once() {
        assert_eq!(regions(&config()), ["us-east-1", "eu-west-1"]);
    }
}
