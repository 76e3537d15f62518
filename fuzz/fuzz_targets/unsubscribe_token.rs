//! Unsubscribe tokens: anything a link scanner or an attacker sends is refused unless
//! it is exactly the token tickler made, and every token tickler makes verifies back to
//! its contact and channel.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tickler::domain::Channel;
use tickler::unsubscribe::Signer;

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new(b"0123456789abcdef0123456789abcdef".to_vec());
    let text = String::from_utf8_lossy(data);
    // As a token from a URL.
    if let Some((contact, channel)) = signer.verify(&text) {
        // Only the canonical token verifies: no second spelling of a valid one.
        assert_eq!(signer.token(&contact, channel), text);
    }
    // As a contact id: its token verifies back to it, and any one-byte change fails.
    let channel = if data.first().is_some_and(|b| b & 1 == 1) {
        Channel::Postcard
    } else {
        Channel::Email
    };
    let token = signer.token(&text, channel);
    assert_eq!(signer.verify(&token), Some((text.to_string(), channel)));
    if !data.is_empty() {
        let mut bytes = token.clone().into_bytes();
        let i = data[0] as usize % bytes.len();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).expect("base64 is ASCII");
        assert_eq!(signer.verify(&changed), None, "{token} -> {changed}");
    }
});
