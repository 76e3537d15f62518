//! `tickler check --smtp`: one connection to the configured server, as a send would open
//! it (TLS, EHLO, AUTH), to say what the server offers and whether the login works;
//! nothing is sent.

use std::sync::Arc;

use super::connect::{Opening, Server};
use super::feedback::Feedback;
use crate::channel::DeliveryError;
use crate::config::SmtpConfig;

/// What the server said.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `host:port`.
    pub server: String,
    pub encrypted: bool,
    /// The extensions it offers after TLS (`PIPELINING`, `SIZE 10240000`, `AUTH PLAIN`...).
    pub offers: Vec<String>,
    /// The user it logged in as, if the configuration has credentials.
    pub logged_in_as: Option<String>,
}

/// Connects, logs in and quits; an error says which step failed and why.
pub async fn probe(config: &SmtpConfig) -> Result<Probe, String> {
    let server = Server::configured(config).map_err(|e| format!("{e:#}"))?;
    let window = Arc::new(Feedback::new(1));
    let slot = window
        .try_open()
        .ok_or_else(|| "no connection slot".to_owned())?;
    // As a send's deadline does, one timeout covers the whole opening: a server that
    // accepts and then says nothing cannot hold the check.
    let opening = tokio::time::timeout(config.timeout, server.connect(config.timeout, slot));
    let Ok(opened) = opening.await else {
        return Err(format!(
            "{}:{} did not answer within {:?}",
            server.host, server.port, config.timeout
        ));
    };
    let connection = match opened {
        Ok(connection) => connection,
        Err(Opening::Refused(why)) => return Err(why),
        Err(Opening::Failed(
            DeliveryError::Paused(why)
            | DeliveryError::Permanent(why)
            | DeliveryError::Transient(why),
        )) => return Err(why),
    };
    let mut smtp = connection.smtp;
    let _ = tokio::time::timeout(config.timeout, smtp.quit()).await;
    Ok(Probe {
        server: format!("{}:{}", server.host, server.port),
        encrypted: connection.encrypted,
        offers: connection.offers,
        logged_in_as: config.username.clone(),
    })
}
