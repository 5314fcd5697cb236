//! `{user}`, `{uid}`, `{hostname}` templates for session names, source identity, tags and
//! role ARNs.

use std::fmt;

use super::diag::closest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    User,
    Uid,
    Hostname,
}

impl Var {
    const ALL: [(&'static str, Var); 3] = [
        ("user", Var::User),
        ("uid", Var::Uid),
        ("hostname", Var::Hostname),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A parsed template: literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What a template is rendered with.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub user: &'a str,
    pub uid: u32,
    pub hostname: &'a str,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!(
                    "`}}` without a matching `{{` in template {source:?}"
                ));
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in template {source:?}"))?;
            let name = &after[..close];
            let var = Var::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    format!(
                        "unknown template variable `{{{name}}}` (known: {{user}}, {{uid}}, {{hostname}}){}",
                        closest(name, Var::ALL.iter().map(|(n, _)| *n))
                            .map(|c| format!("; did you mean `{{{c}}}`?"))
                            .unwrap_or_default()
                    )
                })?;
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var(Var::User) => out.push_str(vars.user),
                Part::Var(Var::Uid) => out.push_str(&vars.uid.to_string()),
                Part::Var(Var::Hostname) => out.push_str(vars.hostname),
            }
        }
        out
    }

    /// The literal text only: what must itself obey a name's character rules.
    pub fn literal_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Literal(s) => Some(s.as_str()),
                Part::Var(_) => None,
            })
            .collect()
    }

    pub fn has_vars(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var(_)))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: Vars<'static> = Vars {
        user: "alice",
        uid: 1001,
        hostname: "bastion1",
    };

    #[test]
    fn renders_every_variable() {
        let t = Template::parse("{user}@{hostname}-{uid}").unwrap();
        assert_eq!(t.render(&VARS), "alice@bastion1-1001");
        assert_eq!(t.literal_text(), "@-");
    }

    #[test]
    fn unknown_variable_suggests_the_right_one() {
        let err = Template::parse("{usr}").unwrap_err();
        assert_eq!(
            err,
            "unknown template variable `{usr}` (known: {user}, {uid}, {hostname}); did you mean `{user}`?"
        );
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        assert_eq!(
            Template::parse("a{user").unwrap_err(),
            "unclosed `{` in template \"a{user\""
        );
        assert_eq!(
            Template::parse("a}").unwrap_err(),
            "`}` without a matching `{` in template \"a}\""
        );
    }
}
