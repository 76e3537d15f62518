//! What the server's replies and lettre's errors mean for a send: delivered, refused
//! for good, worth another try, about the client's pace, or a setup that stops sending.

use std::time::Duration;

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Response;

use super::tls::{certificate_advice, is_tls_error};
use crate::channel::{DeliveryError, one_line};

/// Why a step failed, and whether the connection can carry on.
pub(super) struct Failed {
    pub(super) error: DeliveryError,
    /// The server answered with a reply code and did not close: the conversation is
    /// still in step.
    pub(super) in_step: bool,
    /// The server refused for its rate limit (a 4.7.x reply): about the client.
    pub(super) rate_limit: bool,
    /// The connection failed or closed (421, timeout): the message was not refused.
    pub(super) connection_lost: bool,
}

impl Failed {
    /// A step that did not end before its deadline.
    pub(super) fn timed_out(timeout: Duration) -> Failed {
        Failed {
            error: timed_out(timeout),
            in_step: false,
            rate_limit: false,
            connection_lost: true,
        }
    }

    /// A step that ended in an error.
    pub(super) fn from_error(e: SmtpError) -> Failed {
        // 421: the server is closing the connection.
        let in_step = e.status().is_some_and(|code| code.to_string() != "421");
        Failed {
            in_step,
            rate_limit: is_rate_limit(&e),
            connection_lost: !in_step,
            error: classify(e),
        }
    }
}

pub(super) fn timed_out(timeout: Duration) -> DeliveryError {
    DeliveryError::Transient(format!("timed out after {}s", timeout.as_secs()))
}

/// A message that was not sent because sending shut down first.
pub(super) fn stopped() -> DeliveryError {
    DeliveryError::Transient("sending stopped before this message went out".into())
}

/// The server's reply, on one line.
pub(super) fn reply_text(response: Response) -> String {
    format!(
        "{} {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    )
}

/// A refusal for the client's sending rate: a 4xx reply with an enhanced status of
/// 4.7.x (Postfix: `450 4.7.1 Error: too much mail`), or one that says so in words.
fn is_rate_limit(e: &SmtpError) -> bool {
    let transient = e
        .status()
        .is_some_and(|code| code.to_string().starts_with('4'));
    let text = e.to_string().to_ascii_lowercase();
    transient
        && (text.contains(" 4.7.")
            || text.contains("too much mail")
            || text.contains("rate limit")
            || text.contains("too many messages"))
}

/// What a failure means for the send: pause everything, give up, or retry later.
pub(super) fn classify(e: SmtpError) -> DeliveryError {
    if is_setup_failure(&e) {
        DeliveryError::Paused(error_text(&e))
    } else if e.is_permanent() {
        DeliveryError::Permanent(error_text(&e))
    } else {
        DeliveryError::Transient(error_text(&e))
    }
}

/// Failures that no message can get past: authentication refused (530, 534, 535, 538)
/// or a TLS handshake that failed.
fn is_setup_failure(e: &SmtpError) -> bool {
    let auth = e
        .status()
        .map(|c| c.to_string())
        .is_some_and(|c| ["530", "534", "535", "538"].contains(&c.as_str()));
    auth || e.is_tls() || causes(e).any(is_tls_error)
}

fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// lettre's error with its causes, on one line, each said once, and what to do about
/// a certificate rustls refused.
fn error_text(e: &SmtpError) -> String {
    let mut text = String::new();
    for cause in causes(e) {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    if let Some(advice) = certificate_advice(&text) {
        text.push_str(" (");
        text.push_str(advice);
        text.push(')');
    }
    one_line(&text)
}
