//! What can go wrong with the bounce mailbox, each worded so that whoever reads the log
//! knows what to change.

use std::io;
use std::time::Duration;

/// Why the bounce mailbox could not be opened, read or tidied.
///
/// After any error the session is in an unknown state: drop the [`super::Mailbox`] and
/// open a new one at the next poll. [`ImapError::is_transient`] tells a hiccup that the
/// next poll may not meet from a setting someone has to fix.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The settings themselves are unusable (the URL, the CA file).
    #[error("email.bounce.imap: {0}")]
    Settings(String),
    #[error(
        "IMAP server {server} refused the connection: is it running, and is that its IMAP port?"
    )]
    Refused { server: String },
    #[error("cannot reach IMAP server {server}: {source}")]
    Unreachable {
        server: String,
        #[source]
        source: io::Error,
    },
    #[error("IMAP server {server} did not answer within {}s ({step})", after.as_secs_f32())]
    Timeout {
        server: String,
        step: &'static str,
        after: Duration,
    },
    /// The TLS handshake failed: most often a certificate tickler does not trust.
    #[error("TLS with IMAP server {server} failed: {reason}")]
    Tls { server: String, reason: String },
    /// An `imap://` server that does not offer STARTTLS: the password is never sent in
    /// clear, so nothing was sent.
    #[error(
        "IMAP server {server} does not offer STARTTLS, and tickler never sends the password \
         without TLS: use imaps:// (port 993) or enable STARTTLS on the server"
    )]
    NoStartTls { server: String },
    #[error(
        "IMAP server {server} rejected the login of {username:?}: check \
         email.bounce.imap.username and its password ({reply})"
    )]
    LoginRejected {
        server: String,
        username: String,
        reply: String,
    },
    #[error(
        "IMAP mailbox {mailbox:?} on {server} cannot be selected (does it exist?): check \
         email.bounce.imap.mailbox ({reply})"
    )]
    MailboxMissing {
        server: String,
        mailbox: String,
        reply: String,
    },
    /// Without MOVE or UIDPLUS, taking messages out of the mailbox would expunge
    /// whatever else is marked deleted there.
    #[error(
        "IMAP server {server} offers neither MOVE nor UIDPLUS, so tickler cannot move \
         processed messages without expunging other deleted ones; they are left in place"
    )]
    CannotMove { server: String },
    /// The server sent more than a reply may hold; nothing of it was kept.
    #[error("IMAP server {server} sent an over-long reply to {step}; the reply was dropped")]
    TooLarge { server: String, step: &'static str },
    /// Anything else: a command refused, a reply not understood, the connection lost.
    #[error("IMAP {step} with {server} failed: {reason}")]
    Protocol {
        server: String,
        step: &'static str,
        reason: String,
    },
}

impl ImapError {
    /// Whether the next poll may well succeed with the same settings.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ImapError::Refused { .. }
                | ImapError::Unreachable { .. }
                | ImapError::Timeout { .. }
                | ImapError::TooLarge { .. }
                | ImapError::Protocol { .. }
        )
    }
}

/// What to do about the certificate problems rustls names in its own words.
pub(super) fn certificate_advice(text: &str) -> Option<&'static str> {
    [
        (
            "UnknownIssuer",
            "the certificate is not signed by a CA tickler trusts: add that CA to \
             email.bounce.imap.ca_file",
        ),
        (
            "CaUsedAsEndEntity",
            "the server presents a CA certificate as its own: put the CA that signed it in \
             email.bounce.imap.ca_file",
        ),
        (
            "NotValidForName",
            "the certificate does not name the host in email.bounce.imap.url: use the name \
             it was made for",
        ),
        ("Expired", "the server's certificate has expired"),
    ]
    .into_iter()
    .find(|(marker, _)| text.contains(marker))
    .map(|(_, advice)| advice)
}
