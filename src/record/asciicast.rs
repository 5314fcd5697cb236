//! asciicast v2 (the format of asciinema 2): a JSON header line, then one event per line,
//! `[time, type, data]` with time in seconds since the start. What rolesh writes, checks
//! and plays is shared here by the broker, the session's `Recorder` and `rolesh replay`.

use serde_json::{Value, json};

/// Event types rolesh writes: output, input, resize (`COLSxROWS`), marker.
pub const TYPES: [&str; 4] = ["o", "i", "r", "m"];

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub kind: String,
    pub data: String,
}

impl Event {
    /// The line as asciinema writes it (microsecond times), without a newline.
    pub fn line(&self) -> String {
        format!(
            "[{:.6}, {}, {}]",
            self.time,
            json!(self.kind),
            json!(self.data)
        )
    }
}

/// Parses and checks one event line: a 3-element array, a finite time not before
/// `previous`, a known type, a string; resizes as `COLSxROWS`.
pub fn parse_event(line: &str, previous: f64) -> Result<Event, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Some([time, kind, data]) = value
        .as_array()
        .map(Vec::as_slice)
        .and_then(|a| <&[Value; 3]>::try_from(a).ok())
    else {
        return Err("an event is [time, type, data]".into());
    };
    let time = time
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or("the time must be a non-negative number")?;
    if time < previous {
        return Err(format!(
            "time {time} goes back (the previous event was at {previous})"
        ));
    }
    let kind = kind
        .as_str()
        .filter(|k| TYPES.contains(k))
        .ok_or("the type must be \"o\", \"i\", \"r\" or \"m\"")?;
    let data = data.as_str().ok_or("the data must be a string")?;
    if kind == "r" && parse_size(data).is_none() {
        return Err(format!("a resize is COLSxROWS, not {data:?}"));
    }
    Ok(Event {
        time,
        kind: kind.to_string(),
        data: data.to_string(),
    })
}

/// `COLSxROWS` with both from 1 to 9999.
pub fn parse_size(text: &str) -> Option<(u16, u16)> {
    let (c, r) = text.split_once('x')?;
    let num = |s: &str| {
        (s.len() <= 4 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .filter(|n| *n > 0)
    };
    Some((num(c)?, num(r)?))
}

/// The header of a recording: what the broker writes.
pub struct Header<'a> {
    pub cols: u16,
    pub rows: u16,
    pub timestamp: u64,
    pub title: &'a str,
    pub command: Option<&'a str>,
    pub term: Option<&'a str>,
}

impl Header<'_> {
    pub fn line(&self) -> String {
        let mut h = json!({
            "version": 2,
            "width": self.cols,
            "height": self.rows,
            "timestamp": self.timestamp,
            "title": self.title,
            "env": {"TERM": self.term.unwrap_or("xterm"), "SHELL": "rolesh"},
        });
        if let Some(c) = self.command {
            h["command"] = json!(c);
        }
        h.to_string()
    }
}

/// Checks a header line: a JSON object with `"version": 2` and a width and height.
pub fn parse_header(line: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON header: {e}"))?;
    if v.get("version").and_then(Value::as_u64) != Some(2) {
        return Err("not an asciicast v2 header (\"version\": 2)".into());
    }
    for key in ["width", "height"] {
        if v.get(key).and_then(Value::as_u64).is_none() {
            return Err(format!("the header has no {key}"));
        }
    }
    Ok(v)
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
        let h = Header {
            cols: 80,
            rows: 24,
            timestamp: 1,
            title: "t",
            command: None,
            term: None,
        };
        assert!(parse_header(&h.line()).is_ok());
        assert!(parse_header(r#"{"version":1,"width":1,"height":1}"#).is_err());
    }
}
