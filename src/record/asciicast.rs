//! asciicast v2 (the format of asciinema 2): a JSON header line, then one event per line,
//! `[time, type, data]` with time in seconds since the start. What rolesh writes, checks
//! and plays is shared here by the broker, the session's `Recorder` and `rolesh replay`.

use serde::{Deserialize, Serialize};

/// Event types rolesh writes: output, input, resize (`COLSxROWS`), marker.
pub(crate) const TYPES: [&str; 4] = ["o", "i", "r", "m"];

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub time: f64,
    pub kind: String,
    pub data: String,
}

impl Event {
    /// The line as asciinema writes it (microsecond times), without a newline.
    pub(crate) fn line(&self) -> String {
        let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
        format!(
            "[{:.6}, {}, {}]",
            self.time,
            text(&self.kind),
            text(&self.data)
        )
    }
}

/// Parses and checks one event line: a 3-element array, a finite time not before
/// `previous`, a known type, a string; resizes as `COLSxROWS`.
pub(crate) fn parse_event(line: &str, previous: f64) -> Result<Event, String> {
    if !line.trim_start().starts_with('[') {
        return Err("an event is [time, type, data]".into());
    }
    let (time, kind, data): (f64, String, String) =
        serde_json::from_str(line).map_err(|e| format!("an event is [time, type, data] ({e})"))?;
    if !time.is_finite() || time < 0.0 {
        return Err("the time must be a non-negative number".into());
    }
    if time < previous {
        return Err(format!(
            "time {time} goes back (the previous event was at {previous})"
        ));
    }
    if !TYPES.contains(&kind.as_str()) {
        return Err("the type must be \"o\", \"i\", \"r\" or \"m\"".into());
    }
    if kind == "r" && parse_size(&data).is_none() {
        return Err(format!("a resize is COLSxROWS, not {data:?}"));
    }
    Ok(Event { time, kind, data })
}

/// `COLSxROWS` with both from 1 to 9999.
pub(crate) fn parse_size(text: &str) -> Option<(u16, u16)> {
    let (c, r) = text.split_once('x')?;
    let num = |s: &str| {
        (s.len() <= 4 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .filter(|n| *n > 0)
    };
    Some((num(c)?, num(r)?))
}

/// The header of a recording: what the broker writes, and what replay reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// 2.
    pub version: u8,
    pub width: u16,
    pub height: u16,
    #[serde(default)]
    pub timestamp: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub env: HeaderEnv,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Pauses longer than this are cut when played (asciinema's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_time_limit: Option<f64>,
}

/// The header's `env`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HeaderEnv {
    #[serde(rename = "TERM", default)]
    pub term: Option<String>,
    #[serde(rename = "SHELL", default)]
    pub shell: Option<String>,
}

impl Header {
    /// A version 2 header.
    pub(crate) fn new(cols: u16, rows: u16, timestamp: u64, title: String) -> Header {
        Header {
            version: 2,
            width: cols,
            height: rows,
            timestamp,
            title,
            env: HeaderEnv {
                term: Some("xterm".into()),
                shell: Some("rolesh".into()),
            },
            command: None,
            idle_time_limit: None,
        }
    }

    pub(crate) fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Checks a header line: a JSON object with `"version": 2` and a width and height.
pub(crate) fn parse_header(line: &str) -> Result<Header, String> {
    let header: Header = serde_json::from_str(line).map_err(|e| {
        if e.is_data() {
            format!("the header {e}")
        } else {
            format!("not a JSON header: {e}")
        }
    })?;
    if header.version != 2 {
        return Err("not an asciicast v2 header (\"version\": 2)".into());
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_are_checked() {
        let e = Event {
            time: 1.5,
            kind: "o".into(),
            data: "héllo\u{1b}[0m\r\n".into(),
        };
        assert_eq!(parse_event(&e.line(), 0.0).unwrap(), e);
        assert!(
            parse_event(&e.line(), 2.0)
                .unwrap_err()
                .contains("goes back")
        );
        assert!(parse_event(r#"[1, "x", ""]"#, 0.0).is_err());
        assert!(parse_event(r#"[1, "r", "80;24"]"#, 0.0).is_err());
        assert!(parse_event(r#"[1, "r", "80x24"]"#, 0.0).is_ok());
        assert!(parse_event(r#"[-1, "o", ""]"#, 0.0).is_err());
        assert!(parse_event(r#"[1, "o"]"#, 0.0).is_err());
        assert!(parse_event(r#"{"t":1}"#, 0.0).is_err());
    }

    #[test]
    fn headers() {
        let h = Header::new(80, 24, 1, "t".into());
        assert_eq!(parse_header(&h.line()).unwrap(), h);
        assert!(parse_header(r#"{"version":1,"width":1,"height":1}"#).is_err());
        assert!(
            parse_header(r#"{"version":2,"height":1}"#)
                .unwrap_err()
                .contains("width")
        );
    }
}
