//! Opening a session: the URL, TCP, TLS (implicit, or STARTTLS which is required), the
//! greeting and LOGIN, each step under the settings' timeout.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{Capability, Response, Status};
use async_imap::types::UnsolicitedResponse;
use async_imap::{Client, Session};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::{ImapError, certificate_advice};
use super::limited::Limited;
use super::{ImapSettings, SMALL_REPLY};

/// The stream a logged-in session runs over: always TLS.
pub(super) type Secure = Limited<TlsStream<TcpStream>>;

/// Where the server is, and whether TLS starts at once (`imaps`) or after STARTTLS.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Url {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) implicit_tls: bool,
}

impl Url {
    /// `imaps://host[:port]` (993 by default) or `imap://host[:port]` (143).
    pub(super) fn parse(url: &str) -> Result<Url, String> {
        let (rest, implicit_tls, default_port) = if let Some(rest) = url.strip_prefix("imaps://") {
            (rest, true, 993)
        } else if let Some(rest) = url.strip_prefix("imap://") {
            (rest, false, 143)
        } else {
            return Err(format!(
                "url {url:?}: use imaps://host:993 or imap://host:143 (with STARTTLS)"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '@', '?', '#']) {
            return Err(format!(
                "url {url:?}: only a host and port, no user, path or mailbox \
                 (those are username and mailbox)"
            ));
        }
        // An IPv6 address is written in brackets, so that its colons are not a port.
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((host, "")) => (host, None),
                Some((host, port)) => (host, Some(port.strip_prefix(':').unwrap_or(port))),
                None => return Err(format!("url {url:?}: unclosed [ in the host")),
            },
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(format!("url {url:?}: no host"));
        }
        let port = match port {
            None => default_port,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("url {url:?}: port {port:?} is not a port number"))?,
        };
        Ok(Url {
            host: host.to_owned(),
            port,
            implicit_tls,
        })
    }
}

/// TLS trusting the public web's roots (as SMTP does) and the CAs in `ca_file`.
pub(super) fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, ImapError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let bad =
            |reason: String| ImapError::Settings(format!("ca_file {}: {reason}", path.display()));
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certificates.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Settings(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One connection attempt, with what every error message names.
pub(super) struct Dial {
    pub(super) server: String,
    pub(super) timeout: Duration,
}

impl Dial {
    /// Connects, secures the connection and logs in.
    pub(super) async fn login(
        &self,
        url: &Url,
        settings: &ImapSettings,
        tls: &TlsConnector,
    ) -> Result<Session<Secure>, ImapError> {
        let tcp = self.step("connecting", self.tcp(url)).await?;
        let tcp = if url.implicit_tls {
            tcp
        } else {
            self.starttls(tcp).await?
        };
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| ImapError::Settings(format!("url host {:?}: {e}", url.host)))?;
        let handshake = async { tls.connect(name, tcp).await.map_err(|e| self.tls_failed(e)) };
        let stream = self.step("TLS handshake", handshake).await?;
        let mut client = Client::new(Limited::new(stream, SMALL_REPLY));
        if url.implicit_tls {
            self.step("greeting", self.greeting(&mut client)).await?;
        }
        let login = client.login(&settings.username, &settings.password);
        match self.step("LOGIN", async { Ok(login.await) }).await? {
            Ok(session) => Ok(session),
            Err((
                async_imap::error::Error::No(reply) | async_imap::error::Error::Bad(reply),
                _,
            )) => Err(ImapError::LoginRejected {
                server: self.server.clone(),
                username: settings.username.clone(),
                reply,
            }),
            Err((e, _)) => Err(self.failed("LOGIN", e)),
        }
    }

    async fn tcp(&self, url: &Url) -> Result<TcpStream, ImapError> {
        TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::ConnectionRefused => ImapError::Refused {
                    server: self.server.clone(),
                },
                _ => ImapError::Unreachable {
                    server: self.server.clone(),
                    source,
                },
            })
    }

    /// On `imap://`: the greeting, STARTTLS if offered, else nothing more is sent.
    async fn starttls(&self, tcp: TcpStream) -> Result<TcpStream, ImapError> {
        let mut client = Client::new(Limited::new(tcp, SMALL_REPLY));
        self.step("greeting", self.greeting(&mut client)).await?;
        let offered = self.step("CAPABILITY", self.offers_starttls(&mut client));
        if !offered.await? {
            return Err(ImapError::NoStartTls {
                server: self.server.clone(),
            });
        }
        let starttls = client.run_command_and_check_ok("STARTTLS", None);
        self.step("STARTTLS", async {
            starttls.await.map_err(|e| self.failed("STARTTLS", e))
        })
        .await?;
        Ok(client.into_inner().into_inner())
    }

    /// Reads the server's first line: `* OK` to go on, anything else ends here.
    async fn greeting<S>(&self, client: &mut Client<Limited<S>>) -> Result<(), ImapError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + std::fmt::Debug,
    {
        let greeting = client
            .read_response()
            .await
            .map_err(|e| self.failed("greeting", e.into()))?;
        match greeting.as_ref().map(|g| g.parsed()) {
            Some(Response::Data {
                status: Status::Ok, ..
            }) => Ok(()),
            Some(Response::Data {
                status: Status::Bye,
                outcome,
            }) => Err(self.protocol(
                "greeting",
                format!(
                    "the server turned the connection away: {}",
                    outcome.information.as_deref().unwrap_or("BYE")
                ),
            )),
            Some(other) => Err(self.protocol("greeting", format!("unexpected {other:?}"))),
            None => Err(self.protocol("greeting", "the server closed the connection".into())),
        }
    }

    /// Asks for the capabilities before TLS, and whether STARTTLS is among them.
    async fn offers_starttls(
        &self,
        client: &mut Client<Limited<TcpStream>>,
    ) -> Result<bool, ImapError> {
        // The client hands the untagged replies to a command over this channel.
        let (replies, received) = async_channel::bounded(16);
        client
            .run_command_and_check_ok("CAPABILITY", Some(replies))
            .await
            .map_err(|e| self.failed("CAPABILITY", e))?;
        let mut starttls = false;
        while let Ok(UnsolicitedResponse::Other(reply)) = received.try_recv() {
            if let Response::Capabilities(capabilities) = reply.parsed() {
                starttls |= capabilities.iter().any(
                    |c| matches!(c, Capability::Atom(a) if a.eq_ignore_ascii_case("STARTTLS")),
                );
            }
        }
        Ok(starttls)
    }

    /// Runs `step` under the timeout.
    pub(super) async fn step<T>(
        &self,
        step: &'static str,
        future: impl Future<Output = Result<T, ImapError>>,
    ) -> Result<T, ImapError> {
        tokio::time::timeout(self.timeout, future)
            .await
            .map_err(|_| ImapError::Timeout {
                server: self.server.clone(),
                step,
                after: self.timeout,
            })?
    }

    fn tls_failed(&self, error: io::Error) -> ImapError {
        let text = match error.get_ref() {
            Some(inner) => inner.to_string(),
            None => error.to_string(),
        };
        let reason = match certificate_advice(&text) {
            Some(advice) => format!("{text}: {advice}"),
            None => text,
        };
        ImapError::Tls {
            server: self.server.clone(),
            reason,
        }
    }

    pub(super) fn failed(&self, step: &'static str, error: async_imap::error::Error) -> ImapError {
        if let async_imap::error::Error::Io(io) = &error
            && super::limited::is_over_budget(io)
        {
            return ImapError::TooLarge {
                server: self.server.clone(),
                step,
            };
        }
        self.protocol(step, error.to_string())
    }

    pub(super) fn protocol(&self, step: &'static str, reason: String) -> ImapError {
        ImapError::Protocol {
            server: self.server.clone(),
            step,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_how_tls_starts() {
        let parse = |s| Url::parse(s).unwrap();
        assert_eq!(
            parse("imaps://mail.example.com"),
            Url {
                host: "mail.example.com".into(),
                port: 993,
                implicit_tls: true
            }
        );
        assert_eq!(parse("imap://mail.example.com:1143/").port, 1143);
        assert!(!parse("imap://mail.example.com").implicit_tls);
        assert_eq!(parse("imaps://[::1]:994").host, "::1");
        for bad in [
            "pop3://x",
            "imaps://",
            "imaps://x:0",
            "imaps://x:http",
            "imaps://u@x",
            "imaps://x/INBOX",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
