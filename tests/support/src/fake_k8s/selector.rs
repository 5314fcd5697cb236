//! Kubernetes label selectors (the full `labels.Parse` syntax: equality, set-based, existence,
//! `>`/`<`) and field selectors (`fields.ParseSelector`: `=`, `==`, `!=`, backslash escapes).

use std::collections::BTreeMap;
use std::fmt;

/// A parsed label selector: requirements that must all hold (comma = AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: Operator,
    /// Values (one for `=`, `!=`, `>`, `<`; a set for `in`/`notin`; none for existence).
    pub values: Vec<String>,
}

/// A label selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key=value`, `key==value`
    Equals,
    /// `key!=value`
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key>N`
    GreaterThan,
    /// `key<N`
    LessThan,
}

/// Why a selector does not parse; the message reads like the API server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError(pub String);

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelectorError {}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Greater,
    Less,
    Comma,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::Ident(s) => s.clone(),
            Self::Not => "!".into(),
            Self::Equals => "=".into(),
            Self::DoubleEquals => "==".into(),
            Self::NotEquals => "!=".into(),
            Self::In => "in".into(),
            Self::NotIn => "notin".into(),
            Self::Greater => ">".into(),
            Self::Less => "<".into(),
            Self::Comma => ",".into(),
            Self::Open => "(".into(),
            Self::Close => ")".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '<' | '>' | '(' | ')' | ',')
}

fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let (token, len) = match (c, next) {
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Not, 1),
            ('=', Some('=')) => (Token::DoubleEquals, 2),
            ('=', _) => (Token::Equals, 1),
            ('>', _) => (Token::Greater, 1),
            ('<', _) => (Token::Less, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (',', _) => (Token::Comma, 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let token = match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                };
                tokens.push(token);
                continue;
            }
        };
        tokens.push(token);
        i += len;
    }
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    /// In value position the keywords are plain identifiers (`a in (in)`).
    fn next_value(&mut self) -> Option<Token> {
        self.next().map(|t| match t {
            Token::In => Token::Ident("in".into()),
            Token::NotIn => Token::Ident("notin".into()),
            other => other,
        })
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek() == Some(&Token::Not);
        if negated {
            self.pos += 1;
        }
        let key = match self.next() {
            Some(Token::Ident(key)) => key,
            Some(other) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: identifier",
                    other.describe()
                )));
            }
            None => {
                return Err(SelectorError(
                    "found '', expected: identifier after '!'".into(),
                ));
            }
        };
        validate_key(&key)?;
        if negated {
            return match self.peek() {
                None | Some(Token::Comma) => Ok(Requirement {
                    key,
                    operator: Operator::DoesNotExist,
                    values: Vec::new(),
                }),
                Some(other) => Err(SelectorError(format!(
                    "found '{}', expected: ',' or 'end of string'",
                    other.describe()
                ))),
            };
        }
        let operator = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: Vec::new(),
                });
            }
            Some(Token::Equals | Token::DoubleEquals) => Operator::Equals,
            Some(Token::NotEquals) => Operator::NotEquals,
            Some(Token::In) => Operator::In,
            Some(Token::NotIn) => Operator::NotIn,
            Some(Token::Greater) => Operator::GreaterThan,
            Some(Token::Less) => Operator::LessThan,
            Some(other) => {
                return Err(SelectorError(format!(
                    "found '{}', expected: '=', '!=', '==', 'in', notin'",
                    other.describe()
                )));
            }
        };
        self.pos += 1;
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        for value in &values {
            validate_value(value)?;
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan)
            && values[0].parse::<i64>().is_err()
        {
            return Err(SelectorError(format!(
                "for 'Gt', 'Lt' operators, the value must be an integer: {}",
                values[0]
            )));
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    fn exact_value(&mut self) -> Result<String, SelectorError> {
        match self.peek() {
            None | Some(Token::Comma) => return Ok(String::new()),
            _ => {}
        }
        match self.next_value() {
            Some(Token::Ident(value)) => Ok(value),
            Some(other) => Err(SelectorError(format!(
                "found '{}', expected: identifier",
                other.describe()
            ))),
            None => Ok(String::new()),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            other => {
                return Err(SelectorError(format!(
                    "found '{}', expected: '('",
                    other.map(|t| t.describe()).unwrap_or_default()
                )));
            }
        }
        let mut values = Vec::new();
        let mut current = String::new();
        loop {
            match self.next_value() {
                Some(Token::Ident(value)) => current = value,
                Some(Token::Comma) => values.push(std::mem::take(&mut current)),
                Some(Token::Close) => {
                    values.push(current);
                    break;
                }
                Some(other) => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',', or identifier",
                        other.describe()
                    )));
                }
                None => {
                    return Err(SelectorError("found '', expected: ')'".into()));
                }
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }
}

impl LabelSelector {
    /// The selector that matches everything (the empty string).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses `labelSelector` syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>1,m<2`.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: lex(input),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if parser.tokens.is_empty() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(
                parser
                    .requirement()
                    .map_err(|e| SelectorError(format!("unable to parse requirement: {}", e.0)))?,
            );
            match parser.next() {
                None => break,
                Some(Token::Comma) if parser.peek().is_some() => {}
                Some(Token::Comma) => {
                    return Err(SelectorError(
                        "found '', expected: identifier after ','".into(),
                    ));
                }
                Some(other) => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        other.describe()
                    )));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// A selector from a `matchLabels`/`matchExpressions` object (as in aggregation rules).
    pub fn from_match(
        match_labels: &BTreeMap<String, String>,
        match_expressions: &[(String, String, Vec<String>)],
    ) -> Result<Self, SelectorError> {
        let mut requirements: Vec<Requirement> = match_labels
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        for (key, operator, values) in match_expressions {
            let operator = match operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError(format!("{other:?} is not a valid operator")));
                }
            };
            requirements.push(Requirement {
                key: key.clone(),
                operator,
                values: values.clone(),
            });
        }
        Ok(Self { requirements })
    }

    /// The requirements, in order.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let in_set = || value.is_some_and(|v| self.values.contains(v));
        let compare = |ordering: std::cmp::Ordering| {
            let (Some(actual), Some(wanted)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                self.values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            actual.cmp(&wanted) == ordering
        };
        match self.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals | Operator::In => in_set(),
            Operator::NotEquals | Operator::NotIn => !in_set(),
            Operator::GreaterThan => compare(std::cmp::Ordering::Greater),
            Operator::LessThan => compare(std::cmp::Ordering::Less),
        }
    }
}

/// `[prefix/]name`: prefix a DNS subdomain (≤253), name ≤63 of `[A-Za-z0-9][-A-Za-z0-9_.]*`
/// ending alphanumeric.
pub(crate) fn validate_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(SelectorError(format!(
            "invalid label key \"{key}\": prefix part must be a lowercase RFC 1123 subdomain"
        )));
    }
    if !is_label_name(name) {
        return Err(SelectorError(format!(
            "invalid label key \"{key}\": name part must consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character"
        )));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(SelectorError(format!(
            "invalid label value: \"{value}\": at key: a valid label must be an empty string or \
             consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character"
        )))
    }
}

fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// An RFC 1123 label: ≤63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// An RFC 1123 subdomain: ≤253, dot-separated labels.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses `fieldSelector` syntax (backslash escapes `\,` `\=` `\\`).
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for raw in split_unescaped(input, ',') {
            if raw.is_empty() {
                continue;
            }
            let (field, equal, value) = split_term(&raw).ok_or_else(|| {
                SelectorError(format!(
                    "invalid selector: '{input}'; can't understand '{raw}'"
                ))
            })?;
            terms.push((unescape(&field), equal, unescape(&value)));
        }
        Ok(Self { terms })
    }

    /// The fields the selector names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|(f, _, _)| f.as_str())
    }

    /// Whether the object's fields (looked up by `get`) satisfy every term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = get(field).unwrap_or_default();
            (actual == *value) == *equal
        })
    }
}

fn split_unescaped(input: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Splits `a!=b`, `a==b`, `a=b` at the first unescaped operator.
fn split_term(term: &str) -> Option<(String, bool, String)> {
    let chars: Vec<char> = term.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '!' if chars.get(i + 1) == Some(&'=') => {
                return Some((
                    chars[..i].iter().collect(),
                    false,
                    chars[i + 2..].iter().collect(),
                ));
            }
            '=' => {
                let skip = if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                return Some((
                    chars[..i].iter().collect(),
                    true,
                    chars[i + skip..].iter().collect(),
                ));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn equality_and_set_based_selectors_match_like_kubernetes() {
        let web = labels(&[("app", "frontend"), ("tier", "web"), ("replicas", "3")]);
        let cases = [
            ("", true),
            ("app=frontend", true),
            ("app==frontend", true),
            ("app!=frontend", false),
            ("app!=backend", true),
            ("missing!=x", true),
            ("tier in (web,edge)", true),
            ("tier in (edge)", false),
            ("tier notin (edge, batch)", true),
            ("missing notin (a)", true),
            ("missing in (a)", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=frontend,tier in (web,edge),!canary", true),
            ("app=frontend,tier=edge", false),
            ("replicas>2", true),
            ("replicas<3", false),
            ("missing>1", false),
            ("app in (in, frontend)", true),
        ];
        for (selector, expected) in cases {
            let parsed =
                LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
            assert_eq!(parsed.matches(&web), expected, "{selector}");
        }
    }

    #[test]
    fn empty_values_and_sets_are_allowed() {
        let none = labels(&[("a", "")]);
        assert!(LabelSelector::parse("a=").expect("a=").matches(&none));
        assert!(LabelSelector::parse("a in ()").expect("()").matches(&none));
        assert!(
            LabelSelector::parse("a in (x,)")
                .expect("(x,)")
                .matches(&none)
        );
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in [
            "=x",
            "app in frontend",
            "app in (a",
            "app=a b",
            "app=frontend,",
            "!app=x",
            "bad key=x",
            "app=-x",
            "replicas>x",
            "Prefix.Upper/app=x",
            "app=(x)",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(
            LabelSelector::parse("app=").is_ok(),
            "an empty value is a value"
        );
        let err = LabelSelector::parse("app in frontend").expect_err("no parens");
        assert!(err.0.starts_with("unable to parse requirement"), "{err}");
    }

    #[test]
    fn field_selectors_support_equality_inequality_and_escapes() {
        let selector = FieldSelector::parse("metadata.name=a\\,b,status.phase!=Failed")
            .expect("field selector");
        let get = |phase: &'static str| {
            move |field: &str| match field {
                "metadata.name" => Some("a,b".to_owned()),
                "status.phase" => Some(phase.to_owned()),
                _ => None,
            }
        };
        assert!(selector.matches(get("Running")));
        assert!(!selector.matches(get("Failed")));
        assert_eq!(
            selector.fields().collect::<Vec<_>>(),
            ["metadata.name", "status.phase"]
        );
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(
            FieldSelector::parse("status.phase==Running")
                .expect("==")
                .matches(|_| Some("Running".into()))
        );
    }
}
