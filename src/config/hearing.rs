//! The email settings about how mail is received rather than sent: DKIM signing
//! (`email.dkim`) and hearing back from bounces and complaints (`email.bounce`).

use super::raw::{RawBounce, RawDkim};
use super::sections::{Base, Validator};
use super::{BounceConfig, DkimConfig, ImapConfig, PasswordSource};
use crate::domain::{EmailAddress, Period};

/// The longest local part a return path may have: the VERP token (`+s<id>-<tag>`, at
/// most 38 characters) must still fit in the 64 that SMTP allows.
const MAX_RETURN_LOCAL: usize = 26;

pub(super) fn dkim(v: &mut Validator<'_>, raw: Option<RawDkim>, base: &Base) -> Option<DkimConfig> {
    let raw = raw?;
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    if !label(&raw.domain) {
        v.push(
            "email.dkim.domain",
            &format!("email.dkim.domain: `{}` is not a domain name", raw.domain),
        );
    }
    if !label(&raw.selector) {
        v.push(
            "email.dkim.selector",
            &format!(
                "email.dkim.selector: `{}` is not a DNS label such as tickler2026",
                raw.selector
            ),
        );
    }
    Some(DkimConfig {
        domain: raw.domain.to_ascii_lowercase(),
        selector: raw.selector,
        key_file: base.join(raw.key_file),
    })
}

pub(super) fn bounce(
    v: &mut Validator<'_>,
    raw: Option<RawBounce>,
    base: &Base,
) -> Option<BounceConfig> {
    let raw = raw?;
    let return_path = raw.return_path.as_deref().and_then(|text| {
        let address = v.check("email.bounce.return_path", EmailAddress::parse(text))?;
        let local = address.as_str().rsplit_once('@').map_or("", |(l, _)| l);
        if local.len() > MAX_RETURN_LOCAL || local.contains('+') {
            v.push(
                "email.bounce.return_path",
                &format!(
                    "email.bounce.return_path: `{text}` needs a local part of at most {MAX_RETURN_LOCAL} characters without `+` (tickler adds +TOKEN to it)"
                ),
            );
            return None;
        }
        Some(address)
    });
    let poll = v.period("email.bounce.poll", raw.poll.as_deref(), Period::minutes(5));
    if let Some(p) = poll.filter(|p| p.seconds() < 10) {
        v.push(
            "email.bounce.poll",
            &format!("email.bounce.poll: `{p}` must be at least 10s"),
        );
    }
    let imap = raw.imap.and_then(|imap| {
        if !(imap.url.starts_with("imaps://") || imap.url.starts_with("imap://")) {
            v.push(
                "email.bounce.imap.url",
                &format!(
                    "email.bounce.imap.url: `{}` must be imaps://HOST:993 or imap://HOST:143 (STARTTLS)",
                    imap.url
                ),
            );
        }
        let password = match (imap.password_file, imap.password_env) {
            (Some(file), None) => Some(PasswordSource::File(base.join(file))),
            (None, Some(var)) => Some(PasswordSource::Env(var)),
            _ => {
                v.push(
                    "email.bounce.imap",
                    "email.bounce.imap: give password_file or password_env (one of them)",
                );
                None
            }
        };
        let timeout = v.period("email.bounce.imap.timeout", imap.timeout.as_deref(), Period::minutes(0))?;
        let timeout = if timeout.is_zero() { Period::minutes(1).as_std() / 2 } else { timeout.as_std() };
        Some(ImapConfig {
            url: imap.url,
            username: imap.username,
            password: password?,
            ca_file: imap.ca_file.map(|f| base.join(f)),
            mailbox: imap.mailbox.unwrap_or_else(|| "INBOX".to_owned()),
            timeout,
        })
    });
    Some(BounceConfig {
        return_path,
        imap,
        poll: poll?.as_std(),
    })
}
