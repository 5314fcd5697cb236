//! `rolesh replay FILE [--speed N] [--idle-limit S]`: plays an asciicast v2 recording to
//! stdout with its timing. The whole file is checked first, so a damaged recording is
//! reported (`FILE:LINE: message`, exit 2) before anything is played.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::error::{EXIT_OK, EXIT_USAGE, Failure};
use crate::record::asciicast::{self, Event};

pub(crate) struct Options {
    /// Playback speed (2 = twice as fast).
    pub speed: f64,
    /// Pauses longer than this many seconds are cut to it (default: the header's
    /// `idle_time_limit`, else none).
    pub idle_limit: Option<f64>,
}

pub(crate) fn run(file: &Path, options: &Options) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", file.display())))?;
    let (idle_limit, events) = match load(&text) {
        Ok(loaded) => loaded,
        Err((line, message)) => {
            eprintln!("{}:{line}: {message}", file.display());
            return Ok(EXIT_USAGE);
        }
    };
    let idle_limit = options.idle_limit.or(idle_limit);
    let stdout = std::io::stdout();
    play(
        &events,
        options.speed,
        idle_limit,
        &mut stdout.lock(),
        std::thread::sleep,
    )
    .map_err(|e| Failure::runtime(format!("cannot write to stdout: {e}")))?;
    Ok(EXIT_OK)
}

/// The header's idle limit and the events, or the first problem as (line, message).
pub(crate) fn load(text: &str) -> Result<(Option<f64>, Vec<Event>), (usize, String)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (_, first) = lines.next().ok_or((1, "empty file".to_string()))?;
    let header = asciicast::parse_header(first).map_err(|m| (1, m))?;
    let idle_limit = header.idle_time_limit;
    let mut events = Vec::new();
    let mut previous = 0.0;
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let event = asciicast::parse_event(line, previous).map_err(|m| (number, m))?;
        previous = event.time;
        events.push(event);
    }
    Ok((idle_limit, events))
}

/// Writes the output events with their pauses (divided by `speed`, each capped at
/// `idle_limit`); `sleep` is a parameter so tests need not wait.
pub(crate) fn play(
    events: &[Event],
    speed: f64,
    idle_limit: Option<f64>,
    out: &mut impl Write,
    mut sleep: impl FnMut(Duration),
) -> std::io::Result<()> {
    let mut previous = 0.0;
    for event in events {
        let mut pause = event.time - previous;
        previous = event.time;
        if let Some(limit) = idle_limit {
            pause = pause.min(limit);
        }
        if pause > 0.0 {
            sleep(Duration::from_secs_f64(pause / speed));
        }
        if event.kind == "o" {
            out.write_all(event.data.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAST: &str = "{\"version\":2,\"width\":80,\"height\":24}\n[0.5, \"o\", \"a\"]\n[10.5, \"i\", \"x\"]\n[20.5, \"o\", \"b\"]\n";

    #[test]
    fn plays_output_with_scaled_and_capped_pauses() {
        let (_, events) = load(CAST).unwrap();
        let mut out = Vec::new();
        let mut pauses = Vec::new();
        play(&events, 2.0, Some(4.0), &mut out, |d| {
            pauses.push(d.as_secs_f64())
        })
        .unwrap();
        assert_eq!(out, b"ab");
        assert_eq!(pauses, vec![0.25, 2.0, 2.0]);
    }

    #[test]
    fn errors_name_the_line() {
        let bad = CAST.replace("[20.5, \"o\"", "[2.5, \"o\"");
        let (line, message) = load(&bad).unwrap_err();
        assert_eq!(line, 4);
        assert!(message.contains("goes back"), "{message}");
        assert_eq!(load("{\"version\":1}\n").unwrap_err().0, 1);
    }
}
