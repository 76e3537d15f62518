//! TLS for the SMTP connections: the parameters (with `email.smtp.ca_file`), the
//! adapter that hands an implicit-TLS stream to lettre's client, and what to tell the
//! user about a certificate rustls refused.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::{AsyncTokioStream, Certificate, TlsParameters};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The TLS parameters for `host`, trusting `ca_file` besides the system's roots.
pub(super) fn parameters(host: &str, ca_file: Option<&Path>) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("email.smtp.ca_file {}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(Certificate::from_pem(&pem)?);
    }
    Ok(builder.build_rustls()?)
}

/// An implicit-TLS stream as lettre's client takes it: lettre upgrades a socket of
/// ours (set to TCP_NODELAY), and this gives the result back as a tokio stream.
#[derive(Debug)]
pub(super) struct TlsStream {
    #[allow(deprecated)]
    pub(super) inner:
        tokio_util::compat::Compat<lettre::transport::smtp::client::AsyncNetworkStream>,
    pub(super) peer: SocketAddr,
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

/// rustls reports a failed handshake inside an I/O error.
pub(super) fn is_tls_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<rustls::Error>()
        || cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// What to do about the certificate problems rustls names in its own words.
pub(super) fn certificate_advice(text: &str) -> Option<&'static str> {
    [
        (
            "CaUsedAsEndEntity",
            "the server presents a CA certificate as its own: put the CA that signed the \
             server's certificate in email.smtp.ca_file, or give the server a certificate \
             made with CA:FALSE",
        ),
        (
            "UnknownIssuer",
            "the certificate is not signed by a CA tickler trusts: add that CA to \
             email.smtp.ca_file",
        ),
        (
            "NotValidForName",
            "the certificate does not name the host in email.smtp.url: use the name it was \
             made for",
        ),
        ("Expired", "the server's certificate has expired"),
    ]
    .into_iter()
    .find(|(marker, _)| text.contains(marker))
    .map(|(_, advice)| advice)
}
