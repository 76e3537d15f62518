//! The suppression list's entries: addresses, not contacts, that get no more email
//! (hard bounces, complaints, unsubscribes, the owner's own). Two contacts that share an
//! address share its fate, and a contact imported again does not come back to life.

use jiff::Timestamp;

use super::EmailAddress;

/// The longest reason a suppression may carry; it becomes part of a skip reason.
pub const MAX_REASON: usize = 64;
/// The longest detail kept with an entry (a report's status and diagnostic, a note).
pub const MAX_DETAIL: usize = 1_000;

/// One address on the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    /// The normalised address ([`EmailAddress::suppression_key`]).
    pub address: String,
    /// Why, in one word or a few: `bounced`, `complained`, `unsubscribed`, or the owner's.
    pub reason: String,
    pub detail: String,
    pub added_at: Timestamp,
    /// The report that caused it, as received, when there was one.
    pub report: Option<Vec<u8>>,
}

impl Suppression {
    /// An entry for `address` with `reason` checked and `detail` cut to its limit.
    pub fn new(
        address: &EmailAddress,
        reason: &str,
        detail: &str,
        added_at: Timestamp,
    ) -> Result<Suppression, String> {
        Ok(Suppression {
            address: address.suppression_key(),
            reason: check_reason(reason)?,
            detail: one_line(detail, MAX_DETAIL),
            added_at,
            report: None,
        })
    }

    /// The send log's reason for an email skipped because of this entry.
    pub fn skip_reason(reason: &str) -> String {
        format!("suppressed:{reason}")
    }
}

/// A reason as the list keeps it: trimmed, 1 to [`MAX_REASON`] characters, printable.
pub fn check_reason(reason: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err("a suppression needs a reason".into());
    }
    if reason.chars().count() > MAX_REASON {
        return Err(format!("a reason is at most {MAX_REASON} characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err("a reason cannot hold a control character".into());
    }
    Ok(reason.to_owned())
}

/// `text` on one line (control characters become spaces), at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl EmailAddress {
    /// The address as the suppression list keys it: the domain lower-cased, the local
    /// part as given (it may be case-sensitive at the receiving server).
    pub fn suppression_key(&self) -> String {
        match self.as_str().rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
            None => self.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_folds_the_domain_only() {
        let a = EmailAddress::parse("Maria.Lopez@Example.COM").unwrap();
        assert_eq!(a.suppression_key(), "Maria.Lopez@example.com");
    }

    #[test]
    fn reasons_are_short_and_printable() {
        assert_eq!(check_reason("  moved away ").unwrap(), "moved away");
        assert!(check_reason("").is_err());
        assert!(check_reason("a\nb").is_err());
        assert!(check_reason(&"x".repeat(65)).is_err());
        let at = Timestamp::UNIX_EPOCH;
        let a = EmailAddress::parse("a@b.example").unwrap();
        let s =
            Suppression::new(&a, "bounced", &format!("5.1.1\r\n{}", "y".repeat(2000)), at).unwrap();
        assert!(!s.detail.contains('\n') && s.detail.chars().count() == MAX_DETAIL);
    }
}
