//! Channels deliver rendered messages. Email is built here (`email`) and handed to an
//! [`EmailTransport`]: SMTP (`smtp`) or `.eml` files in a directory (`file`); postcards
//! become print-ready PDFs in daily batches (`postcard`). Each says whether a failure is
//! worth retrying. A new email transport implements `EmailTransport` and gets a branch
//! in [`transport`].

pub mod dkim;
pub mod email;
mod file;
pub mod postcard;
mod smtp;

pub use smtp::{Probe, probe as probe_smtp};

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::config::Transport;

/// Why a delivery did not happen, as the send log needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later: a 4xx reply, a refused or dropped connection, a timeout.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: a 5xx reply, an address the server refuses.
    #[error("{0}")]
    Permanent(String),
    /// Nothing can be sent until someone fixes the setup: the server refused our
    /// credentials, or TLS failed. Sending stops as a whole instead of failing every
    /// message one by one.
    #[error("{0}")]
    Paused(String),
}

/// Hands a finished email to the outside world.
#[async_trait]
pub trait EmailTransport: Send + Sync {
    /// Delivers `message`; `name` is a stable token of its send record (the same on
    /// every attempt). Returns the server's reply or where the message was written.
    async fn send(&self, message: &lettre::Message, name: &str) -> Result<String, DeliveryError>;

    /// How many messages may be in flight at once.
    fn concurrency(&self) -> usize;

    /// Closes connections kept open between messages; called at the end of a pass.
    async fn close_idle(&self) {}

    /// What the transport learned of its server's limits, if it learns any.
    fn learned(&self) -> Option<Learned> {
        None
    }

    /// Stops the transport's own tasks when `token` is cancelled: what is under way
    /// finishes, and every send not yet started comes back as a `Transient` error.
    fn shutdown_on(&self, _token: CancellationToken) {}

    /// Waits until the transport's own tasks have ended, which they do once the token
    /// given to `shutdown_on` is cancelled.
    async fn stopped(&self) {}
}

/// What an SMTP transport learned of its server's limits, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Learned {
    pub connections: usize,
    pub gap: Duration,
}

/// Builds the transport the configuration names.
pub fn transport(config: &Transport) -> anyhow::Result<Box<dyn EmailTransport>> {
    Ok(match config {
        Transport::File { dir } => Box::new(file::FileOutbox::new(dir.clone())),
        Transport::Smtp(smtp) => Box::new(smtp::SmtpOutbox::new(smtp)?),
    })
}

/// `text` on one line: control characters become spaces and runs of whitespace one
/// space, so that no value put in a header can start a header of its own.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_subjects_cannot_inject_headers() {
        assert_eq!(
            one_line("Ana\r\nBcc: evil@example.com"),
            "Ana Bcc: evil@example.com"
        );
        assert_eq!(one_line("  Ana \t Ruiz "), "Ana Ruiz");
        assert_eq!(one_line("Ana\u{a0}Ruiz"), "Ana Ruiz");
        assert_eq!(one_line("Zoë's Tiles & Stone"), "Zoë's Tiles & Stone");
        assert_eq!(one_line(""), "");
    }
}
