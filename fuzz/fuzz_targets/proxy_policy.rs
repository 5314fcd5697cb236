//! Arbitrary bytes → the API proxy's reading of a request and its pod filters
//! (`rolesh::proxy_fuzz`). The first line is `METHOD PATH[?QUERY]`; the rest is a cluster's
//! answer, filtered as a pod list and as watch lines. Whatever the input: no panic, a
//! request in a namespace outside the allowlist is refused, a pod in a namespace with
//! selectors is never allowed without its labels, and nothing the filters pass holds a pod
//! the selectors do not allow. The same bytes are also an upgraded exec's two directions
//! (`proxy_fuzz::exec_streams`): the exit code its WebSocket and SPDY readers find does not
//! depend on how the bytes were cut into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rolesh::proxy_fuzz::exec_streams(data);
    let Ok(input) = std::str::from_utf8(data) else {
        rolesh::proxy_fuzz::answer(data);
        return;
    };
    let (first, rest) = input.split_once('\n').unwrap_or((input, ""));
    if let Some((method, target)) = first.split_once(' ') {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        rolesh::proxy_fuzz::request(method, path, query);
    }
    rolesh::proxy_fuzz::answer(rest.as_bytes());
});
