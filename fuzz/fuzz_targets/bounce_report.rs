//! Reports from outside: any bytes that arrive in the bounce mailbox are classified
//! without a panic, and what comes out stays within the report reader's limits; a VERP
//! token verifies only as the canonical token of its send.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tickler::bounce::report::{
    Classified, MAX_ADDRESS, MAX_DIAGNOSTIC, MAX_RECIPIENTS, MAX_TOKEN, classify,
};
use tickler::unsubscribe::Signer;

/// mail-parser checks its own state with `debug_assert!`, which fuzzing builds switch on
/// and releases do not; `classify` turns such a panic into "not a report". Panics from
/// anywhere else still end the run, as libFuzzer's own hook does.
fn tolerate_parser_assertions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parser = info.location().is_some_and(|l| l.file().contains("mail-parser"));
            if !in_parser {
                fuzzer(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_parser_assertions();
    match classify(data, Some("bounces@fjord.example")) {
        Classified::Bounce(bounce) => {
            assert!(!bounce.recipients.is_empty() && bounce.recipients.len() <= MAX_RECIPIENTS);
            for r in &bounce.recipients {
                assert!(r.address.len() <= MAX_ADDRESS);
                assert!(r.diagnostic.chars().count() <= MAX_DIAGNOSTIC);
            }
            assert!(bounce.verp_token.is_none_or(|t| t.len() <= MAX_TOKEN));
        }
        Classified::Complaint(complaint) => {
            assert!(complaint.address.is_none_or(|a| a.len() <= MAX_ADDRESS));
            assert!(complaint.verp_token.is_none_or(|t| t.len() <= MAX_TOKEN));
        }
        Classified::NotAReport { .. } => {}
    }
    let signer = Signer::new(b"0123456789abcdef0123456789abcdef".to_vec());
    let text = String::from_utf8_lossy(data);
    if let Some(id) = signer.verify_verp(&text) {
        assert_eq!(signer.verp_token(id), text.to_ascii_lowercase());
    }
});
