//! DKIM: the key in `email.dkim.key_file`, read once into lettre's signer, which signs
//! every email (relaxed/relaxed) over the headers a receiver and RFC 8058 care about;
//! and new keys with the DNS record to publish for them (`tickler dkim keygen`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

use crate::config;

/// A key file is a few kilobytes; anything far larger is not one.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// The smallest RSA key receivers still trust.
pub const MIN_RSA_BITS: usize = 2048;

/// The headers each signature covers (SPEC section 9), Reply-To as well when present.
const SIGNED: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Reply-To",
];

/// Signs emails with one key for one domain and selector.
pub struct Signer {
    config: DkimConfig,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dkim::Signer(..)")
    }
}

impl Signer {
    /// Reads and checks the key: a PEM RSA key of at least 2048 bits (PKCS#1 or
    /// PKCS#8) or a PEM Ed25519 key (PKCS#8). The error names the file.
    pub fn load(dkim: &config::DkimConfig) -> Result<Signer, String> {
        let path = &dkim.key_file;
        let at = |m: String| format!("email.dkim.key_file {}: {m}", path.display());
        let size = std::fs::metadata(path)
            .map_err(|e| at(e.to_string()))?
            .len();
        if size > MAX_KEY_FILE {
            return Err(at(format!("{size} bytes is too large for a key file")));
        }
        let pem = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let key = signing_key(&pem).map_err(at)?;
        let headers = SIGNED
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        let relaxed = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        Ok(Signer {
            config: DkimConfig::new(
                dkim.selector.clone(),
                dkim.domain.clone(),
                key,
                headers,
                relaxed,
            ),
        })
    }

    /// The signer `email.dkim` asks for, if any.
    pub fn configured(config: &config::Config) -> Result<Option<Signer>, String> {
        config.email.dkim.as_ref().map(Signer::load).transpose()
    }

    /// Adds the `DKIM-Signature` header.
    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }
}

/// The key in `pem` as lettre's signer takes it.
fn signing_key(pem: &str) -> Result<DkimSigningKey, String> {
    let rsa = if pem.contains("BEGIN RSA PRIVATE KEY") {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        Some(rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| format!("not an RSA key: {e}"))?)
    } else {
        rsa::RsaPrivateKey::from_pkcs8_pem(pem).ok()
    };
    if let Some(key) = rsa {
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "an RSA key of {bits} bits is too weak; make one of {MIN_RSA_BITS} or more"
            ));
        }
        let pkcs1 = key
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| e.to_string())?;
        return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa).map_err(|e| e.to_string());
    }
    match ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
        Ok(key) => DkimSigningKey::new(
            &STANDARD.encode(key.to_bytes()),
            DkimSigningAlgorithm::Ed25519,
        )
        .map_err(|e| e.to_string()),
        Err(_) => Err("not a PEM RSA or Ed25519 private key".into()),
    }
}

/// Which kind of key `keygen` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A new private key (PEM) and the value of the DNS TXT record that publishes it.
pub fn keygen(algorithm: Algorithm) -> Result<(String, String), String> {
    let mut rng = password_hash::rand_core::OsRng;
    match algorithm {
        Algorithm::Rsa => {
            let key = rsa::RsaPrivateKey::new(&mut rng, MIN_RSA_BITS).map_err(|e| e.to_string())?;
            let pem = key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .map_err(|e| e.to_string())?;
            let public = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            let record = format!("v=DKIM1; k=rsa; p={}", STANDARD.encode(public.as_bytes()));
            Ok((pem.to_string(), record))
        }
        Algorithm::Ed25519 => {
            let mut seed = [0u8; 32];
            password_hash::rand_core::RngCore::fill_bytes(&mut rng, &mut seed);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let pem = key
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(|e| e.to_string())?;
            let public = key.verifying_key().to_bytes();
            let record = format!("v=DKIM1; k=ed25519; p={}", STANDARD.encode(public));
            Ok((pem.to_string(), record))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_made_here_are_read_back_and_weak_ones_refused() {
        for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
            let (pem, record) = keygen(algorithm).unwrap();
            assert!(signing_key(&pem).is_ok(), "{algorithm:?}");
            assert!(record.starts_with("v=DKIM1; k="), "{record}");
        }
        let weak = rsa::RsaPrivateKey::new(&mut password_hash::rand_core::OsRng, 1024).unwrap();
        let pem = weak.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        let e = signing_key(&pem).err().unwrap();
        assert!(e.contains("1024 bits is too weak"), "{e}");
        assert!(
            signing_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
