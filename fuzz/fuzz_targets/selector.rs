//! Arbitrary text → `Selector::parse`. A parsed selector must print (Display) as text that
//! parses back to the same selector, and `matches` must not panic on label maps built from
//! the input. A selector of positive requirements (`k=v`, `k in (…)`, `k`) on distinct keys
//! must match the labels built to satisfy it.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use rolesh::config::Selector;
use rolesh::config::selector::Op;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = Selector::parse(input) else {
        return;
    };
    assert!(!selector.requirements.is_empty());

    let shown = selector.to_string();
    let back = Selector::parse(&shown)
        .unwrap_or_else(|e| panic!("{input:?} displays as {shown:?}, which does not parse: {e}"));
    assert_eq!(back, selector, "{input:?} displays as {shown:?}, which parses differently");
    assert_eq!(back.to_string(), shown, "Display is not stable for {input:?}");

    // Labels that satisfy every positive requirement (first value of a set).
    let mut satisfying = BTreeMap::new();
    let mut keys = BTreeSet::new();
    let mut positive_distinct = true;
    for r in &selector.requirements {
        positive_distinct &= keys.insert(r.key.clone());
        match &r.op {
            Op::Equals(v) => {
                satisfying.insert(r.key.clone(), v.clone());
            }
            Op::In(vs) => {
                satisfying.insert(r.key.clone(), vs.first().cloned().unwrap_or_default());
            }
            Op::Exists => {
                satisfying.insert(r.key.clone(), String::new());
            }
            Op::NotEquals(_) | Op::NotIn(_) | Op::DoesNotExist => positive_distinct = false,
        }
    }
    if positive_distinct {
        assert!(selector.matches(&satisfying), "{input:?} does not match {satisfying:?}");
    } else {
        let _ = selector.matches(&satisfying);
    }

    // Labels taken from the raw input: `k=v` pieces split on `,` (and every word as a key).
    let mut raw = BTreeMap::new();
    for piece in input.split(',') {
        match piece.split_once('=') {
            Some((k, v)) => raw.insert(k.trim().to_string(), v.trim().to_string()),
            None => raw.insert(piece.trim().to_string(), String::new()),
        };
    }
    let _ = selector.matches(&raw);
    let _ = selector.matches(&BTreeMap::new());
    // Each requirement alone, on a map holding only its key (with the key as the value).
    for r in &selector.requirements {
        let alone = Selector { requirements: vec![r.clone()] };
        let one = BTreeMap::from([(r.key.clone(), r.key.clone())]);
        let _ = alone.matches(&one);
    }
});
