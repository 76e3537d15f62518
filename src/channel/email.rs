//! Email: building RFC 5322 messages with lettre (stable Message-ID, multipart text and
//! HTML, List-Unsubscribe headers, no header injection) and the two transports: SMTP
//! with a connection pool, and `.eml` files in a directory.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use jiff::Timestamp;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{DeliveryError, EmailTransport};
use crate::config::{Business, PasswordSource, SmtpConfig, Transport};
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
    let mailbox = |name: &str, address: &EmailAddress| -> Result<Mailbox, String> {
        let address = address
            .as_str()
            .parse()
            .map_err(|e| format!("address {address}: {e}"))?;
        let name = one_line(name);
        Ok(Mailbox::new((!name.is_empty()).then_some(name), address))
    };
    let business = envelope.business;
    let mut builder = Message::builder()
        .from(mailbox(&business.name, &business.email)?)
        .to(mailbox(envelope.to_name, envelope.to)?)
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
        builder = builder.reply_to(mailbox(&business.name, reply_to)?);
    }
    let message = match &body.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            body.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body.text.clone()),
        ),
    };
    message.map_err(|e| format!("cannot build the message: {e}"))
}

fn one_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// Builds the transport the configuration names.
pub fn transport(config: &Transport) -> anyhow::Result<Box<dyn EmailTransport>> {
    Ok(match config {
        Transport::File { dir } => Box::new(FileOutbox { dir: dir.clone() }),
        Transport::Smtp(smtp) => Box::new(SmtpOutbox::new(smtp)?),
    })
}

/// Writes each message to `DIR/NAME.eml`, atomically: a crash leaves either the whole
/// file or none, and a retry overwrites the same file instead of adding a second.
pub struct FileOutbox {
    dir: PathBuf,
}

#[async_trait]
impl EmailTransport for FileOutbox {
    async fn send(&self, message: &Message, name: &str) -> Result<String, DeliveryError> {
        let dir = self.dir.clone();
        let bytes = message.formatted();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{name}.eml"));
            let tmp = dir.join(format!(".{name}.eml.tmp"));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(format!("written to {}", path.display()))
        })
        .await
        .map_err(|e| DeliveryError::Transient(format!("file writer stopped: {e}")))?
        .map_err(|e| {
            DeliveryError::Transient(format!("cannot write to {}: {e}", self.dir.display()))
        })
    }

    fn concurrency(&self) -> usize {
        8
    }
}

/// SMTP through lettre's pooled async transport, with a deadline on every send
/// (lettre's own timeout covers each network operation, not a whole slow send).
pub struct SmtpOutbox {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
    max_connections: usize,
}

impl SmtpOutbox {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<SmtpOutbox> {
        let url =
            SmtpUrl::parse(&config.url).map_err(|m| anyhow::anyhow!("email.smtp.url: {m}"))?;
        let tls_parameters = || -> anyhow::Result<TlsParameters> {
            let mut builder = TlsParameters::builder(url.host.clone());
            if let Some(ca) = &config.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| anyhow::anyhow!("email.smtp.ca_file {}: {e}", ca.display()))?;
                builder = builder.add_root_certificate(Certificate::from_pem(&pem)?);
            }
            Ok(builder.build_rustls()?)
        };
        let tls = match url.security {
            Security::Opportunistic => Tls::Opportunistic(tls_parameters()?),
            Security::Required => Tls::Required(tls_parameters()?),
            Security::Implicit => Tls::Wrapper(tls_parameters()?),
            Security::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .timeout(Some(config.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(config.max_connections)
                    .idle_timeout(Duration::from_secs(60)),
            );
        if let Some(user) = &config.username {
            let password = match &config.password {
                Some(PasswordSource::File(path)) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        anyhow::anyhow!("email.smtp.password_file {}: {e}", path.display())
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                Some(PasswordSource::Env(var)) => std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("email.smtp.password_env: ${var} is not set"))?,
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpOutbox {
            transport: builder.build(),
            timeout: config.timeout,
            max_connections: config.max_connections as usize,
        })
    }
}

#[async_trait]
impl EmailTransport for SmtpOutbox {
    async fn send(&self, message: &Message, _name: &str) -> Result<String, DeliveryError> {
        match tokio::time::timeout(self.timeout, self.transport.send(message.clone())).await {
            Err(_) => Err(DeliveryError::Transient(format!(
                "timed out after {}s",
                self.timeout.as_secs()
            ))),
            Ok(Ok(response)) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(e)) if is_setup_failure(&e) => Err(DeliveryError::Paused(error_text(&e))),
            Ok(Err(e)) if e.is_permanent() => Err(DeliveryError::Permanent(error_text(&e))),
            Ok(Err(e)) => Err(DeliveryError::Transient(error_text(&e))),
        }
    }

    fn concurrency(&self) -> usize {
        self.max_connections
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

    #[test]
    fn names_and_subjects_cannot_inject_headers() {
        assert_eq!(
            one_line("Ana\r\nBcc: evil@example.com"),
            "Ana Bcc: evil@example.com"
        );
    }
}
