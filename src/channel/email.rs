//! Email messages, built with lettre: a stable Message-ID and MIME boundary,
//! multipart text and HTML, List-Unsubscribe headers, and no header injection.

use std::time::SystemTime;

use jiff::Timestamp;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use super::one_line;
use crate::config::Business;
use crate::domain::EmailAddress;
use crate::render::RenderedEmail;

/// Everything a message needs besides its rendered text.
pub struct Envelope<'a> {
    pub business: &'a Business,
    pub to_name: &'a str,
    pub to: &'a EmailAddress,
    pub message_id: &'a str,
    pub date: Timestamp,
    pub unsubscribe_url: &'a str,
}

/// Builds the message. Names and the subject have every control character replaced by
/// a space first, so no value can start a header of its own.
pub fn build(envelope: &Envelope<'_>, body: &RenderedEmail) -> Result<Message, String> {
    let address = |address: &EmailAddress| -> Result<Address, String> {
        address
            .as_str()
            .parse()
            .map_err(|e| format!("address {address}: {e}"))
    };
    let mailbox = |name: &str, address: Address| {
        let name = one_line(name);
        Mailbox::new((!name.is_empty()).then_some(name), address)
    };
    let business = envelope.business;
    let from = address(&business.email)?;
    let to = address(envelope.to)?;
    // Given rather than derived: lettre would parse the From and To headers back.
    let smtp_envelope = lettre::address::Envelope::new(Some(from.clone()), vec![to.clone()])
        .map_err(|e| format!("cannot build the envelope: {e}"))?;
    let mut builder = Message::builder()
        .envelope(smtp_envelope)
        .from(mailbox(&business.name, from))
        .to(mailbox(envelope.to_name, to))
        .subject(one_line(&body.subject))
        .message_id(Some(envelope.message_id.to_owned()))
        .date(SystemTime::from(envelope.date))
        .header(ListUnsubscribe(format!(
            "<{}>",
            one_line(envelope.unsubscribe_url)
        )));
    if envelope.unsubscribe_url.starts_with("https://")
        || envelope.unsubscribe_url.starts_with("http://")
    {
        builder = builder.header(ListUnsubscribePost);
    }
    if let Some(reply_to) = &business.reply_to {
        builder = builder.reply_to(mailbox(&business.name, address(reply_to)?));
    }
    let message = match &body.html {
        // The boundary comes from the Message-ID, not from chance: every attempt of a
        // send is the same bytes (and a signature over them stays valid).
        Some(html) => builder.multipart(
            MultiPart::alternative()
                .boundary(boundary(envelope.message_id))
                .singlepart(SinglePart::plain(crlf(&body.text)))
                .singlepart(SinglePart::html(crlf(html))),
        ),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(crlf(&body.text)),
        ),
    };
    message.map_err(|e| format!("cannot build the message: {e}"))
}

/// A MIME boundary that no body can contain by chance: derived from the Message-ID,
/// which is unique to the send.
fn boundary(message_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(message_id.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("tickler_{hex}")
}

/// The text with every line ending in CRLF, as a message body must, in one pass
/// (lettre's own conversion moves the rest of the text at every line it mends).
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    // `split` yields at least one piece, the empty text included.
    let mut lines = text.split('\n');
    let mut line = lines.next().unwrap_or_default();
    out.push_str(line);
    for next in lines {
        out.push_str(if line.ends_with('\r') { "\n" } else { "\r\n" });
        out.push_str(next);
        line = next;
    }
    out
}

/// `List-Unsubscribe` (RFC 2369).
#[derive(Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_line_ends_in_crlf_once() {
        assert_eq!(
            crlf("Hi Ana,\n\nthanks.\r\nBye\n"),
            "Hi Ana,\r\n\r\nthanks.\r\nBye\r\n"
        );
        assert_eq!(crlf("one line"), "one line");
        assert_eq!(crlf(""), "");
        assert_eq!(crlf("\n\r\n"), "\r\n\r\n");
        assert_eq!(crlf("é\nü"), "é\r\nü");
    }
}
