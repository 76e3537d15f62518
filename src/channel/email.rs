//! Email messages, built with lettre: a stable Message-ID and MIME boundary,
//! multipart text and HTML, List-Unsubscribe headers, and no header injection.

use jiff::Timestamp;
use lettre::message::header::{
    self, ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use super::dkim::Signer;
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
    /// A `mailto:` that unsubscribes too, for clients that do not post (RFC 2369 lists).
    pub unsubscribe_mailto: Option<&'a str>,
    /// The envelope sender, when bounces go elsewhere than the From address (VERP).
    pub return_path: Option<&'a str>,
    pub dkim: Option<&'a Signer>,
}

/// Builds the message. Names and the subject have every control character replaced by
/// a space first, so no value can start a header of its own.
pub fn build(envelope: &Envelope<'_>, body: &RenderedEmail) -> Result<Message, String> {
    let address = |address: &str| -> Result<Address, String> {
        address
            .parse()
            .map_err(|e| format!("address {address}: {e}"))
    };
    let mailbox = |name: &str, address: Address| {
        let name = one_line(name);
        Mailbox::new((!name.is_empty()).then_some(name), address)
    };
    let business = envelope.business;
    let from = address(business.email.as_str())?;
    let to = address(envelope.to.as_str())?;
    let sender = match envelope.return_path {
        Some(path) => address(path)?,
        None => from.clone(),
    };
    // Given rather than derived: lettre would parse the From and To headers back.
    let smtp_envelope = lettre::address::Envelope::new(Some(sender), vec![to.clone()])
        .map_err(|e| format!("cannot build the envelope: {e}"))?;
    let mut links = format!("<{}>", one_line(envelope.unsubscribe_url));
    if let Some(mailto) = envelope.unsubscribe_mailto {
        links.push_str(&format!(", <{}>", one_line(mailto)));
    }
    let date = envelope
        .date
        .to_zoned(business.zone.clone())
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string();
    let mut builder = Message::builder()
        .envelope(smtp_envelope)
        .raw_header(address_header::<header::From>(mailbox(
            &business.name,
            from,
        )))
        .raw_header(address_header::<header::To>(mailbox(envelope.to_name, to)))
        .subject(one_line(&body.subject))
        .message_id(Some(envelope.message_id.to_owned()))
        .date(std::time::SystemTime::from(envelope.date))
        .header(ListUnsubscribe(links));
    if envelope.unsubscribe_url.starts_with("https://") {
        builder = builder.header(ListUnsubscribePost);
    }
    if let Some(reply_to) = &business.reply_to {
        let reply_to = mailbox(&business.name, address(reply_to.as_str())?);
        builder = builder.raw_header(address_header::<header::ReplyTo>(reply_to));
    }
    let builder = builder.header(MIME_VERSION_1_0);
    // The top-level Content-Type is written as a header of the message itself (lettre
    // keeps a MIME part's headers with its body), so that DKIM can sign it.
    let message = match &body.html {
        // The boundary comes from the Message-ID, not from chance: every attempt of a
        // send is the same bytes.
        Some(html) => {
            let boundary = boundary(envelope.message_id);
            let content_type =
                ContentType::parse(&format!("multipart/alternative; boundary=\"{boundary}\""))
                    .map_err(|e| format!("cannot build the message: {e}"))?;
            let part = MultiPart::alternative()
                .boundary(boundary)
                .singlepart(SinglePart::plain(encoded_body(&body.text)))
                .singlepart(SinglePart::html(encoded_body(html)));
            // lettre encodes each part for 7-bit transport (quoted-printable or base64,
            // lines within 1000 octets), so the whole body is 7-bit as it stands.
            let encoded = without_headers(part.formatted());
            if !encoded.is_ascii() {
                return Err("cannot build the message: a part is not 7-bit".to_owned());
            }
            let whole = Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::SevenBit);
            builder.header(content_type).body(whole)
        }
        None => builder
            .header(ContentType::TEXT_PLAIN)
            .body(encoded_body(&body.text)),
    };
    let mut message = message.map_err(|e| format!("cannot build the message: {e}"))?;
    // In the business's offset, as a person there would write it; lettre writes UTC.
    message.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Date"),
        date,
    ));
    if let Some(signer) = envelope.dkim {
        signer.sign(&mut message);
    }
    Ok(message)
}

/// An address header whose display name is a quoted string when it is printable ASCII,
/// and encoded (RFC 2047) only otherwise: lettre encodes any name with `&` or `,` in
/// it, and spam filters score an encoded plain name (`FROM_EXCESS_BASE64`).
fn address_header<H: Header + From<lettre::message::Mailboxes>>(mailbox: Mailbox) -> HeaderValue {
    match &mailbox.name {
        Some(name) if name.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            let name = name.replace('\\', "\\\\").replace('"', "\\\"");
            let value = format!("\"{name}\" <{}>", mailbox.email);
            HeaderValue::dangerous_new_pre_encoded(H::name(), value.clone(), value)
        }
        _ => H::from(mailbox.into()).display(),
    }
}

/// A formatted MIME part's body: what follows its header block.
fn without_headers(mut part: Vec<u8>) -> Vec<u8> {
    if let Some(end) = memchr::memmem::find(&part, b"\r\n\r\n") {
        part.drain(..end + 4);
    }
    part
}

/// A MIME boundary that no body can contain by chance: derived from the Message-ID,
/// which is unique to the send.
fn boundary(message_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(message_id.as_bytes());
    format!("tickler_{}", hex::encode(&digest[..12]))
}

/// A part's text in CRLF lines and in the transfer encoding lettre would choose for it
/// (7bit, quoted-printable or base64, for a server without SMTPUTF8), without lettre's
/// second pass over the text for line endings.
fn encoded_body(text: &str) -> Body {
    use email_encoding::body::Encoding;
    // Chosen on the text as written, as lettre chooses, so that the bytes are the same.
    let encoding = Encoding::choose(text, false);
    let text = crlf(text);
    match encoding {
        Encoding::SevenBit => {
            Body::dangerous_pre_encoded(text.into_bytes(), ContentTransferEncoding::SevenBit)
        }
        Encoding::QuotedPrintable => Body::dangerous_pre_encoded(
            quoted_printable::encode(text.as_bytes()),
            ContentTransferEncoding::QuotedPrintable,
        ),
        // 8bit is chosen only for a server that takes UTF-8, which was not asked.
        Encoding::EightBit | Encoding::Base64 => {
            let mut out =
                String::with_capacity(email_encoding::body::base64::encoded_len(text.len()));
            // Writing into a String cannot fail.
            let _ = email_encoding::body::base64::encode(text.as_bytes(), &mut out);
            Body::dangerous_pre_encoded(out.into_bytes(), ContentTransferEncoding::Base64)
        }
    }
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

    #[test]
    fn parts_are_encoded_as_lettre_encodes_them() {
        let long = "word ".repeat(40);
        let texts = [
            "Hi Ana,\n\nthanks.\n".to_owned(),
            format!("{long}\n{long}\r\nend"),
            format!("<p style=\"a=b\">{long}</p>\n"),
            "Grüße, Zoë — à bientôt\n".to_owned(),
            "日本語のテキスト。".repeat(20),
            format!("74 chars {}\n75 chars {}\n", "x".repeat(65), "x".repeat(66)),
            "trailing space \nand tab\t\n".to_owned(),
            String::new(),
        ];
        for text in texts {
            let ours = encoded_body(&text);
            let lettres = Body::new(text.clone());
            assert_eq!(ours.encoding(), lettres.encoding(), "{text:?}");
            assert_eq!(ours.into_vec(), lettres.into_vec(), "{text:?}");
        }
    }
}

#[cfg(test)]
mod header_tests {
    use super::*;
    use crate::config::Colour;
    use crate::domain::PostalAddress;

    fn message(business_name: &str, to_name: &str) -> String {
        let business = Business {
            name: business_name.into(),
            email: EmailAddress::parse("hello@tiles.example").unwrap(),
            reply_to: None,
            phone: String::new(),
            address: PostalAddress::default(),
            zone: jiff::tz::TimeZone::get("America/New_York").unwrap(),
            logo: None,
            colour: Colour::parse("#2f5566").unwrap(),
        };
        let to = EmailAddress::parse("ana@example.com").unwrap();
        let envelope = Envelope {
            business: &business,
            to_name,
            to: &to,
            message_id: "<1.tickler@tiles.example>",
            date: "2026-11-23T15:00:00Z".parse().unwrap(),
            unsubscribe_url: "https://tiles.example/unsubscribe/t",
            unsubscribe_mailto: Some("mailto:hello@tiles.example?subject=unsubscribe"),
            return_path: Some("bounces+s1-00@tiles.example"),
            dkim: None,
        };
        let body = RenderedEmail {
            subject: "Thanks".into(),
            text: "Hi".into(),
            html: Some("<p>Hi</p>".into()),
        };
        let built = build(&envelope, &body).unwrap();
        assert_eq!(
            built.envelope().from().map(ToString::to_string).as_deref(),
            Some("bounces+s1-00@tiles.example")
        );
        // Unfolded, as a reader of the headers sees them.
        String::from_utf8(built.formatted())
            .unwrap()
            .replace("\r\n ", " ")
    }

    #[test]
    fn plain_names_are_quoted_dates_are_local_and_both_links_are_listed() {
        let text = message("Hudson Tile & Stone", "Ana \"Nan\" Ruiz");
        assert!(
            text.contains("From: \"Hudson Tile & Stone\" <hello@tiles.example>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Ana \\\"Nan\\\" Ruiz\" <ana@example.com>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Date: Mon, 23 Nov 2026 10:00:00 -0500\r\n"),
            "{text}"
        );
        assert!(text.contains(
            "List-Unsubscribe: <https://tiles.example/unsubscribe/t>, <mailto:hello@tiles.example?subject=unsubscribe>\r\n"
        ), "{text}");
        assert!(
            text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{text}"
        );
        // The top-level Content-Type is the message's own header, before the body.
        let (head, _) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("Content-Type: multipart/alternative;"),
            "{head}"
        );
        // A name that is not ASCII is still encoded.
        let text = message("Zoë's Tiles", "Zoë");
        assert!(text.contains("From: =?utf-8?"), "{text}");
    }
}
