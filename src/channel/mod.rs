//! Channels deliver rendered messages. Email goes through lettre, by SMTP or into
//! `.eml` files; postcards become print-ready PDFs in daily batches. Each says whether
//! a failure is worth retrying.

pub mod email;
mod feedback;
pub use feedback::Learned;
pub mod postcard;
pub mod smtp;

use async_trait::async_trait;

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
}
