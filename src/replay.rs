//! `rolesh replay FILE [--speed N] [--idle-limit S]`: plays an asciicast v2 recording to
//! stdout with its timing. The whole file is checked first, so a damaged recording is
//! reported (`FILE:LINE: message`, exit 2) before anything is played.

use std::io::Write;
use std::path::PathBuf;
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

/// Where a recording is read from.
pub(crate) enum Source {
    File(PathBuf),
    S3 {
        url: String,
        region: Option<String>,
        endpoint: Option<String>,
    },
}

impl Source {
    pub(crate) fn parse(
        text: &str,
        region: Option<String>,
        endpoint: Option<String>,
    ) -> Result<Source, Failure> {
        if !text.starts_with("s3://") {
            if region.is_some() || endpoint.is_some() {
                return Err(Failure::usage(
                    "--region and --endpoint-url are for s3:// recordings",
                ));
            }
            return Ok(Source::File(PathBuf::from(text)));
        }
        if crate::s3::parse_url(text).is_none() {
            return Err(Failure::usage(format!("{text:?} is not s3://BUCKET/KEY")));
        }
        if let Some(e) = &endpoint {
            crate::config::values::endpoint_url(e)
                .map_err(|why| Failure::usage(format!("--endpoint-url: {why}")))?;
        }
        Ok(Source::S3 {
            url: text.to_string(),
            region,
            endpoint,
        })
    }

    fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::S3 { url, .. } => url.clone(),
        }
    }

    /// The recording's text: the file, or the object read with the caller's credentials.
    fn read(&self) -> Result<String, Failure> {
        match self {
            Source::File(path) => std::fs::read_to_string(path)
                .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display()))),
            Source::S3 {
                url,
                region,
                endpoint,
            } => read_s3(url, region.as_deref(), endpoint.as_deref()),
        }
    }
}

/// GetObject of `url` with the caller's own credentials (the auditor's, never the
/// broker's).
fn read_s3(url: &str, region: Option<&str>, endpoint: Option<&str>) -> Result<String, Failure> {
    let (bucket, key) = crate::s3::parse_url(url).expect("checked when parsed");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the AWS client: {e}")))?;
    let bytes = runtime.block_on(async {
        let sdk = crate::s3::callers_config().await;
        let region = region
            .map(str::to_string)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .ok_or_else(|| Failure::usage("no AWS region: set --region or AWS_REGION"))?;
        let client = crate::s3::client_in(&sdk, &region, endpoint);
        let out = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                let why = match (e.code(), e.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => crate::error::error_chain(&e),
                };
                Failure::runtime(format!("cannot read {url}: {why}"))
            })?;
        out.body
            .collect()
            .await
            .map(|b| b.into_bytes())
            .map_err(|e| Failure::runtime(format!("cannot read {url}: {e}")))
    })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Failure::runtime(format!("{url} is not UTF-8 text: not a recording")))
}

pub(crate) fn run(source: &Source, options: &Options) -> Result<u8, Failure> {
    let text = source.read()?;
    let (idle_limit, events) = match load(&text) {
        Ok(loaded) => loaded,
        Err((line, message)) => {
            eprintln!("{}:{line}: {message}", source.name());
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
