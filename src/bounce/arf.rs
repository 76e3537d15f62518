//! Abuse feedback reports (ARF, RFC 5965): a recipient, or their provider, reported a
//! message. Read from the `message/feedback-report` part, one header block.

use super::fields;
use super::report::{address, prefix};

/// The `Feedback-Type`s that mean someone objected to the message. `not-spam` undoes a
/// complaint and `auth-failure` (RFC 6591) is about the sender's DKIM/SPF, not the
/// recipient, so neither suppresses anyone.
const COMPLAINT_TYPES: [&str; 4] = ["abuse", "fraud", "virus", "other"];

/// What a feedback report says about who complained.
#[derive(Debug)]
pub(super) struct Feedback {
    pub(super) feedback_type: String,
    /// `Original-Rcpt-To`, if present and an address (many providers redact it).
    pub(super) rcpt_to: Option<String>,
    /// `Original-Mail-From`, unparsed (bounded): the envelope sender tickler used, so the
    /// place to find its VERP token when the report was sent elsewhere.
    pub(super) mail_from: Option<String>,
}

/// Reads the first block of a `message/feedback-report` body, or says why it is not a
/// complaint.
pub(super) fn read(body: &str) -> Result<Feedback, String> {
    let block = fields::blocks(body).next().unwrap_or_default();
    let Some(kind) = block.get("feedback-type") else {
        return Err("feedback report without a Feedback-Type".to_owned());
    };
    let kind = kind
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !COMPLAINT_TYPES.contains(&kind.as_str()) {
        let shown = super::report::bounded_text(&kind, 40);
        return Err(format!(
            "feedback report of type {shown:?}, not a complaint"
        ));
    }
    Ok(Feedback {
        feedback_type: kind,
        rcpt_to: block.get("original-rcpt-to").and_then(address),
        mail_from: block
            .get("original-mail-from")
            .map(|v| prefix(v, 1024).to_owned()),
    })
}
