//! Signed tokens under the key in `http.secret_file`: unsubscribe links, which name a
//! contact and a channel, and VERP return paths, which name a send. Each carries an
//! HMAC-SHA256 tag, so it cannot be forged, altered or guessed; checking it takes
//! constant time.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::domain::Channel;

/// Bytes of the tag kept in a token: 128 bits.
const TAG: usize = 16;

pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: Vec<u8>) -> Signer {
        Signer { key }
    }

    /// Reads the key, creating it (32 random bytes, mode 0600) if the file is missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Signer> {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = text.trim().as_bytes().to_vec();
                anyhow::ensure!(
                    key.len() >= 32,
                    "{}: the secret must be at least 32 characters",
                    path.display()
                );
                Ok(Signer { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
                let key = hex::encode(bytes);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(key.as_bytes())?;
                file.sync_all()?;
                Ok(Signer {
                    key: key.into_bytes(),
                })
            }
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// `PAYLOAD.TAG`, both base64url: safe in a URL path.
    pub fn token(&self, contact: &str, channel: Channel) -> String {
        let payload = format!("{}:{contact}", channel_code(channel));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG])
        )
    }

    /// The contact and channel a genuine token names; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<(String, Channel)> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != TAG {
            return None;
        }
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_truncated_left(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let (code, contact) = payload.split_once(':')?;
        let channel = match code {
            "e" => Channel::Email,
            "p" => Channel::Postcard,
            _ => return None,
        };
        Some((contact.to_owned(), channel))
    }
}

fn channel_code(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "e",
        Channel::Postcard => "p",
    }
}

impl Signer {
    /// The VERP token of send `id`: `s<ID>-<TAG>`, lower case, for the return path's
    /// `LOCAL+TOKEN@DOMAIN`; some servers fold an address's case, so none is needed.
    pub fn verp_token(&self, id: i64) -> String {
        let mut mac = self.mac();
        mac.update(format!("verp:{id}").as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("s{id}-{}", hex::encode(&tag[..VERP_TAG]))
    }

    /// The send a genuine VERP token names.
    pub fn verify_verp(&self, token: &str) -> Option<i64> {
        let token = token.to_ascii_lowercase();
        let (id, hex) = token.strip_prefix('s')?.split_once('-')?;
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        if hex.len() != VERP_TAG * 2 {
            return None;
        }
        let tag: Option<Vec<u8>> = (0..VERP_TAG)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let mut mac = self.mac();
        mac.update(format!("verp:{id}").as_bytes());
        mac.verify_truncated_left(&tag?).ok()?;
        Some(id)
    }
}

/// Bytes of the tag in a VERP token: 64 bits keep the return path short, and a forger
/// would need a report accepted per guess.
const VERP_TAG: usize = 8;

/// The signer for this configuration: present when `http.public_url` (links) or
/// `email.bounce.return_path` (VERP) is set.
pub fn signer(config: &Config) -> anyhow::Result<Option<Signer>> {
    let links = config.http.as_ref().is_some_and(|h| h.public_url.is_some());
    let verp = config
        .email
        .bounce
        .as_ref()
        .is_some_and(|b| b.return_path.is_some());
    if !(links || verp) {
        return Ok(None);
    }
    Signer::load_or_create(&config.secret_file()).map(Some)
}

/// The return path (envelope sender) of send `id`: `LOCAL+TOKEN@DOMAIN` when
/// `email.bounce.return_path` is set.
pub fn return_path(config: &Config, signer: Option<&Signer>, id: i64) -> Option<String> {
    let base = config.email.bounce.as_ref()?.return_path.as_ref()?;
    let (local, domain) = base.as_str().rsplit_once('@')?;
    Some(format!("{local}+{}@{domain}", signer?.verp_token(id)))
}

/// The customer's preferences page: `PUBLIC_URL/preferences/TOKEN` (the token of their
/// email unsubscribe link), else the unsubscribe `mailto:`.
pub fn preferences_url(config: &Config, signer: Option<&Signer>, contact: &str) -> String {
    match (
        signer,
        config.http.as_ref().and_then(|h| h.public_url.as_deref()),
    ) {
        (Some(signer), Some(base)) => {
            format!(
                "{base}/preferences/{}",
                signer.token(contact, Channel::Email)
            )
        }
        _ => mailto(config),
    }
}

/// The `mailto:` that asks the business to unsubscribe a contact, for mail clients that
/// do not follow links.
pub fn mailto(config: &Config) -> String {
    let to = config
        .business
        .reply_to
        .as_ref()
        .unwrap_or(&config.business.email);
    format!("mailto:{to}?subject=unsubscribe")
}

/// The unsubscribe link of a contact: `PUBLIC_URL/unsubscribe/TOKEN` when the HTTP
/// endpoint is configured, else a `mailto:` to the business.
pub fn url(config: &Config, signer: Option<&Signer>, contact: &str, channel: Channel) -> String {
    match (
        signer,
        config.http.as_ref().and_then(|h| h.public_url.as_deref()),
    ) {
        (Some(signer), Some(base)) => {
            format!("{base}/unsubscribe/{}", signer.token(contact, channel))
        }
        _ => mailto(config),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_resist_tampering() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let token = signer.token("C-1001", Channel::Email);
        assert_eq!(
            signer.verify(&token),
            Some(("C-1001".to_owned(), Channel::Email))
        );
        // Another contact's payload with this tag fails.
        let (_, tag) = token.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("e:C-1002"));
        assert_eq!(signer.verify(&forged), None);
        // A flipped bit in the tag fails.
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(signer.verify(&String::from_utf8(bytes).unwrap()), None);
        // Another key's tokens fail.
        let other = Signer::new(b"fedcba9876543210fedcba9876543210".to_vec());
        assert_eq!(other.verify(&signer.token("C-1001", Channel::Email)), None);
        assert_eq!(signer.verify("garbage"), None);
        assert_eq!(signer.verify(""), None);
    }

    #[test]
    fn verp_tokens_name_their_send_whatever_the_case() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let token = signer.verp_token(4711);
        assert!(
            token.starts_with("s4711-") && token.len() == 6 + 16,
            "{token}"
        );
        assert_eq!(signer.verify_verp(&token), Some(4711));
        assert_eq!(signer.verify_verp(&token.to_uppercase()), Some(4711));
        let forged = token.replacen("4711", "4712", 1);
        assert_eq!(signer.verify_verp(&forged), None);
        for bad in [
            "",
            "s",
            "s1-",
            "s-1-00",
            "x4711-0011223344556677",
            "s4711-zz11223344556677",
        ] {
            assert_eq!(signer.verify_verp(bad), None, "{bad}");
        }
        let other = Signer::new(b"fedcba9876543210fedcba9876543210".to_vec());
        assert_eq!(other.verify_verp(&token), None);
    }
}
