//! Kubernetes label selectors, as `kubectl get -l` and the API's `labelSelector` accept
//! them: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas
//! (all must hold). Pods are offered when they match ANY selector of a namespace.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn parse(input: &str) -> Result<Selector, String> {
        let mut lexer = Lexer::new(input);
        let mut requirements = Vec::new();
        loop {
            requirements.push(parse_requirement(&mut lexer)?);
            match lexer.next()? {
                None => break,
                Some(Token::Comma) => continue,
                Some(t) => return Err(format!("expected `,` or end of selector, found {t}")),
            }
        }
        Ok(Selector { requirements })
    }

    /// Whether a set of labels satisfies every requirement (Kubernetes semantics: `!=`
    /// and `notin` also hold when the label is absent).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match &r.op {
                Op::Equals(v) => value == Some(v),
                Op::NotEquals(v) => value != Some(v),
                Op::In(vs) => value.is_some_and(|x| vs.contains(x)),
                Op::NotIn(vs) => !value.is_some_and(|x| vs.contains(x)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// The canonical text form, accepted back by `parse` and by the Kubernetes API.
/// On the wire (`whoami`) a selector is its text; reading one back parses it again, so a
/// malformed selector from a broker is an error, not a selector that matches everything.
impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Selector, D::Error> {
        let text = String::deserialize(d)?;
        Selector::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid selector {text:?}: {e}")))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let k = &r.key;
            match &r.op {
                Op::Equals(v) => write!(f, "{k}={v}")?,
                Op::NotEquals(v) => write!(f, "{k}!={v}")?,
                Op::In(vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Op::NotIn(vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Op::Exists => write!(f, "{k}")?,
                Op::DoesNotExist => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Comma,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Bang => f.write_str("`!`"),
            Token::Eq => f.write_str("`=`"),
            Token::DoubleEq => f.write_str("`==`"),
            Token::NotEq => f.write_str("`!=`"),
            Token::Comma => f.write_str("`,`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
        }
    }
}

struct Lexer<'a> {
    rest: &'a str,
    peeked: Option<Option<Token>>,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Lexer {
            rest: input,
            peeked: None,
        }
    }

    fn peek(&mut self) -> Result<Option<&Token>, String> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex()?);
        }
        Ok(self.peeked.as_ref().and_then(Option::as_ref))
    }

    fn next(&mut self) -> Result<Option<Token>, String> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn lex(&mut self) -> Result<Option<Token>, String> {
        self.rest = self.rest.trim_start();
        let mut chars = self.rest.chars();
        let Some(c) = chars.next() else {
            return Ok(None);
        };
        let two = chars.next();
        let (token, len) = match (c, two) {
            ('!', Some('=')) => (Token::NotEq, 2),
            ('=', Some('=')) => (Token::DoubleEq, 2),
            ('!', _) => (Token::Bang, 1),
            ('=', _) => (Token::Eq, 1),
            (',', _) => (Token::Comma, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            _ => {
                let len = self
                    .rest
                    .find(|c: char| c.is_whitespace() || "!=,()".contains(c))
                    .unwrap_or(self.rest.len());
                (Token::Word(self.rest[..len].to_string()), len)
            }
        };
        self.rest = &self.rest[len..];
        Ok(Some(token))
    }
}

fn parse_requirement(lexer: &mut Lexer<'_>) -> Result<Requirement, String> {
    let negated = if lexer.peek()? == Some(&Token::Bang) {
        lexer.next()?;
        true
    } else {
        false
    };
    let key = match lexer.next()? {
        Some(Token::Word(w)) => w,
        Some(t) => return Err(format!("expected a label key, found {t}")),
        None => return Err("expected a label key, found the end of the selector".into()),
    };
    validate_key(&key)?;
    if negated {
        return Ok(Requirement {
            key,
            op: Op::DoesNotExist,
        });
    }
    let op = match lexer.peek()? {
        None | Some(Token::Comma) => Op::Exists,
        Some(Token::Eq | Token::DoubleEq) => {
            lexer.next()?;
            Op::Equals(parse_value(lexer)?)
        }
        Some(Token::NotEq) => {
            lexer.next()?;
            Op::NotEquals(parse_value(lexer)?)
        }
        Some(Token::Word(w)) if w == "in" || w == "notin" => {
            let not = w == "notin";
            lexer.next()?;
            let values = parse_set(lexer)?;
            if not {
                Op::NotIn(values)
            } else {
                Op::In(values)
            }
        }
        Some(t) => {
            return Err(format!(
                "expected `=`, `==`, `!=`, `in` or `notin` after `{key}`, found {t}"
            ));
        }
    };
    Ok(Requirement { key, op })
}

/// A value after `=`/`!=`: may be empty (`tier=`), which Kubernetes accepts.
fn parse_value(lexer: &mut Lexer<'_>) -> Result<String, String> {
    match lexer.peek()? {
        Some(Token::Word(_)) => {
            let Some(Token::Word(w)) = lexer.next()? else {
                unreachable!("peeked a word")
            };
            validate_value(&w)?;
            Ok(w)
        }
        None | Some(Token::Comma) => Ok(String::new()),
        Some(t) => Err(format!("expected a label value, found {t}")),
    }
}

fn parse_set(lexer: &mut Lexer<'_>) -> Result<Vec<String>, String> {
    match lexer.next()? {
        Some(Token::Open) => {}
        Some(t) => return Err(format!("expected `(` to start a set of values, found {t}")),
        None => return Err("expected `(` to start a set of values".into()),
    }
    let mut values = Vec::new();
    loop {
        match lexer.next()? {
            Some(Token::Word(w)) => {
                validate_value(&w)?;
                values.push(w);
            }
            Some(t) => return Err(format!("expected a value in the set, found {t}")),
            None => return Err("unclosed `(` in the set of values".into()),
        }
        match lexer.next()? {
            Some(Token::Comma) => continue,
            Some(Token::Close) => break,
            Some(t) => {
                return Err(format!(
                    "expected `,` or `)` in the set of values, found {t}"
                ));
            }
            None => return Err("unclosed `(` in the set of values".into()),
        }
    }
    Ok(values)
}

/// `[prefix/]name`: prefix a DNS subdomain of at most 253 characters, name a qualified
/// name of at most 63.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!(
            "invalid label key `{key}`: the prefix must be a DNS subdomain (lowercase letters, digits, `-`, `.`)"
        ));
    }
    if !is_qualified_name(name) {
        return Err(format!(
            "invalid label key `{key}`: names are 1-63 characters of letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value `{value}`: values are at most 63 characters of letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit"
        ))
    }
}

fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// RFC 1123 label: what Kubernetes namespace names are.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_based_forms() {
        let s =
            Selector::parse("app=frontend, tier in (web,edge),!legacy,env!=prod,track").unwrap();
        assert_eq!(s.requirements.len(), 5);
        assert!(s.matches(&labels(&[
            ("app", "frontend"),
            ("tier", "edge"),
            ("track", "")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "frontend"),
            ("tier", "db"),
            ("track", "")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "frontend"),
            ("tier", "web"),
            ("track", ""),
            ("legacy", "1")
        ])));
        assert!(!s.matches(&labels(&[("app", "frontend"), ("tier", "web")])));
    }

    #[test]
    fn absent_labels_satisfy_negative_requirements() {
        let s = Selector::parse("env!=prod,zone notin (a)").unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(!s.matches(&labels(&[("zone", "a")])));
    }

    #[test]
    fn double_equals_and_prefixed_keys() {
        let s = Selector::parse("app.kubernetes.io/name==web").unwrap();
        assert!(s.matches(&labels(&[("app.kubernetes.io/name", "web")])));
    }

    #[test]
    fn display_round_trips() {
        for text in ["a=b,c!=d", "x in (1,2)", "x notin (1)", "k,!j", "a="] {
            let s = Selector::parse(text).unwrap();
            assert_eq!(Selector::parse(&s.to_string()).unwrap(), s, "{text}");
        }
    }

    #[test]
    fn errors_say_what_was_expected() {
        let cases = [
            ("", "expected a label key, found the end of the selector"),
            ("app=", ""),
            (
                "tier in web",
                "expected `(` to start a set of values, found `web`",
            ),
            ("tier in (web", "unclosed `(` in the set of values"),
            ("app=a b", "expected `,` or end of selector, found `b`"),
            ("-bad=x", "invalid label key `-bad`"),
            (
                "app=frontend,",
                "expected a label key, found the end of the selector",
            ),
            (
                "app gt 3",
                "expected `=`, `==`, `!=`, `in` or `notin` after `app`, found `gt`",
            ),
            ("a=(", "expected a label value, found `(`"),
        ];
        for (input, want) in cases {
            match Selector::parse(input) {
                Ok(_) if want.is_empty() => {}
                Ok(s) => panic!("{input:?} parsed as {s:?}"),
                Err(e) => assert!(e.starts_with(want) && !want.is_empty(), "{input:?}: {e}"),
            }
        }
    }
}
