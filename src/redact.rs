//! The one place that decides what a secret looks like. Every audit sink (journald, the
//! JSON Lines file, stderr) and every error the broker sends passes its text through
//! [`redact`] (or [`clean`], which also caps its length), so a secret that slips into an
//! STS error body or a debug message is scrubbed where it would leave the process, not at
//! each call site. The audit trail and the protocol both depend on this module, and it
//! on neither.
//!
//! Two nets: the secrets this process has actually handled (registered by the broker when
//! it receives or signs them: exact, whatever their shape), and patterns for the shapes
//! AWS and Kubernetes secrets take (for secrets nobody registered, e.g. echoed back by a
//! misbehaving endpoint).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use regex::{Regex, RegexSet};

/// What replaces a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// The longest value kept (bytes); longer ones are cut and end in `…`.
pub(crate) const MAX_VALUE: usize = 4096;

/// Redacted, and cut at a character boundary to [`MAX_VALUE`] bytes: what every audit value
/// and every session-supplied string becomes before it is kept.
pub(crate) fn clean(text: &str) -> String {
    let redacted = redact(text);
    if redacted.len() <= MAX_VALUE {
        return redacted.into_owned();
    }
    let mut end = MAX_VALUE - '…'.len_utf8();
    while !redacted.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &redacted[..end])
}

/// Registered secrets kept at once; older ones have expired long before this many more
/// were handled (each role's credentials last at least 15 minutes).
const MAX_KNOWN: usize = 4096;

/// Shorter strings are not registered: they would scrub ordinary words.
const MIN_KNOWN_LEN: usize = 12;

static KNOWN: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Remembers a secret this process holds (a secret key, a session token, a signed
/// token), so that it is scrubbed wherever it would be logged.
pub(crate) fn register_secret(secret: &str) {
    if secret.len() < MIN_KNOWN_LEN {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if known.iter().any(|k| k == secret) {
        return;
    }
    if known.len() == MAX_KNOWN {
        known.pop_front();
    }
    known.push_back(secret.to_string());
}

struct Pattern {
    regex: Regex,
    replacement: &'static str,
    /// For patterns with a candidate in a group: which, and whether it really is a secret.
    check: Option<Check>,
}

struct Check {
    group: usize,
    is_secret: fn(&str) -> bool,
}

/// All the patterns in one automaton: most text matches none, and one pass over it says
/// so (recordings put every byte a session shows through here).
static ANY: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(PATTERNS.iter().map(|p| p.regex.as_str())).expect("redaction patterns")
});

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |re: &str, replacement| Pattern {
        regex: Regex::new(re).expect("redaction pattern"),
        replacement,
        check: None,
    };
    vec![
        // EKS bearer tokens: the prefix stays, so a reader sees what was there.
        p(r"k8s-aws-v1\.[A-Za-z0-9_\-=]+", "k8s-aws-v1.<redacted>"),
        p(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]+", "${1} <redacted>"),
        // Named secrets: `SecretAccessKey: …`, `"SessionToken":"…"`, `<SessionToken>…`,
        // `AWS_SECRET_ACCESS_KEY=…`, `X-Amz-Security-Token=…` (query strings), passwords.
        // (Not a value the first pattern already redacted: `"token":"k8s-aws-v1.<redacted>"`
        // stays as it is.)
        Pattern {
            check: Some(Check {
                group: 3,
                is_secret: |value| value != "k8s-aws-v1.",
            }),
            ..p(
                r#"(?i)((?:aws_)?secret_?access_?key|secretkey|session_?token|security[_-]?token|x-amz-signature|password|passwd|authorization|token)("?\s*[:=]\s*"?|>)([^\s"'<&,;}\]]+)"#,
                "${1}${2}<redacted>",
            )
        },
        // Session tokens and other long opaque credentials: 100+ base64 characters.
        p(r"[A-Za-z0-9+/=_\-]{100,}", "<redacted>"),
        // A 40-character secret access key standing alone (mixed case and a digit; ARNs and
        // paths, whose runs follow ':' or '/', are left alone).
        Pattern {
            check: Some(Check {
                group: 2,
                is_secret: looks_like_secret_key,
            }),
            ..p(
                r"(^|[^A-Za-z0-9+/=:._\-])([A-Za-z0-9+/]{40})($|[^A-Za-z0-9+/=._\-])",
                "${1}<redacted>${3}",
            )
        },
    ]
});

/// `text` with every known or likely secret replaced by `<redacted>`.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
        for secret in known.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
    }
    match redact_shapes(&out) {
        Cow::Borrowed(_) => out,
        Cow::Owned(changed) => Cow::Owned(changed),
    }
}

/// `text` with everything *shaped* like a secret replaced by `<redacted>`: the patterns
/// alone, not the registered secrets (whose number grows with every token the broker
/// signs). What session recordings get, for every byte a session shows.
pub(crate) fn redact_shapes(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if !ANY.is_match(text) {
        return out;
    }
    for pattern in PATTERNS.iter() {
        if let Some(keep) = replace(&out, pattern) {
            out = Cow::Owned(keep);
        }
    }
    out
}

/// Whether `c` can be part of a secret the patterns know (base64, base64url, the `.`
/// of `k8s-aws-v1.`, `~` of bearer tokens): a run of these may still be growing.
pub(crate) fn is_secret_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+/=_-.~".contains(c)
}

/// Random base64 of 30 bytes has both cases and a digit; hex digests and words do not.
fn looks_like_secret_key(candidate: &str) -> bool {
    candidate.bytes().any(|b| b.is_ascii_uppercase())
        && candidate.bytes().any(|b| b.is_ascii_lowercase())
        && candidate.bytes().any(|b| b.is_ascii_digit())
}

/// The replaced text, or `None` when nothing matched (most lines: no allocation).
fn replace(text: &str, pattern: &Pattern) -> Option<String> {
    if !pattern.regex.is_match(text) {
        return None;
    }
    let Some(Check { group, is_secret }) = &pattern.check else {
        return Some(
            pattern
                .regex
                .replace_all(text, pattern.replacement)
                .into_owned(),
        );
    };
    let once = |t: &str| {
        pattern
            .regex
            .replace_all(t, |c: &regex::Captures<'_>| {
                if is_secret(&c[*group]) {
                    let mut out = String::new();
                    c.expand(pattern.replacement, &mut out);
                    out
                } else {
                    c[0].to_string()
                }
            })
            .into_owned()
    };
    // Matches that share a boundary character (two keys separated by one space) need a
    // second pass: the first consumed the separator.
    let replaced = once(&once(text));
    (replaced != text).then_some(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn eks_and_bearer_tokens() {
        let t = redact("GET with Authorization: Bearer k8s-aws-v1.aHR0cHM6Ly9zdHM failed");
        assert!(!t.contains("aHR0cHM6"), "{t}");
        assert!(!redact("bearer abc.def-ghi").contains("abc.def"));
        assert_eq!(
            redact("token k8s-aws-v1.abc"),
            "token k8s-aws-v1.<redacted>"
        );
    }

    #[test]
    fn named_secrets_in_json_xml_env_and_query() {
        for text in [
            r#"{"SecretAccessKey":"abc123XYZ","x":1}"#,
            "<SessionToken>FQoGZXIvYXdzEXAMPLE</SessionToken>",
            "AWS_SECRET_ACCESS_KEY=abc123XYZ",
            "https://sts/?X-Amz-Security-Token=FQoGZXIvYXdz&X-Amz-Signature=ca12",
            "password: hunter2hunter2",
        ] {
            let r = redact(text);
            for secret in ["abc123XYZ", "FQoGZXIvYXdz", "ca12", "hunter2"] {
                assert!(!r.contains(secret), "{text} -> {r}");
            }
        }
    }

    #[test]
    fn a_named_token_is_redacted_once() {
        assert_eq!(
            redact(r#"{"status":{"token":"k8s-aws-v1.aHR0cHM6Ly9zdHM"}}"#),
            r#"{"status":{"token":"k8s-aws-v1.<redacted>"}}"#
        );
        assert_eq!(redact("token=abc123"), "token=<redacted>");
    }

    #[test]
    fn bare_secret_keys_and_long_tokens() {
        let text = format!("signature mismatch for {SECRET} here");
        assert_eq!(redact(&text), "signature mismatch for <redacted> here");
        let long = "FQoGZXIvYXdzE".repeat(20);
        assert_eq!(redact(&format!("token {long}.")), "token <redacted>.");
    }

    #[test]
    fn registered_secrets_whatever_their_shape() {
        register_secret("short-but-registered-1");
        assert_eq!(redact("x short-but-registered-1 y"), "x <redacted> y");
        register_secret("tiny");
        assert_eq!(redact("tiny"), "tiny", "too short to register");
    }

    #[test]
    fn ordinary_audit_values_are_left_alone() {
        for text in [
            "arn:aws:iam::123456789012:role/PlatformAdministratorsGroup2024/Sub",
            "/var/log/rolesh/sessions/alice/0123456789abcdef01234567.cast",
            "kubectl get pods -n web",
            "0123456789abcdef0123456789abcdef01234567",
            "alice",
            "203.0.113.9 52144 22",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
