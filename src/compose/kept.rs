//! A sent email as the console shows it later: its subject, recipient, text and HTML,
//! stored as deflated JSON (a tenth of the size for typical mail).

use std::io::Read;

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};

/// The most a kept message may unpack to: what the render limits let a message be, and
/// a cap on what a damaged or planted row can make the console allocate.
const MAX_UNPACKED: u64 = 8 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptMessage {
    pub subject: String,
    pub to: String,
    pub text: String,
    pub html: Option<String>,
}

impl KeptMessage {
    pub fn pack(&self) -> Vec<u8> {
        let mut out = DeflateEncoder::new(Vec::new(), Compression::fast());
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, self);
        out.finish().unwrap_or_default()
    }

    pub fn unpack(bytes: &[u8]) -> Result<KeptMessage, String> {
        let mut json = Vec::new();
        DeflateDecoder::new(bytes)
            .take(MAX_UNPACKED + 1)
            .read_to_end(&mut json)
            .map_err(|e| format!("the kept message is damaged: {e}"))?;
        if json.len() as u64 > MAX_UNPACKED {
            return Err("the kept message is larger than any tickler keeps".into());
        }
        serde_json::from_slice(&json).map_err(|e| format!("the kept message is damaged: {e}"))
    }
}

/// Writes `bytes` through a deflater; for tests of damaged input.
#[cfg(test)]
fn deflate(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = DeflateEncoder::new(Vec::new(), Compression::fast());
    out.write_all(bytes).expect("in memory");
    out.finish().expect("in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_comes_back_as_it_went_in_and_smaller() {
        let message = KeptMessage {
            subject: "Thank you, Maria".into(),
            to: "Maria <maria@example.com>".into(),
            text: "Hello Maria, thank you for your order.\n".repeat(40),
            html: Some("<p>Hello Maria, thank you for your order.</p>\n".repeat(40)),
        };
        let packed = message.pack();
        assert!(
            packed.len() * 5 < message.text.len() * 2,
            "{}",
            packed.len()
        );
        assert_eq!(KeptMessage::unpack(&packed), Ok(message));
    }

    #[test]
    fn a_damaged_or_huge_row_is_an_error_not_an_allocation() {
        assert!(KeptMessage::unpack(b"not deflate").is_err());
        let bomb = deflate(&vec![b' '; (MAX_UNPACKED + 10) as usize]);
        assert!(bomb.len() < 100_000);
        let err = KeptMessage::unpack(&bomb).unwrap_err();
        assert!(err.contains("larger"), "{err}");
    }
}
