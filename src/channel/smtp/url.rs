//! Where and as whom to connect: `email.smtp.url` with its TLS mode, and the
//! credentials, whose password is read from `password_file` or `password_env` when the
//! transport is built.

use lettre::transport::smtp::authentication::Credentials;

use crate::config::SmtpConfig;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Security {
    None,
    Opportunistic,
    Required,
    Implicit,
}

/// `smtp://host:port` (opportunistic STARTTLS), `smtp://host:port?tls=required`,
/// `smtp://host:port?tls=none`, `smtps://host:port` (implicit TLS).
#[derive(Debug)]
pub(super) struct SmtpUrl {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) security: Security,
}

impl SmtpUrl {
    pub(super) fn parse(url: &str) -> Result<SmtpUrl, String> {
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

/// The credentials to log in with, if `email.smtp.username` is set. A password file
/// loses its trailing line break; a missing password is the empty one.
pub(super) fn credentials(config: &SmtpConfig) -> anyhow::Result<Option<Credentials>> {
    let Some(user) = &config.username else {
        return Ok(None);
    };
    let password = match &config.password {
        Some(source) => source.read("email.smtp")?,
        None => String::new(),
    };
    Ok(Some(Credentials::new(user.clone(), password)))
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
}
