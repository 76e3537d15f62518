//! A cadence file as anyone might write it: every cadence is valid or comes with a
//! diagnostic at a real place in the text; no panic, no hang.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tickler::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse_cadences(Path::new("cadences.yaml"), text) {
        Ok(cadences) => {
            for c in &cadences {
                assert!(!c.id.is_empty() && !c.template.is_empty(), "{c:?}");
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.0.is_empty());
            for d in &diagnostics.0 {
                assert!(!d.message.trim().is_empty(), "an empty message: {d:?}");
                assert!(d.location.line >= 1 && d.location.col >= 1, "{d:?}");
                assert!(d.location.line <= yaml_lines(text), "{d:?}");
            }
        }
    }
});

/// Lines as YAML counts them: a lone CR breaks a line too.
fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n").split(['\r', '\n']).count()
}
