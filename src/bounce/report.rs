//! Classifies one received message, as raw bytes, as a bounce (an RFC 3464 delivery status
//! notification with failed or delayed recipients), a complaint (an RFC 5965 abuse
//! report), or not a report at all, and says which send it answers. Pure: no I/O, no
//! clock; every string taken from the input is bounded, and a message that does not carry
//! a machine-readable report is never guessed at.
//!
//! A report is tied to its send three ways, since providers rewrite envelopes: the VERP
//! token of the address it was delivered to, the returned original's Message-ID, and the
//! recipient address it names.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::{arf, dsn};

/// Larger input is refused before parsing; real reports are a few kilobytes, plus the
/// returned original, which tickler's own sends keep small.
pub const MAX_REPORT_BYTES: usize = 2 * 1024 * 1024;
/// The stack a report is read on. mail-parser builds nested messages as a tree, then
/// copies and drops it recursively; a `MAX_REPORT_BYTES` message can nest about 70,000
/// deep, which takes about 32 MiB in a debug build and less in release; this is twice
/// that. Only the pages used are touched.
const PARSE_STACK: usize = 64 * 1024 * 1024;
/// Failed recipients kept from one report; tickler sends to one recipient per message.
pub const MAX_RECIPIENTS: usize = 100;
/// Characters kept of a diagnostic text.
pub const MAX_DIAGNOSTIC: usize = 500;
/// Longest address taken (RFC 5321's 64 + 1 + 255, rounded up); a longer one is dropped,
/// since a cut address would name someone else.
pub const MAX_ADDRESS: usize = 320;
/// Longest VERP token taken; a longer one is dropped.
pub const MAX_TOKEN: usize = 200;
/// Longest Message-ID taken (without its angle brackets); a longer one is dropped.
pub const MAX_MESSAGE_ID: usize = 500;

/// What a received message is, for the send log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// A delivery status notification naming at least one failed or delayed recipient.
    Bounce(Bounce),
    /// An abuse report: the recipient marked the message as spam (or fraud, or a virus).
    Complaint(Complaint),
    /// Anything else: an auto-reply, a person's mail, a bounce without a machine-readable
    /// status, a report of another kind. `why` is a short phrase for the log.
    NotAReport { why: String },
}

/// A delivery status notification. `recipients` is never empty: a notification that only
/// reports deliveries (`delivered`, `relayed`, `expanded`) is `NotAReport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    pub recipients: Vec<FailedRecipient>,
    /// The token of the VERP address the report was delivered to.
    pub verp_token: Option<String>,
    /// The Message-ID of the send it answers, with angle brackets, as tickler wrote it.
    pub original_message_id: Option<String>,
    /// The report's own Message-ID, to recognise a report delivered twice.
    pub report_message_id: Option<String>,
}

/// One recipient the message was not delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecipient {
    /// `Original-Recipient` (the address tickler gave) if it is an address, else
    /// `Final-Recipient`.
    pub address: String,
    /// The delivery failed for good (`Action: failed`, status 5.x.x): suppress the
    /// address. Otherwise it was delayed or failed for now (4.x.x): count it.
    pub permanent: bool,
    /// The RFC 3463 status code, such as `5.1.1`.
    pub status: String,
    /// The remote server's words (`Diagnostic-Code` without its type), at most
    /// `MAX_DIAGNOSTIC` characters; empty if the report gives none.
    pub diagnostic: String,
}

/// An abuse feedback report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    /// Who complained: `Original-Rcpt-To`, else the returned original's `To`; `None` when
    /// the provider redacted it (then the token or the Message-ID ties the report).
    pub address: Option<String>,
    /// `Feedback-Type`, lowercase: `abuse`, `fraud`, `virus` or `other`.
    pub feedback_type: String,
    pub verp_token: Option<String>,
    pub original_message_id: Option<String>,
    pub report_message_id: Option<String>,
}

/// Classifies `raw`, one whole message as received (CRLF or LF). `return_path` is
/// `email.bounce.return_path` (`LOCAL@DOMAIN`); without it no VERP token is looked for.
pub fn classify(raw: &[u8], return_path: Option<&str>) -> Classified {
    if raw.len() > MAX_REPORT_BYTES {
        return not_a_report("larger than any report (2 MiB)");
    }
    // The MIME parser meets hostile bytes: should it panic, the message is left in place
    // as unreadable rather than taking the poll (or `tick`) down with it.
    stacker::grow(PARSE_STACK, || {
        std::panic::catch_unwind(|| classify_within_limit(raw, return_path))
            .unwrap_or_else(|_| not_a_report("the message could not be read"))
    })
}

fn classify_within_limit(raw: &[u8], return_path: Option<&str>) -> Classified {
    let Some(message) = MessageParser::new().parse(raw) else {
        return not_a_report("no message headers");
    };
    let part = match report_part(&message) {
        Ok(part) => part,
        Err(why) => return Classified::NotAReport { why },
    };
    let original = Original::returned_in(&message);
    let report_message_id = message.message_id().and_then(message_id);
    let return_path = return_path.and_then(ReturnPath::parse);
    let token_from = |extra: Option<&str>| {
        return_path.and_then(|rp| rp.token_in(&message, extra, original.return_path.as_deref()))
    };
    match part {
        ReportPart::Delivery(body) => {
            let status = dsn::read(&body);
            if status.recipients.is_empty() {
                return not_a_report("delivery report with no failed or delayed recipient");
            }
            Classified::Bounce(Bounce {
                recipients: status.recipients,
                verp_token: token_from(None),
                original_message_id: original.message_id.or(status.original_message_id),
                report_message_id,
            })
        }
        ReportPart::Feedback(body) => match arf::read(&body) {
            Ok(feedback) => Classified::Complaint(Complaint {
                address: feedback.rcpt_to.or(original.to),
                feedback_type: feedback.feedback_type,
                verp_token: token_from(feedback.mail_from.as_deref()),
                original_message_id: original.message_id,
                report_message_id,
            }),
            Err(why) => Classified::NotAReport { why },
        },
    }
}

fn not_a_report(why: &str) -> Classified {
    Classified::NotAReport {
        why: why.to_owned(),
    }
}

/// The machine-readable part of a report, decoded, as text.
enum ReportPart {
    Delivery(String),
    Feedback(String),
}

/// Finds the machine-readable part among the report's own parts (never inside the
/// returned original), or says why the message is not a report.
fn report_part(message: &Message<'_>) -> Result<ReportPart, String> {
    let is_report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if !is_report {
        let auto_reply = raw_header(message, "Auto-Submitted")
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("auto-replied"));
        let why = if auto_reply {
            "an auto-reply, not a report"
        } else {
            "not a multipart/report message"
        };
        return Err(why.to_owned());
    }
    for part in message.parts.iter().skip(1) {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let kind = (ct.ctype(), ct.subtype().unwrap_or(""));
        let text = || String::from_utf8_lossy(part.contents()).into_owned();
        if is_type(kind, "message", "delivery-status")
            || is_type(kind, "message", "global-delivery-status")
        {
            return Ok(ReportPart::Delivery(text()));
        }
        if is_type(kind, "message", "feedback-report") {
            return Ok(ReportPart::Feedback(text()));
        }
    }
    let report_type = message
        .content_type()
        .and_then(|ct| ct.attribute("report-type"))
        .map(|t| bounded_text(t, 40))
        .unwrap_or_default();
    Err(format!(
        "multipart/report (report-type={report_type}) without a delivery-status or \
         feedback-report part"
    ))
}

fn is_type((ctype, subtype): (&str, &str), want: &str, want_sub: &str) -> bool {
    ctype.eq_ignore_ascii_case(want) && subtype.eq_ignore_ascii_case(want_sub)
}

/// What a report carries of the message it is about (`message/rfc822`, or its headers
/// alone as `text/rfc822-headers`).
#[derive(Debug, Default)]
struct Original {
    message_id: Option<String>,
    to: Option<String>,
    /// The raw `Return-Path`: the envelope sender as the receiving server saw it.
    return_path: Option<String>,
}

impl Original {
    /// The first original among the report's own parts; one level only, so a hostile
    /// nesting of messages costs nothing here.
    fn returned_in(report: &Message<'_>) -> Original {
        for part in report.parts.iter().skip(1) {
            if let PartType::Message(inner) = &part.body {
                return Original::of(inner);
            }
            let headers_only = part.content_type().is_some_and(|ct| {
                let kind = (ct.ctype(), ct.subtype().unwrap_or(""));
                is_type(kind, "text", "rfc822-headers")
                    || is_type(kind, "message", "global-headers")
            });
            if headers_only {
                return MessageParser::new()
                    .parse_headers(part.contents())
                    .map(|m| Original::of(&m))
                    .unwrap_or_default();
            }
        }
        Original::default()
    }

    fn of(message: &Message<'_>) -> Original {
        Original {
            message_id: message.message_id().and_then(message_id),
            to: message
                .to()
                .and_then(|to| to.first())
                .and_then(|addr| addr.address())
                .and_then(address),
            return_path: raw_header(message, "Return-Path").map(|v| prefix(v, 1024).to_owned()),
        }
    }
}

/// `email.bounce.return_path`, split: tickler sends as `LOCAL+TOKEN@DOMAIN`.
#[derive(Debug, Clone, Copy)]
struct ReturnPath<'a> {
    local: &'a str,
    domain: &'a str,
}

impl<'a> ReturnPath<'a> {
    fn parse(text: &'a str) -> Option<ReturnPath<'a>> {
        let (local, domain) = text.trim().rsplit_once('@')?;
        (!local.is_empty() && !domain.is_empty()).then_some(ReturnPath { local, domain })
    }

    /// The token of the first VERP address in the report's recipient headers, then in
    /// `extra` (ARF's `Original-Mail-From`), then in the original's `Return-Path`.
    /// `X-Original-To` and `To` come before `Delivered-To`, since some servers lowercase
    /// the address they write there and the token is case-sensitive.
    fn token_in(
        self,
        report: &Message<'_>,
        extra: Option<&str>,
        original_return_path: Option<&str>,
    ) -> Option<String> {
        const RECIPIENT_HEADERS: [&str; 6] = [
            "X-Original-To",
            "To",
            "Delivered-To",
            "Envelope-To",
            "X-Envelope-To",
            "Return-Path",
        ];
        let report_values = RECIPIENT_HEADERS.iter().flat_map(|name| {
            report
                .headers_raw()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        });
        report_values
            .chain(extra)
            .chain(original_return_path)
            .flat_map(address_like)
            .find_map(|addr| self.token_of(addr))
    }

    /// The token if `addr` is `LOCAL+TOKEN@DOMAIN` (the domain in any case).
    fn token_of(self, addr: &str) -> Option<String> {
        let (local, domain) = addr.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(self.domain) {
            return None;
        }
        let token = local.strip_prefix(self.local)?.strip_prefix('+')?;
        let valid = !token.is_empty()
            && token.len() <= MAX_TOKEN
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| token.to_owned())
    }
}

/// The first `name` header of `message`, unparsed.
fn raw_header<'m>(message: &'m Message<'_>, name: &str) -> Option<&'m str> {
    message
        .headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// The words of a header value that look like addresses, for matching against a known
/// address only (not an address parser).
fn address_like(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || "<>,;:\"()[]".contains(c))
        .filter(|word| word.contains('@'))
}

/// An address from a report field (`rfc822;` type already removed), if it plausibly is
/// one: `local@domain`, no spaces or control characters, at most `MAX_ADDRESS` bytes.
pub(super) fn address(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text);
    let (local, domain) = text.rsplit_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && text.len() <= MAX_ADDRESS
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    plausible.then(|| text.to_owned())
}

/// A Message-ID in tickler's form, `<id>`, if it is one: no spaces or control characters,
/// at most `MAX_MESSAGE_ID` bytes.
pub(super) fn message_id(text: &str) -> Option<String> {
    let text = text.trim();
    let id = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text);
    let plausible = !id.is_empty()
        && id.len() <= MAX_MESSAGE_ID
        && !id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    plausible.then(|| format!("<{id}>"))
}

/// Free text for a log or a screen: control characters become spaces, and at most
/// `max_chars` characters are kept.
pub(super) fn bounded_text(text: &str, max_chars: usize) -> String {
    text.trim()
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character
/// boundary.
pub(super) fn prefix(text: &str, max_bytes: usize) -> &str {
    &text[..text.floor_char_boundary(max_bytes)]
}
