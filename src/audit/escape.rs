//! Control characters out of the audit trail. Session-supplied values (a command line, a
//! pod name, a reason) may carry ESC, CR or LF; printed raw by `journalctl -o cat` or
//! `cat audit.jsonl` they could move the cursor, recolour, or start what looks like a
//! line of its own. Both sinks escape them the same way, as JSON does: `\n`, `\r`, `\t`,
//! and `\u00XX` for every other C0 character, DEL and the C1 range (U+0080–U+009F, which
//! some terminals obey as 8-bit controls); a backslash becomes `\\`, so an escape in the
//! trail is never ambiguous with text the user typed.

use std::borrow::Cow;
use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{Formatter, Serializer};

/// Whether `c` is escaped in the trail (besides the backslash).
fn is_control(c: char) -> bool {
    c.is_control()
}

/// `text` with control characters and backslashes escaped (journald values, MESSAGE).
pub(crate) fn controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || is_control(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_control(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A log line for stderr (the journal, under systemd): control characters escaped but
/// for the line's own final newline. Backslashes stay: Debug-formatted values already
/// escape theirs, and this is a log, not the audit trail.
pub(crate) fn log_line(text: &str) -> Cow<'_, str> {
    let (body, newline) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text, ""),
    };
    if !body.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_control(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push_str(newline);
    Cow::Owned(out)
}

/// `value` as compact JSON in which DEL and C1 characters are escaped too (serde_json
/// escapes only C0, `"` and `\`): the JSON Lines file and `rolesh audit --json`.
pub(crate) fn json(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = Serializer::with_formatter(&mut out, NoRawControls);
    // Writing a Value to a Vec fails only on non-string map keys, which a Value has none of.
    if value.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// serde_json's compact format, with DEL and C1 written as `\u00XX`.
struct NoRawControls;

impl Formatter for NoRawControls {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(is_control) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().expect("found a char");
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_like_json() {
        assert_eq!(controls("kubectl get pods"), "kubectl get pods");
        assert_eq!(
            controls("a\r\nb\u{1b}[2J\u{7f}\u{9b}c\\n\t"),
            "a\\r\\nb\\u001b[2J\\u007f\\u009bc\\\\n\\t"
        );
        assert_eq!(controls("café ü"), "café ü", "printable non-ASCII stays");
    }

    #[test]
    fn log_lines_keep_their_own_newline_only() {
        assert_eq!(log_line("plain\n"), "plain\n");
        assert_eq!(log_line("a\r\nb\u{1b}[2J\n"), "a\\r\\nb\\u001b[2J\n");
        assert_eq!(log_line(r#"x="a\"b""#), r#"x="a\"b""#);
    }

    #[test]
    fn json_lines_have_no_raw_control_characters() {
        let v = serde_json::json!({"command": "x\u{1b}[1m\u{7f}\u{85}\u{9b}y\r\n", "n": 1});
        let line = json(&v);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert_eq!(
            line,
            r#"{"command":"x\u001b[1m\u007f\u0085\u009by\r\n","n":1}"#
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v, "the same value once parsed");
    }
}
