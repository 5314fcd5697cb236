//! Arbitrary bytes → the session monitor's request parser (what the root monitor reads
//! from a user's connection). It must never panic, never take a line longer than the
//! limit, and a request it accepts must print as a line that parses back to the same
//! request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesh::protocol::monitor::{MAX_MONITOR_LINE, MonitorRequest};

fuzz_target!(|data: &[u8]| {
    let parsed = MonitorRequest::parse(data);
    if data.len() > MAX_MONITOR_LINE {
        assert!(parsed.is_err(), "a {}-byte request was accepted", data.len());
    }
    let Ok(request) = parsed else {
        return;
    };
    let line = request.to_line();
    let back = MonitorRequest::parse(line.as_bytes())
        .unwrap_or_else(|e| panic!("{line:?} does not parse back: {e}"));
    assert_eq!(back, request);
});
