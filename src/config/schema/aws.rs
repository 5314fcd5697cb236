//! `[aws]`: region, where AssumeRole goes, the session name, source identity and tags.

use super::super::diag::At;
use super::super::tree::{Node, Value};
use super::super::{AwsSettings, StsEndpoint, Template, Vars, values};
use super::read::{Fields, Reader};
use super::{HOUR, MINUTE};

impl Reader {
    pub(super) fn aws(&self, node: &Node) -> Option<AwsSettings> {
        let f = self.table(node, "aws")?;
        let region = f.required_string("region").and_then(|r| {
            self.checked(&r.loc, values::region(&r))?;
            Some(r.value)
        });
        let sts_endpoint = self.sts_endpoint(f.string("sts_endpoint"));
        let session_duration = match f.get("session_duration") {
            Some(_) => f.duration("session_duration", 15 * MINUTE, 12 * HOUR),
            None => Some(HOUR),
        };
        let session_name = self.optional_sts_template(&f, "session_name", "session name");
        let source_identity = self.optional_sts_template(&f, "source_identity", "source identity");
        let expose_credentials = f.bool("expose_credentials").unwrap_or(false);
        let tags = f.get("tags").map(|n| self.tags(n)).unwrap_or_default();
        Some(AwsSettings {
            region: region?,
            sts_endpoint: sts_endpoint?,
            session_duration: session_duration?,
            session_name: session_name?,
            source_identity: source_identity?,
            expose_credentials,
            tags,
        })
    }

    fn sts_endpoint(&self, text: Option<At<String>>) -> Option<StsEndpoint> {
        match text {
            None => Some(StsEndpoint::Regional),
            Some(s) if s.value == "regional" => Some(StsEndpoint::Regional),
            Some(s) if s.value == "legacy" => Some(StsEndpoint::Legacy),
            Some(s) if s.value.contains("://") => self
                .checked(&s.loc, values::endpoint_url(&s))
                .map(|_| StsEndpoint::Url(s.value.trim_end_matches('/').to_string())),
            Some(s) => {
                self.error(&s.loc, format!("`aws.sts_endpoint` must be \"regional\", \"legacy\" or an https URL, not {:?}", s.value));
                None
            }
        }
    }

    fn optional_sts_template(&self, f: &Fields<'_>, key: &str, what: &str) -> Option<Template> {
        match f.string(key) {
            Some(text) => self.sts_name_template(&text, what),
            None if f.get(key).is_some() => None,
            None => Template::parse("{user}").ok(),
        }
    }

    /// A template whose rendering must be an STS name: its literal text must already obey
    /// the character rules, and its shortest rendering (one character a variable) must
    /// fit; the rendered name is checked again for each user.
    fn sts_name_template(&self, text: &At<String>, what: &str) -> Option<Template> {
        let template = self.template(text)?;
        let literal = template.literal_text();
        let shortest = template.render(&Vars {
            user: "x",
            uid: 0,
            hostname: "x",
        });
        let problem = if let Some(c) = literal
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c)))
        {
            Some(format!(
                "contains {c:?}; STS allows only letters, digits and +=,.@_-"
            ))
        } else if shortest.len() > 64 {
            Some("is longer than 64 characters before any substitution".to_string())
        } else if !template.has_vars() {
            values::sts_name(what, &shortest)
                .err()
                .map(|e| format!("is invalid: {e}"))
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.error(&text.loc, format!("{what} template {:?} {p}", text.value));
                None
            }
            None => Some(template),
        }
    }

    fn tags(&self, node: &Node) -> Vec<(String, Template)> {
        let Value::Table(table) = &node.value else {
            self.type_error(node, "aws.tags", "a table of tag names to values");
            return vec![];
        };
        if table.entries.len() > 50 {
            self.error(
                &node.loc,
                format!(
                    "STS allows at most 50 session tags; [aws.tags] has {}",
                    table.entries.len()
                ),
            );
        }
        let mut tags = Vec::new();
        for (key, value) in &table.entries {
            self.checked(&key.loc, values::tag_key(key));
            let Value::String(text) = &value.value else {
                self.type_error(value, &format!("aws.tags.{}", key.value), "a string");
                continue;
            };
            let Some(template) = self.template(&At::new(text.clone(), value.loc.clone())) else {
                continue;
            };
            let literal = template.literal_text();
            if literal.chars().count() > 256 || literal.chars().any(|c| !values::is_tag_char(c)) {
                self.error(&value.loc, format!("tag value {text:?} must be at most 256 characters of letters, digits, spaces and _.:/=+-@"));
                continue;
            }
            tags.push((key.value.clone(), template));
        }
        tags
    }
}
