//! The SMTP commands for one message over one connection. Where the server offers
//! PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write, and a body can go in one
//! write with the next message's MAIL, RCPT and DATA (the RFC allows message content
//! first in a group): one round trip a message. A refused transaction ends with RSET
//! so that the connection carries on.

use std::time::Instant;

use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::connect::Connection;

/// A message as a connection writes it, prepared in its sender's task.
pub(super) struct Outgoing {
    envelope: lettre::address::Envelope,
    email: Vec<u8>,
    /// MAIL, each RCPT and DATA, as one write.
    commands: String,
    /// The DATA block (dot-stuffed and ended), if the message is UTF-8.
    block: Option<String>,
    eight_bit: bool,
    ascii_addresses: bool,
}

impl Outgoing {
    /// Whether its body is written in one piece, which the next message's commands
    /// can follow in the same write.
    pub(super) fn groups_with_next(&self) -> bool {
        self.block.is_some()
    }
}

impl Connection {
    /// Whether `mail` can go pipelined: the server offers PIPELINING, the addresses are
    /// ASCII, and 8-bit text only where the server takes 8BITMIME.
    pub(super) fn pipelines(&self, mail: &Outgoing) -> bool {
        self.pipelining
            && mail.ascii_addresses
            && (!mail.eight_bit
                || self
                    .smtp
                    .server_info()
                    .supports_feature(Extension::EightBitMime))
    }

    /// Sends `mail` by lettre's whole exchange, one command at a time.
    pub(super) async fn send(&mut self, mail: &Outgoing) -> Result<Response, SmtpError> {
        self.smtp.send(&mail.envelope, &mail.email).await
    }

    /// Writes MAIL, RCPT and DATA at once and reads their replies.
    pub(super) async fn open(&mut self, mail: &Outgoing) -> Result<(), SmtpError> {
        let first = self.smtp.command(mail.commands.as_str()).await;
        if first.as_ref().is_err_and(|e| e.status().is_none()) {
            return first.map(|_| ());
        }
        let rest = self.replies(mail, 1).await;
        first.and(rest).map(|_| ())
    }

    /// Writes `mail`'s body, with `next`'s MAIL, RCPT and DATA behind it, and reads the
    /// body's reply.
    pub(super) async fn body(
        &mut self,
        mail: &Outgoing,
        next: Option<&Outgoing>,
    ) -> Result<Response, SmtpError> {
        match (&mail.block, next) {
            (Some(block), Some(next)) => {
                let mut write = String::with_capacity(block.len() + next.commands.len());
                write.push_str(block);
                write.push_str(&next.commands);
                self.smtp.command(write).await
            }
            (Some(block), None) => self.smtp.command(block.as_str()).await,
            // Not UTF-8: lettre's own writing of the body.
            (None, _) => self.smtp.message(&mail.email).await,
        }
    }

    /// Reads the replies to `mail`'s MAIL, RCPTs and DATA, in order, after the first
    /// `read` of them: all of them, so that the conversation stays in step after a
    /// refusal; the first refusal is the result.
    pub(super) async fn replies(&mut self, mail: &Outgoing, read: usize) -> Result<(), SmtpError> {
        let mut result = Ok(());
        for _ in read..mail.envelope.to().len() + 2 {
            match self.smtp.read_response().await {
                Ok(_) => {}
                // No reply at all: the connection is gone.
                Err(e) if e.status().is_none() => return Err(e),
                Err(e) => result = result.and(Err(e)),
            }
        }
        result
    }

    /// Ends a refused transaction with RSET, so that the connection can carry the next
    /// message; false when the server does not take it.
    pub(super) async fn reset(&mut self, deadline: Instant) -> bool {
        let rset = self.smtp.command(Rset);
        matches!(
            tokio::time::timeout_at(deadline.into(), rset).await,
            Ok(Ok(_))
        )
    }
}

impl Outgoing {
    pub(super) fn new(message: &Message) -> Outgoing {
        let envelope = message.envelope().clone();
        let email = message.formatted();
        let eight_bit = !email.is_ascii();
        let ascii_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        let parameters = if eight_bit {
            vec![MailParameter::Body(MailBodyParameter::EightBitMime)]
        } else {
            Vec::new()
        };
        let mut commands = Mail::new(envelope.from().cloned(), parameters).to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        commands.push_str(&Data.to_string());
        let block = String::from_utf8(data_block(&email)).ok();
        Outgoing {
            envelope,
            email,
            commands,
            block,
            eight_bit,
            ascii_addresses,
        }
    }
}

/// A message as DATA carries it: a `.` that starts a line doubled (RFC 5321 4.5.2),
/// then the end of data, `CRLF.CRLF` (after the message's own last line break, as
/// lettre sends it).
fn data_block(email: &[u8]) -> Vec<u8> {
    let mut block = Vec::with_capacity(email.len() + 64);
    if email.first() == Some(&b'.') {
        block.push(b'.');
    }
    // Copied between the lines that start with a dot, each such dot doubled.
    let mut copied = 0;
    for at in memchr::memmem::find_iter(email, b"\r\n.") {
        block.extend_from_slice(&email[copied..at + 3]);
        block.push(b'.');
        copied = at + 3;
    }
    block.extend_from_slice(&email[copied..]);
    block.extend_from_slice(b"\r\n.\r\n");
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_doubles_a_leading_dot_and_ends_with_a_lone_one() {
        assert_eq!(
            data_block(b".top\r\nmid.dle\r\n..two\r\n.\r\nlf\n.not\r\n"),
            b"..top\r\nmid.dle\r\n...two\r\n..\r\nlf\n.not\r\n\r\n.\r\n"
        );
    }
}
