//! SMTP: a small pool of lettre connections over sockets of our own, with TCP_NODELAY.
//!
//! lettre writes a message's body and its closing `\r\n.\r\n` separately. Without
//! TCP_NODELAY the kernel holds the five-byte terminator until the body is
//! acknowledged, and the server delays that acknowledgement (it is waiting for the rest
//! of the data): about 40 ms lost per message and per connection on Linux, whatever the
//! server's speed. lettre's own pool gives no way to set the option, so the connections
//! here are made from our own sockets and handed to lettre's SMTP client, which still
//! does every protocol step (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA). Where the server
//! offers PIPELINING, MAIL, RCPT and DATA are written together (`Connection::transfer`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::Message;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::email::one_line;
use super::{DeliveryError, EmailTransport};
use crate::config::{PasswordSource, SmtpConfig};

/// A connection idle longer than this is closed instead of reused (servers drop idle
/// clients after a few minutes; Postfix after 300 s).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A connection idle longer than this is checked with NOOP before it carries a message.
/// Under load connections come back within milliseconds and skip the round trip.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// SMTP with at most `max_connections` connections, each message under one deadline
/// (connecting included).
pub struct SmtpOutbox {
    server: Server,
    timeout: Duration,
    max_connections: usize,
    slots: Semaphore,
    idle: Mutex<Vec<(Connection, Instant)>>,
}

/// A connection, and whether its server takes MAIL, RCPT and DATA in one write.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

/// Where and how to connect.
struct Server {
    host: String,
    port: u16,
    security: Security,
    tls: Option<TlsParameters>,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpOutbox {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<SmtpOutbox> {
        let url =
            SmtpUrl::parse(&config.url).map_err(|m| anyhow::anyhow!("email.smtp.url: {m}"))?;
        let tls = match url.security {
            Security::None => None,
            _ => {
                let mut builder = TlsParameters::builder(url.host.clone());
                if let Some(ca) = &config.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| anyhow::anyhow!("email.smtp.ca_file {}: {e}", ca.display()))?;
                    builder = builder.add_root_certificate(Certificate::from_pem(&pem)?);
                }
                Some(builder.build_rustls()?)
            }
        };
        let credentials = match &config.username {
            None => None,
            Some(user) => {
                let password = match &config.password {
                    Some(PasswordSource::File(path)) => std::fs::read_to_string(path)
                        .map_err(|e| {
                            anyhow::anyhow!("email.smtp.password_file {}: {e}", path.display())
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                    Some(PasswordSource::Env(var)) => std::env::var(var).map_err(|_| {
                        anyhow::anyhow!("email.smtp.password_env: ${var} is not set")
                    })?,
                    None => String::new(),
                };
                Some(Credentials::new(user.clone(), password))
            }
        };
        let max_connections = (config.max_connections as usize).max(1);
        Ok(SmtpOutbox {
            server: Server {
                host: url.host,
                port: url.port,
                security: url.security,
                tls,
                hello: ClientId::default(),
                credentials,
            },
            timeout: config.timeout,
            max_connections,
            slots: Semaphore::new(max_connections),
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn deliver(&self, message: &Message) -> Result<String, DeliveryError> {
        let mut connection = self.checkout().await?;
        let result = connection.transfer(message).await;
        // A connection is closed on any failed step; the others carry on.
        if !connection.smtp.has_broken()
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push((connection, Instant::now()));
        }
        let response = result.map_err(classify)?;
        Ok(format!(
            "{} {}",
            response.code(),
            response.message().collect::<Vec<_>>().join(" ")
        ))
    }

    /// The most recently used idle connection that still works, or a new one.
    async fn checkout(&self) -> Result<Connection, DeliveryError> {
        loop {
            let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some((mut connection, since)) = taken else {
                return self.server.connect(self.timeout).await;
            };
            let idle_for = since.elapsed();
            if idle_for < CHECK_AFTER
                || (idle_for < IDLE_LIMIT && connection.smtp.test_connected().await)
            {
                return Ok(connection);
            }
            connection.smtp.abort().await;
        }
    }
}

impl Server {
    async fn connect(&self, timeout: Duration) -> Result<Connection, DeliveryError> {
        let unreachable = |e: io::Error| {
            DeliveryError::Transient(format!(
                "cannot connect to {}:{}: {e}",
                self.host, self.port
            ))
        };
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| unreachable(io::ErrorKind::TimedOut.into()))?
            .map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let mut connection = match (&self.security, &self.tls) {
            (Security::Implicit, Some(tls)) => {
                let peer = tcp.peer_addr().map_err(unreachable)?;
                #[allow(deprecated)]
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream.upgrade_tls(tls.clone()).await.map_err(classify)?;
                let stream = TlsStream {
                    inner: tokio_util::compat::FuturesAsyncReadCompatExt::compat(stream),
                    peer,
                };
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await,
        }
        .map_err(classify)?;
        let tls = match (&self.security, &self.tls) {
            (Security::Opportunistic, Some(tls)) if connection.can_starttls() => Some(tls),
            (Security::Required, Some(tls)) => Some(tls),
            _ => None,
        };
        if let Some(tls) = tls {
            connection
                .starttls(tls.clone(), &self.hello)
                .await
                .map_err(classify)?;
        }
        // lettre's client keeps no record of PIPELINING: the server is asked again (a
        // repeated EHLO is allowed, and comes before AUTH).
        let pipelining = match connection.command(Ehlo::new(self.hello.clone())).await {
            Ok(reply) => reply
                .message()
                .any(|line| line.split_whitespace().next() == Some("PIPELINING")),
            Err(e) => {
                connection.abort().await;
                return Err(classify(e));
            }
        };
        if let Some(credentials) = &self.credentials {
            let mechanisms = [Mechanism::Plain, Mechanism::Login];
            if let Err(e) = connection.auth(&mechanisms, credentials).await {
                connection.abort().await;
                return Err(classify(e));
            }
        }
        Ok(Connection {
            smtp: connection,
            pipelining,
        })
    }
}

impl Connection {
    /// Sends one message. Where the server offers PIPELINING (RFC 2920), MAIL, RCPT
    /// and DATA go in one write and their replies are read together: two round trips
    /// a message instead of four. A connection is closed after any failed step, as
    /// lettre's own `send` does; a message whose DATA was never ended is discarded by
    /// the server.
    async fn transfer(&mut self, message: &Message) -> Result<Response, SmtpError> {
        let envelope = message.envelope();
        let email = message.formatted();
        let eight_bit = !email.is_ascii();
        let ascii_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|a| AsRef::<str>::as_ref(a).is_ascii());
        let plain = ascii_addresses
            && (!eight_bit
                || self
                    .smtp
                    .server_info()
                    .supports_feature(Extension::EightBitMime));
        if !self.pipelining || !plain {
            // lettre's own exchange, which also says why a message cannot go.
            return self.smtp.send(envelope, &email).await;
        }
        let parameters = if eight_bit {
            vec![MailParameter::Body(MailBodyParameter::EightBitMime)]
        } else {
            Vec::new()
        };
        let mut group = Mail::new(envelope.from().cloned(), parameters).to_string();
        for to in envelope.to() {
            group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        group.push_str(&Data.to_string());
        // The replies come in order: MAIL's, each RCPT's, then DATA's.
        let mut result = self.smtp.command(group).await;
        for _ in 0..envelope.to().len() + 1 {
            if result.is_err() {
                break;
            }
            result = self.smtp.read_response().await;
        }
        if result.is_ok() {
            // The whole DATA in one write (lettre's `message` ends it in a second one).
            result = match String::from_utf8(data_block(&email)) {
                Ok(block) => self.smtp.command(block).await,
                Err(_) => self.smtp.message(&email).await,
            };
        }
        if result.is_err() {
            self.smtp.abort().await;
        }
        result
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

/// What a failure means for the send: pause everything, give up, or retry later.
fn classify(e: lettre::transport::smtp::Error) -> DeliveryError {
    if is_setup_failure(&e) {
        DeliveryError::Paused(error_text(&e))
    } else if e.is_permanent() {
        DeliveryError::Permanent(error_text(&e))
    } else {
        DeliveryError::Transient(error_text(&e))
    }
}

#[async_trait]
impl EmailTransport for SmtpOutbox {
    async fn send(&self, message: &Message, _name: &str) -> Result<String, DeliveryError> {
        // The semaphore is never closed.
        let _slot = self.slots.acquire().await;
        match tokio::time::timeout(self.timeout, self.deliver(message)).await {
            Err(_) => Err(DeliveryError::Transient(format!(
                "timed out after {}s",
                self.timeout.as_secs()
            ))),
            Ok(result) => result,
        }
    }

    fn concurrency(&self) -> usize {
        self.max_connections
    }

    async fn close_idle(&self) {
        let idle = self
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        // A server that does not answer QUIT must not hold the pass up.
        for (mut connection, _) in idle {
            let _ = tokio::time::timeout(self.timeout, connection.smtp.quit()).await;
        }
    }
}

/// An implicit-TLS stream as lettre's client takes it.
#[derive(Debug)]
struct TlsStream {
    #[allow(deprecated)]
    inner: tokio_util::compat::Compat<lettre::transport::smtp::client::AsyncNetworkStream>,
    peer: SocketAddr,
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

/// Failures that no message can get past: authentication refused (530, 534, 535, 538)
/// or a TLS handshake that failed.
fn is_setup_failure(e: &lettre::transport::smtp::Error) -> bool {
    let auth = e
        .status()
        .map(|c| c.to_string())
        .is_some_and(|c| ["530", "534", "535", "538"].contains(&c.as_str()));
    auth || e.is_tls() || causes(e).any(is_tls_error)
}

/// rustls reports a failed handshake inside an I/O error.
fn is_tls_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<rustls::Error>()
        || cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<rustls::Error>())
}

fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// lettre's error with its causes, on one line, each said once.
fn error_text(e: &lettre::transport::smtp::Error) -> String {
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
    one_line(&text)
}

#[derive(Debug, PartialEq, Eq)]
enum Security {
    None,
    Opportunistic,
    Required,
    Implicit,
}

/// `smtp://host:port` (opportunistic STARTTLS), `smtp://host:port?tls=required`,
/// `smtp://host:port?tls=none`, `smtps://host:port` (implicit TLS).
#[derive(Debug)]
struct SmtpUrl {
    host: String,
    port: u16,
    security: Security,
}

impl SmtpUrl {
    fn parse(url: &str) -> Result<SmtpUrl, String> {
        let (implicit, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("smtp://") {
            (false, rest)
        } else {
            return Err(format!("`{url}` must start with smtp:// or smtps://"));
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("`{p}` is not a port"))?,
            ),
            _ => (authority, if implicit { 465 } else { 25 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        let security = match (implicit, query) {
            (true, _) => Security::Implicit,
            (false, "") => Security::Opportunistic,
            (false, "tls=required") => Security::Required,
            (false, "tls=none") => Security::None,
            (false, other) => {
                return Err(format!(
                    "unknown option `{other}`; use tls=required or tls=none"
                ));
            }
        };
        Ok(SmtpUrl {
            host: host.to_owned(),
            port,
            security,
        })
    }
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

    #[test]
    fn smtp_urls() {
        let u = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.security),
            ("127.0.0.1", 2525, Security::Opportunistic)
        );
        let u = SmtpUrl::parse("smtp://mail.example.com:587?tls=required").unwrap();
        assert_eq!((u.port, u.security), (587, Security::Required));
        let u = SmtpUrl::parse("smtps://mail.example.com").unwrap();
        assert_eq!((u.port, u.security), (465, Security::Implicit));
        assert!(SmtpUrl::parse("http://x").is_err());
        assert!(SmtpUrl::parse("smtp://x:99999").is_err());
    }
}
