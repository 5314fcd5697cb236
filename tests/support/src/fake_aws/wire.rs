//! Wire formats shared by the fake services: errors, XML/JSON rendering, identifiers.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Map, Value};
use std::fmt;
use std::time::SystemTime;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Namespace of every STS query-protocol document.
pub const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The HTTP response type the fake server produces.
pub type HttpResponse = Response<Full<Bytes>>;

/// An error as an AWS service reports it: HTTP status, error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// HTTP status of the error response.
    pub status: StatusCode,
    /// AWS error code, e.g. `SignatureDoesNotMatch` or `ResourceNotFoundException`.
    pub code: String,
    /// Human readable message, worded like the real service's.
    pub message: String,
}

impl AwsError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// `ValidationError` (400), the query protocol's error for bad parameters.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    /// STS's wording for a parameter that breaks a modelled constraint.
    pub(crate) fn constraint(value: &str, field: &str, constraint: &str) -> Self {
        Self::validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy \
             constraint: {constraint}"
        ))
    }

    /// Whether the error is the caller's fault (`Sender`) rather than the service's.
    pub fn is_sender_fault(&self) -> bool {
        self.status.is_client_error()
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for AwsError {}

/// A response document, rendered as XML (query protocol) or JSON.
#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Tree(Vec<(&'static str, Node)>),
}

impl Node {
    pub(crate) fn text(value: impl Into<String>) -> Self {
        Self::Text(value.into())
    }

    /// XML element `name` holding this node; `xmlns` goes on the element itself.
    pub(crate) fn to_xml(&self, name: &str, xmlns: Option<&str>) -> String {
        let mut out = String::new();
        self.write_xml(name, xmlns, &mut out);
        out
    }

    fn write_xml(&self, name: &str, xmlns: Option<&str>, out: &mut String) {
        out.push('<');
        out.push_str(name);
        if let Some(ns) = xmlns {
            out.push_str(&format!(" xmlns=\"{ns}\""));
        }
        out.push('>');
        match self {
            Self::Text(text) => out.push_str(&xml_escape(text)),
            Self::Tree(children) => {
                for (child, node) in children {
                    node.write_xml(child, None, out);
                }
            }
        }
        out.push_str(&format!("</{name}>"));
    }

    /// JSON value of this node (text as strings, trees as objects in order).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::String(text.clone()),
            Self::Tree(children) => Value::Object(
                children
                    .iter()
                    .map(|(name, node)| ((*name).to_owned(), node.to_json()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete HTTP response carrying `x-amzn-RequestId`.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    request_id: &str,
    body: String,
) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// ISO 8601 timestamp with second precision, as STS writes `Expiration`.
pub(crate) fn iso8601(at: SystemTime) -> String {
    let seconds = OffsetDateTime::from(at).replace_nanosecond(0);
    seconds
        .map(|t| t.format(&Rfc3339).unwrap_or_default())
        .unwrap_or_default()
}

/// A request id shaped like AWS's (a UUID), unique per counter value.
pub(crate) fn request_id(counter: u64) -> String {
    let mixed = mix(counter);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (mixed >> 32) as u32,
        (mixed >> 16) & 0xffff,
        mixed & 0xfff,
        (mixed >> 20) & 0xfff,
        counter
    )
}

/// An identifier like IAM's unique ids: `prefix` followed by 17 characters derived from `seed`.
pub(crate) fn stable_id(prefix: &str, seed: &str) -> String {
    stable_chars(prefix, seed, 17)
}

/// `prefix` followed by `len` characters of `[A-Z2-7]` derived deterministically from `seed`.
pub(crate) fn stable_chars(prefix: &str, seed: &str, len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut state = fnv1a(seed.as_bytes());
    let mut out = String::from(prefix);
    for _ in 0..len {
        state = mix(state);
        out.push(ALPHABET[(state % 32) as usize] as char);
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64 finaliser: a cheap, deterministic bit mixer (not cryptographic).
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn xml_is_escaped_and_namespaced() {
        let node = Node::Tree(vec![("Message", Node::text("a<b & 'c'"))]);
        assert_eq!(
            node.to_xml("Error", Some("urn:x")),
            "<Error xmlns=\"urn:x\"><Message>a&lt;b &amp; &apos;c&apos;</Message></Error>"
        );
    }

    #[test]
    fn timestamps_have_second_precision() {
        let at = UNIX_EPOCH + Duration::from_millis(1_704_067_200_500);
        assert_eq!(iso8601(at), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(stable_id("AROA", "x"), stable_id("AROA", "x"));
        assert_ne!(stable_id("AROA", "x"), stable_id("AROA", "y"));
        assert_eq!(stable_id("AROA", "x").len(), 21);
        assert_ne!(request_id(1), request_id(2));
        assert_eq!(request_id(7).len(), 36);
    }
}
