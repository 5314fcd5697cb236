//! Exit codes (SPEC §4) and the one-line failures rolesh prints as `rolesh: …`.

// The codes and `Failure` are the token path's (shared with `rolesh-token`).
pub(crate) use rolesh_token_core::error::{
    EXIT_DENIED, EXIT_NOT_ALLOWED, EXIT_NOT_FOUND, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Failure,
};

/// An error and its sources, "outer: inner: innermost", each message once, on one line.
/// (The SDK's own context printer appends a Debug dump, too much for a one-line message.)
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string().replace('\n', " ");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
