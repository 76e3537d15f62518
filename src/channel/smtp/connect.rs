//! Opening a connection: TCP with TCP_NODELAY, the greeting, TLS (implicit or
//! STARTTLS), EHLO and AUTH, each step done by lettre's client over our own socket.

use std::io;
use std::time::Duration;

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use super::feedback::Slot;
use super::reply::classify;
use super::tls::TlsStream;
use super::url::{Security, SmtpUrl};
use crate::channel::DeliveryError;
use crate::config::SmtpConfig;

/// Where and how to connect.
pub(super) struct Server {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) security: Security,
    pub(super) tls: Option<TlsParameters>,
    pub(super) hello: ClientId,
    pub(super) credentials: Option<Credentials>,
}

/// A connection, and whether its server takes MAIL, RCPT and DATA in one write.
pub(super) struct Connection {
    pub(super) smtp: AsyncSmtpConnection,
    pub(super) pipelining: bool,
    /// What the server offers after TLS, as its EHLO reply lists it.
    pub(super) offers: Vec<String>,
    /// Whether the connection is encrypted (implicit TLS or STARTTLS).
    pub(super) encrypted: bool,
    /// Its place in the window of connections the server takes.
    _slot: Slot,
}

/// Why a connection could not be opened.
pub(super) enum Opening {
    /// The server refused the connection itself (refused, 421 at the greeting, too
    /// many connections): about the client, not the message.
    Refused(String),
    /// A setup failure (credentials, TLS) or anything else no retry here can mend.
    Failed(DeliveryError),
}

impl Server {
    /// The server `email.smtp` names, with its TLS parameters and credentials.
    pub(super) fn configured(config: &SmtpConfig) -> anyhow::Result<Server> {
        let url =
            SmtpUrl::parse(&config.url).map_err(|m| anyhow::anyhow!("email.smtp.url: {m}"))?;
        let tls = match url.security {
            Security::None => None,
            _ => Some(super::tls::parameters(
                &url.host,
                config.ca_file.as_deref(),
            )?),
        };
        Ok(Server {
            credentials: super::url::credentials(config)?,
            host: url.host,
            port: url.port,
            security: url.security,
            tls,
            hello: ClientId::default(),
        })
    }

    /// Opens a connection in `slot`: TCP, the greeting, STARTTLS, EHLO and AUTH.
    pub(super) async fn connect(
        &self,
        timeout: Duration,
        slot: Slot,
    ) -> Result<Connection, Opening> {
        let unreachable = |e: io::Error| {
            Opening::Refused(format!(
                "cannot connect to {}:{}: {e}",
                self.host, self.port
            ))
        };
        // A setup failure (TLS, credentials) stops sending; any other failure before
        // the first message is the server turning the connection away.
        let refused = |e: SmtpError| match classify(e) {
            DeliveryError::Paused(reason) => Opening::Failed(DeliveryError::Paused(reason)),
            other => Opening::Refused(other.to_string()),
        };
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unreachable(io::ErrorKind::TimedOut.into()))?
            .map_err(unreachable)?;
        // lettre writes a body and its closing `.` separately: without this the
        // kernel holds the terminator until the body is acknowledged.
        tcp.set_nodelay(true).map_err(unreachable)?;
        let mut connection = match (&self.security, &self.tls) {
            (Security::Implicit, Some(tls)) => {
                let peer = tcp.peer_addr().map_err(unreachable)?;
                #[allow(deprecated)]
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream
                    .upgrade_tls(tls.clone())
                    .await
                    .map_err(|e| Opening::Failed(classify(e)))?;
                let stream = TlsStream {
                    inner: tokio_util::compat::FuturesAsyncReadCompatExt::compat(stream),
                    peer,
                };
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(refused)?;
        let tls = match (&self.security, &self.tls) {
            (Security::Opportunistic, Some(tls)) if connection.can_starttls() => Some(tls),
            (Security::Required, Some(tls)) => Some(tls),
            _ => None,
        };
        if let Some(tls) = tls {
            connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(|e| Opening::Failed(classify(e)))?;
        }
        let encrypted = tls.is_some() || self.security == Security::Implicit;
        if self.credentials.is_some() && !encrypted {
            connection.abort().await;
            return Err(Opening::Failed(DeliveryError::Paused(format!(
                "{}:{} offers no STARTTLS, and tickler never sends the SMTP password without TLS; \
                 use the server's STARTTLS port, or smtps://",
                self.host, self.port
            ))));
        }
        // lettre's client keeps no record of PIPELINING: the server is asked again (a
        // repeated EHLO is allowed, and comes before AUTH).
        let offers: Vec<String> = match connection.command(Ehlo::new(self.hello.clone())).await {
            // The first line is the server's name; each other names an extension.
            Ok(reply) => reply.message().skip(1).map(str::to_owned).collect(),
            Err(e) => {
                connection.abort().await;
                return Err(refused(e));
            }
        };
        let pipelining = offers
            .iter()
            .any(|line| line.split_whitespace().next() == Some("PIPELINING"));
        if let Some(credentials) = &self.credentials {
            let mechanisms = [Mechanism::Plain, Mechanism::Login];
            if let Err(e) = connection.auth(&mechanisms, credentials).await {
                connection.abort().await;
                return Err(Opening::Failed(classify(e)));
            }
        }
        Ok(Connection {
            smtp: connection,
            pipelining,
            offers,
            encrypted,
            _slot: slot,
        })
    }
}
