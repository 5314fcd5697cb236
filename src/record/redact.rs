//! Secrets out of recordings (`[session] record_redact`, on by default): output shaped
//! like a secret ([`crate::redact::redact_shapes`]: `k8s-aws-v1.` tokens, secret keys,
//! session tokens, `password=…`) becomes `<redacted>` before it is written.
//!
//! Output arrives in chunks (the pty is read in pieces, events are cut at 8 KiB), so a
//! token may be split across two events and match in neither. Output is therefore held
//! back until it is *settled*: up to the last line end (`\n` or `\r`), so that a secret
//! and the `SecretAccessKey:` before it are redacted together. A line that grows past
//! [`MAX_HOLD`] is released up to the start of its trailing run of secret characters, and
//! a run itself longer than that (no secret is) is released whole. Whatever is held goes
//! out, redacted, before any other kind of event and at the end.
//!
//! Settled text in which nothing was redacted is written as the events it arrived in,
//! each at its own time, so replays keep their timing exactly; the file lags behind by
//! the line being typed. Where something was redacted, the settled text becomes one event
//! at the time of its last piece.

use crate::redact::{is_secret_char, redact_shapes};

/// An output event's time and text.
pub(crate) type Piece = (f64, String);

/// The most output held back per recording (bytes).
pub(crate) const MAX_HOLD: usize = 16 * 1024;

/// Output of one recording on its way to the file.
#[derive(Debug, Default)]
pub(crate) struct OutputRedactor {
    /// Output events not yet written, in order: (time, text).
    held: Vec<Piece>,
}

impl OutputRedactor {
    /// Takes one output event; returns what may be written now.
    pub(crate) fn push(&mut self, time: f64, data: String) -> Vec<Piece> {
        self.held.push((time, data));
        let text: String = self.held.iter().map(|(_, d)| d.as_str()).collect();
        let settled = settled_len(&text);
        self.release(&text, settled)
    }

    /// Everything held, redacted: before an event of another kind, and at the end.
    pub(crate) fn flush(&mut self) -> Vec<Piece> {
        let text: String = self.held.iter().map(|(_, d)| d.as_str()).collect();
        self.release(&text, text.len())
    }

    /// Writes out the first `len` bytes of `text` (the held events, concatenated).
    fn release(&mut self, text: &str, len: usize) -> Vec<Piece> {
        if len == 0 {
            return Vec::new();
        }
        let (pieces, rest) = split_pieces(std::mem::take(&mut self.held), len);
        self.held = rest;
        match redact_shapes(&text[..len]) {
            std::borrow::Cow::Borrowed(_) => pieces,
            std::borrow::Cow::Owned(redacted) => {
                let last = pieces.last().map_or(0.0, |(t, _)| *t);
                vec![(last, redacted)]
            }
        }
    }
}

/// How much of `text` no later output can turn into part of a secret.
fn settled_len(text: &str) -> usize {
    let line_end = text.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    if text.len() - line_end <= MAX_HOLD {
        return line_end;
    }
    let run_start = text
        .char_indices()
        .rev()
        .find(|(_, c)| !is_secret_char(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    if text.len() - run_start <= MAX_HOLD {
        run_start
    } else {
        text.len()
    }
}

/// The events making up the first `len` bytes (the one that straddles `len` cut in two,
/// both halves at its time), and the rest.
fn split_pieces(pieces: Vec<Piece>, len: usize) -> (Vec<Piece>, Vec<Piece>) {
    let mut done = Vec::new();
    let mut rest = Vec::new();
    let mut at = 0;
    for (time, data) in pieces {
        if at >= len {
            rest.push((time, data));
        } else if at + data.len() <= len {
            at += data.len();
            done.push((time, data));
        } else {
            let (head, tail) = data.split_at(len - at);
            at = len;
            done.push((time, head.to_string()));
            rest.push((time, tail.to_string()));
        }
    }
    (done, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtZWFzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTU";

    fn run(chunks: &[&str]) -> Vec<Piece> {
        let mut r = OutputRedactor::default();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            out.extend(r.push(i as f64, c.to_string()));
        }
        out.extend(r.flush());
        out
    }

    fn text(events: &[(f64, String)]) -> String {
        events.iter().map(|(_, d)| d.as_str()).collect()
    }

    #[test]
    fn a_token_split_anywhere_is_redacted() {
        let line = format!("{{\"status\":{{\"token\":\"{TOKEN}\"}}}}\r\n");
        for cut in 1..line.len() {
            let (a, b) = line.split_at(cut);
            let got = text(&run(&[a, b]));
            assert!(!got.contains("aHR0cHM6"), "cut at {cut}: {got}");
            assert!(got.contains("<redacted>"), "cut at {cut}: {got}");
        }
        // In three pieces, the last without its line end (flushed at the end).
        let got = text(&run(&[
            &line[..30],
            &line[30..90],
            &line[90..line.len() - 2],
        ]));
        assert!(
            !got.contains("aHR0cHM6") && got.contains("<redacted>"),
            "{got}"
        );
    }

    #[test]
    fn output_without_secrets_keeps_its_events_and_times() {
        let got = run(&["$ ", "l", "s", "\r\n", "a.txt\r\n$ "]);
        assert_eq!(
            got,
            [
                (0.0, "$ ".to_string()),
                (1.0, "l".into()),
                (2.0, "s".into()),
                (3.0, "\r\n".into()),
                (4.0, "a.txt\r\n".into()),
                (4.0, "$ ".into()),
            ]
        );
    }

    /// `cargo test --release --lib -- --ignored redaction_cost --nocapture`: the time to
    /// redact 10 MiB of terminal output in 4 KiB reads, against writing its events.
    /// 1 MiB of ordinary `kubectl get pods -o wide` output in 4 KiB reads passes through
    /// unchanged and in order; the time it took, against writing its events, is printed.
    #[test]
    fn ordinary_output_passes_unchanged_in_4k_reads() {
        let line = "web-7d4b9c6f5-x2k9p   1/1   \u{1b}[32mRunning\u{1b}[0m   0   5d   10.0.3.17   ip-10-0-3-4.ec2.internal\r\n";
        let text = line.repeat((1 << 20) / line.len());
        let chunks: Vec<String> = crate::record::chunks(&text, 4096)
            .map(str::to_string)
            .collect();
        let started = std::time::Instant::now();
        let mut r = OutputRedactor::default();
        let mut out: Vec<Piece> = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            out.extend(r.push(i as f64, c.clone()));
        }
        out.extend(r.flush());
        let redacting = started.elapsed();
        let started = std::time::Instant::now();
        let bytes: usize = out
            .iter()
            .map(|(time, data)| {
                let event = crate::record::asciicast::Event {
                    time: *time,
                    kind: "o".into(),
                    data: data.clone(),
                };
                event.line().len()
            })
            .sum();
        let writing = started.elapsed();
        let joined: String = out.iter().map(|(_, d)| d.as_str()).collect();
        assert!(joined == text, "ordinary output was changed");
        assert!(
            out.windows(2).all(|w| w[0].0 <= w[1].0),
            "events out of order"
        );
        println!(
            "1 MiB in {} reads ({} events out): redaction {redacting:?}, event lines {writing:?} ({bytes} bytes)",
            chunks.len(),
            out.len()
        );
    }

    #[test]
    fn what_is_held_back_is_bounded() {
        let mut r = OutputRedactor::default();
        // A long line without a line end: released up to its last run of secret chars.
        let long = "word ".repeat(MAX_HOLD / 5 + 10);
        let out = r.push(0.0, long.clone());
        assert!(!out.is_empty());
        assert!(r.held.iter().map(|(_, d)| d.len()).sum::<usize>() <= MAX_HOLD);
        // A run of secret characters longer than MAX_HOLD: released whole (and redacted).
        let mut r = OutputRedactor::default();
        let out = r.push(0.0, "A1b".repeat(MAX_HOLD / 3 + 10));
        assert_eq!(text(&out), "<redacted>");
        assert!(r.held.is_empty());
    }
}
