//! `[[discovery]]`: which EKS clusters the broker finds by itself (regions, tags, name
//! globs), and what each one it takes gets, as a `[[cluster]]` would say it.

use super::super::diag::At;
use super::super::tree::{Node, Value};
use super::super::{AwsSettings, DiscoverySettings, NameGlob, values};
use super::read::{Fields, Reader};

/// EKS allows 50 tags on a cluster; a block asking for more can match nothing.
const MAX_TAGS: usize = 50;

impl Reader {
    pub(super) fn discovery(
        &self,
        node: Option<&Node>,
        aws: Option<&AwsSettings>,
    ) -> Vec<DiscoverySettings> {
        let Some(node) = node else { return vec![] };
        self.tables(node, "discovery")
            .iter()
            .enumerate()
            .filter_map(|(i, f)| self.discovery_block(f, i + 1, aws))
            .collect()
    }

    fn discovery_block(
        &self,
        f: &Fields<'_>,
        number: usize,
        aws: Option<&AwsSettings>,
    ) -> Option<DiscoverySettings> {
        let regions = self.discovery_regions(f);
        let tags = f
            .get("tags")
            .map(|n| self.cluster_tags(n, &f.key_path("tags")));
        let names = self.globs(f, "names");
        let exclude = self.globs(f, "exclude");
        let reach = self.reach(f, "discovery", aws);
        Some(DiscoverySettings {
            number,
            regions: regions?,
            tags: tags.unwrap_or_default(),
            names,
            exclude,
            default_namespace: reach.default_namespace,
            groups: reach.groups,
            namespaces: reach.namespaces,
            access: reach.access,
            origin: f.loc.to_string(),
        })
    }

    /// `regions`: required, at least one, each an AWS region, none twice.
    fn discovery_regions(&self, f: &Fields<'_>) -> Option<Vec<String>> {
        if f.get("regions").is_none() {
            self.error(&f.loc, format!("missing required key `regions` in [{}]: the regions whose EKS clusters this block lists, e.g. regions = [\"us-east-1\"]", f.path));
            return None;
        }
        let listed = f.strings("regions")?;
        if listed.is_empty() {
            let at = &f.get("regions").expect("present").loc;
            self.error(at, "`regions` is empty: list at least one region");
            return None;
        }
        let mut regions: Vec<String> = Vec::new();
        for r in listed {
            if self.checked(&r.loc, values::region(&r)).is_none() {
                continue;
            }
            if regions.contains(&r.value) {
                self.error(&r.loc, format!("region {:?} is listed twice", r.value));
                continue;
            }
            regions.push(r.value);
        }
        Some(regions)
    }

    /// `tags = { key = "value" }`: EKS tag keys (1-128 characters, not `aws:`) and values
    /// (at most 256).
    fn cluster_tags(&self, node: &Node, path: &str) -> Vec<(String, String)> {
        let Value::Table(table) = &node.value else {
            self.type_error(node, path, "a table of tag names to values");
            return vec![];
        };
        if table.entries.len() > MAX_TAGS {
            self.error(
                &node.loc,
                format!(
                    "an EKS cluster carries at most {MAX_TAGS} tags; `{path}` asks for {}",
                    table.entries.len()
                ),
            );
        }
        let mut tags = Vec::new();
        for (key, value) in &table.entries {
            if key.value.is_empty() || key.value.chars().count() > 128 {
                self.error(
                    &key.loc,
                    format!("tag key {:?} must be 1 to 128 characters", key.value),
                );
            } else if key.value.to_ascii_lowercase().starts_with("aws:") {
                self.error(
                    &key.loc,
                    format!("tag key {:?} uses the reserved prefix \"aws:\"", key.value),
                );
            }
            let Value::String(text) = &value.value else {
                self.type_error(value, &format!("{path}.{}", key.value), "a string");
                continue;
            };
            if text.chars().count() > 256 {
                self.error(
                    &value.loc,
                    format!("tag value of {:?} is longer than 256 characters", key.value),
                );
                continue;
            }
            tags.push((key.value.clone(), text.clone()));
        }
        tags
    }

    /// `names` or `exclude`: globs on EKS cluster names.
    fn globs(&self, f: &Fields<'_>, key: &str) -> Vec<NameGlob> {
        f.strings(key)
            .unwrap_or_default()
            .iter()
            .filter_map(|g| self.checked(&g.loc, glob(g)))
            .collect()
    }
}

/// A name glob: only what an EKS name holds (letters, digits, `-`, `_`) and the glob's own
/// `*`, `?`, `[`, `]` and `!`, so that a typo cannot silently match nothing.
fn glob(text: &At<String>) -> Result<NameGlob, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_*?[]!".contains(c);
    if text.is_empty() {
        return Err("an empty glob matches no cluster name".into());
    }
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "glob {:?} has {c:?}, which no EKS cluster name holds (letters, digits, `-` and `_`; globs add `*`, `?` and `[...]`)",
            text.value
        ));
    }
    NameGlob::parse(text)
}
