//! `tickler.yaml` as anyone might write it: loading must end in a `Config` or in
//! diagnostics that each point at a real place in the text, never in a panic or a hang.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tickler::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The cadence file it names is looked up next to this (missing) path.
    let path = Path::new("fuzz-input/tickler.yaml");
    if let Err(diagnostics) = Config::parse(path, text) {
        assert!(!diagnostics.0.is_empty(), "an error with no diagnostic");
        for d in &diagnostics.0 {
            assert!(!d.message.trim().is_empty(), "an empty message: {d:?}");
            assert!(d.location.line >= 1 && d.location.col >= 1, "{d:?}");
            if d.location.file == path {
                assert!(d.location.line <= yaml_lines(text), "{d:?}");
            }
        }
    }
});

/// Lines as YAML counts them: a lone CR breaks a line too.
fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n").split(['\r', '\n']).count()
}
