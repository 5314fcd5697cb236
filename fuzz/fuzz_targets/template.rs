//! Arbitrary text → `Template::parse`. A parsed template prints back as written, parses
//! again to itself, and renders with any variable values; one without variables renders as
//! its own text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesh::config::{Template, Vars};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let template = match Template::parse(input) {
        Ok(t) => t,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };
    assert_eq!(template.as_str(), input);
    assert_eq!(template.to_string(), input);
    assert_eq!(Template::parse(template.as_str()).as_ref(), Ok(&template));

    let vars = Vars {
        user: input,
        uid: u32::MAX,
        hostname: "{user}",
    };
    let rendered = template.render(&vars);
    let literal = template.literal_text();
    assert!(!literal.contains(['{', '}']), "{input:?}: braces left in literal text {literal:?}");
    if template.has_vars() {
        assert!(!input.is_empty());
    } else {
        assert_eq!(rendered, input);
        assert_eq!(literal, input);
    }
    // Variables are substituted once: a value that looks like a template stays literal.
    let empty = Vars {
        user: "",
        uid: 0,
        hostname: "",
    };
    let bare = template.render(&empty);
    assert!(bare.len() >= literal.len());
});
