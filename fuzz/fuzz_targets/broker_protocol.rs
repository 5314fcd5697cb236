//! Arbitrary bytes → the broker's request parser (what the broker reads from any local
//! user). It must never panic; a request it accepts must print as a line that parses back
//! to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesh::protocol::Request;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let line = request.to_line();
    let back = Request::parse(line.as_bytes())
        .unwrap_or_else(|e| panic!("{line:?} does not parse back: {e:?}"));
    assert_eq!(back, request);
});
