//! The send log's vocabulary: the key that makes every occurrence one row, the states a
//! row moves through, and the Message-ID derived from the key.

use std::fmt;

use sha2::{Digest, Sha256};

/// Where a send-log row stands.
///
/// `pending` rows are claimed by a worker until `lease_until`; `retrying` rows wait for
/// `next_attempt_at`; `sent`, `failed` and `skipped` are final, except that a `sent`
/// email becomes `bounced` when a report says it never arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendStatus {
    Pending,
    Sent,
    Retrying,
    Failed,
    Skipped,
    Bounced,
}

impl SendStatus {
    pub const ALL: [SendStatus; 6] = [
        SendStatus::Pending,
        SendStatus::Sent,
        SendStatus::Retrying,
        SendStatus::Failed,
        SendStatus::Skipped,
        SendStatus::Bounced,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            SendStatus::Pending => "pending",
            SendStatus::Sent => "sent",
            SendStatus::Retrying => "retrying",
            SendStatus::Failed => "failed",
            SendStatus::Skipped => "skipped",
            SendStatus::Bounced => "bounced",
        }
    }

    pub fn parse(text: &str) -> Result<SendStatus, String> {
        SendStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                format!("`{text}` is not a status; use pending, sent, retrying, failed, skipped or bounced")
            })
    }
}

impl fmt::Display for SendStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One occurrence of a cadence for one contact: the send log's unique key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendKey {
    pub contact: String,
    pub cadence: String,
    pub occurrence: String,
}

impl SendKey {
    /// A stable token for this key: the same on every attempt and every machine, so a
    /// resend after a crash carries the same Message-ID and file name.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for part in [&self.contact, &self.cadence, &self.occurrence] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        hex::encode(&hash.finalize()[..16])
    }

    /// `<DIGEST.tickler@DOMAIN>`, as RFC 5322 wants it.
    pub fn message_id(&self, domain: &str) -> String {
        format!("<{}.tickler@{domain}>", self.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let key = |o: &str| SendKey {
            contact: "C-1".into(),
            cadence: "thank-you".into(),
            occurrence: o.into(),
        };
        assert_eq!(
            key("E-1").message_id("example.com"),
            key("E-1").message_id("example.com")
        );
        assert_ne!(key("E-1").digest(), key("E-2").digest());
        assert!(
            key("E-1")
                .message_id("example.com")
                .ends_with(".tickler@example.com>")
        );
    }
}
