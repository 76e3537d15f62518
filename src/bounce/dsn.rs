//! Delivery status notifications (RFC 3464): which recipients the message did not reach,
//! for good or for now, read from the `message/delivery-status` part's header blocks.

use super::fields::{self, Fields};
use super::report::{FailedRecipient, MAX_DIAGNOSTIC, MAX_RECIPIENTS, address, message_id};

/// Header blocks read at most. A report lists one block per recipient it covers;
/// beyond this it is not a report tickler's sends could produce.
const MAX_BLOCKS: usize = 1_000;

/// What a `message/delivery-status` part says.
#[derive(Debug)]
pub(super) struct Dsn {
    /// At most `MAX_RECIPIENTS`, in the report's order.
    pub(super) recipients: Vec<FailedRecipient>,
    /// `X-Original-Message-ID` of the per-message block (Gmail writes it), for when the
    /// original is not returned.
    pub(super) original_message_id: Option<String>,
}

/// Reads the blocks of a `message/delivery-status` body.
pub(super) fn read(body: &str) -> Dsn {
    let mut dsn = Dsn {
        recipients: Vec::new(),
        original_message_id: None,
    };
    for block in fields::blocks(body).take(MAX_BLOCKS) {
        if dsn.original_message_id.is_none() {
            dsn.original_message_id = block.get("x-original-message-id").and_then(message_id);
        }
        if let Some(recipient) = failed_recipient(&block) {
            dsn.recipients.push(recipient);
            if dsn.recipients.len() == MAX_RECIPIENTS {
                break;
            }
        }
    }
    dsn
}

/// A recipient block's failure, if it reports one. Counted: `Action: failed` or `delayed`
/// with a 4.x.x or 5.x.x status; permanent only when failed with 5.x.x. A block without
/// `Action` (the RFC requires one) goes by its status class alone. Deliveries, unknown
/// actions, and blocks without a valid status or address are not failures.
fn failed_recipient(block: &Fields) -> Option<FailedRecipient> {
    let status = Status::parse(block.get("status")?)?;
    let action = block.get("action").map(|a| {
        a.split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    });
    let failed = match action.as_deref() {
        None | Some("failed") => true,
        Some("delayed") => false,
        _ => return None,
    };
    if status.class == '2' {
        return None;
    }
    let address = ["original-recipient", "final-recipient"]
        .into_iter()
        .find_map(|name| block.get(name).and_then(recipient_address))?;
    let diagnostic = block
        .get("diagnostic-code")
        .map(|code| super::report::bounded_text(fields::typed(code).1, MAX_DIAGNOSTIC))
        .unwrap_or_default();
    Some(FailedRecipient {
        address,
        permanent: failed && status.class == '5',
        status: status.code,
        diagnostic,
    })
}

/// The address of a recipient field: `rfc822;` or `utf-8;` (RFC 6533) typed, or untyped.
fn recipient_address(value: &str) -> Option<String> {
    match fields::typed(value) {
        (Some(kind), addr)
            if kind.eq_ignore_ascii_case("rfc822") || kind.eq_ignore_ascii_case("utf-8") =>
        {
            address(addr)
        }
        (None, addr) => address(addr),
        _ => None,
    }
}

/// An RFC 3463 status code, such as `5.1.1` or `5.1.10`.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    /// `2` success, `4` transient failure, `5` permanent failure.
    class: char,
    code: String,
}

impl Status {
    /// Reads the code from a `Status` value, which may be followed by a comment
    /// (`5.1.1 (bad destination mailbox address)`).
    fn parse(value: &str) -> Option<Status> {
        let code = value.split_whitespace().next()?;
        let mut parts = code.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        let number = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        let valid = matches!(class, "2" | "4" | "5")
            && number(subject)
            && number(detail)
            && parts.next().is_none();
        valid.then(|| Status {
            class: class.chars().next().unwrap_or('2'),
            code: code.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_read_with_or_without_a_comment() {
        let code = |v: &str| Status::parse(v).map(|s| (s.class, s.code));
        assert_eq!(code("5.1.1"), Some(('5', "5.1.1".into())));
        assert_eq!(code("5.1.10"), Some(('5', "5.1.10".into())));
        assert_eq!(code("4.4.1 (delayed)"), Some(('4', "4.4.1".into())));
        for bad in ["", "550", "5.1", "6.1.1", "5.1.1.1", "5.x.1", "5.1.1000"] {
            assert_eq!(code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn recipient_blocks_are_read_case_insensitively_and_folded() {
        let dsn = read(
            "reporting-mta: dns; mx.example.com\n\n\
             final-recipient: RFC822;\n  a@example.com\n\
             ACTION: Failed\nstatus: 5.2.2\n\
             diagnostic-code: smtp; 552 mailbox\n  full\n\n\
             Final-Recipient: rfc822; b@example.com\nAction: delivered\nStatus: 2.0.0\n\n\
             Final-Recipient: x400; c=us;a=x\nAction: failed\nStatus: 5.1.1\n",
        );
        assert_eq!(dsn.recipients.len(), 1);
        let a = &dsn.recipients[0];
        assert_eq!(a.address, "a@example.com");
        assert!(a.permanent);
        assert_eq!(a.diagnostic, "552 mailbox full");
    }

    #[test]
    fn failed_with_a_transient_status_is_not_permanent() {
        let dsn = read("\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 4.4.7\n");
        assert!(!dsn.recipients[0].permanent);
    }
}
