//! `tickler check`: every problem in the configuration, cadences and templates, and in
//! the SMTP settings as far as they can be known without connecting.

use std::path::Path;

use super::{CommandResult, Failure, load_config, load_templates};
use crate::compose::check_cadence;
use crate::config::{Config, Document, PasswordSource, Transport};

pub async fn run(path: &Path, smtp: bool) -> CommandResult {
    let config = load_config(path)?;
    let templates = load_templates(&config)?;
    let mut errors = Vec::new();
    for (cadence, source) in config.cadences.iter().zip(&config.cadence_sources) {
        errors.extend(
            check_cadence(&config, &templates, cadence, &source.cadence)
                .iter()
                .map(ToString::to_string),
        );
    }
    let (smtp_errors, mut warnings) = smtp_settings(&config);
    errors.extend(smtp_errors);
    let imap = config.email.bounce.as_ref().and_then(|b| b.imap.as_ref());
    if let Some(imap) = imap {
        errors.extend(password_readable(
            &config,
            &imap.password,
            "email.bounce.imap",
        ));
    }
    errors.extend(logo_settings(&config));
    let (dkim_errors, dkim_warnings) = dkim_settings(&config);
    errors.extend(dkim_errors);
    warnings.extend(dkim_warnings);
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    if smtp {
        match &config.email.transport {
            Transport::Smtp(settings) => match crate::channel::probe_smtp(settings).await {
                Ok(probe) => print_probe(&probe)?,
                Err(why) => errors.push(format!("email.smtp: {why}")),
            },
            Transport::File { .. } => {
                errors.push("email.transport is file: there is no SMTP server to check".into());
            }
        }
    }
    if !errors.is_empty() {
        return Err(Failure::Errors(errors));
    }
    super::say!(
        "ok: {} cadences, {} templates",
        config.cadences.len(),
        templates.count()
    );
    Ok(())
}

/// What the SMTP server offered, a line each.
fn print_probe(probe: &crate::channel::Probe) -> CommandResult {
    let tls = if probe.encrypted {
        "over TLS"
    } else {
        "without TLS"
    };
    super::say!("smtp: connected to {} {tls}", probe.server);
    let offers = |name: &str| {
        probe
            .offers
            .iter()
            .find(|o| o.split_whitespace().next() == Some(name))
    };
    for name in ["STARTTLS", "PIPELINING", "SIZE", "AUTH"] {
        match offers(name) {
            Some(line) => super::say!("smtp: offers {}", super::plain(line)),
            None if name == "STARTTLS" && probe.encrypted => {}
            None => super::say!("smtp: does not offer {name}"),
        }
    }
    match &probe.logged_in_as {
        Some(user) => super::say!("smtp: logged in as {}", super::plain(user)),
        None => super::say!("smtp: no login configured (email.smtp.username)"),
    }
    Ok(())
}

/// The business's logo must be a PNG or SVG file that a card can print, whether or not
/// a postcard cadence uses it yet.
fn logo_settings(config: &Config) -> Option<String> {
    let logo = config.business.logo.as_ref()?;
    let error = crate::channel::postcard::check_logo(&logo.path).err()?;
    Some(format!(
        "{}: business.logo: {error}",
        located(config, "business.logo")
    ))
}

/// Where `key` is in the configuration file, as `FILE:LINE:COL`.
fn located(config: &Config, key: &str) -> String {
    match Document::read(&config.path) {
        Ok(doc) => doc.locate(key).to_string(),
        Err(_) => config.path.display().to_string(),
    }
}

/// The password must be where `setting` says, as the daemon will read it.
fn password_readable(config: &Config, source: &PasswordSource, setting: &str) -> Option<String> {
    let at = |key: &str| located(config, &format!("{setting}.{key}"));
    match source {
        PasswordSource::File(file) => std::fs::read_to_string(file).err().map(|e| {
            format!(
                "{}: {setting}.password_file: cannot read {}: {e}",
                at("password_file"),
                file.display()
            )
        }),
        PasswordSource::Env(var) if std::env::var_os(var).is_none() => Some(format!(
            "{}: {setting}.password_env: ${var} is not set here",
            at("password_env")
        )),
        PasswordSource::Env(_) => None,
    }
}

/// The SMTP password must be readable where the configuration says, as the daemon will
/// read it; and a password with `tls=none` can never be used (tickler never sends one
/// without TLS). Returns (errors, warnings), each `FILE:LINE:COL: message`.
fn smtp_settings(config: &Config) -> (Vec<String>, Vec<String>) {
    let Transport::Smtp(smtp) = &config.email.transport else {
        return (Vec::new(), Vec::new());
    };
    let at = |key: &str| located(config, key);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if let Some(source) = &smtp.password {
        errors.extend(password_readable(config, source, "email.smtp"));
    }
    if smtp.username.is_some() && smtp.url.ends_with("?tls=none") {
        warnings.push(format!(
            "{}: email.smtp.url: with tls=none the password can never be sent (tickler logs in \
             only over TLS), so every send would wait as `retrying`; drop tls=none or use smtps://",
            at("email.smtp.url")
        ));
    }
    (errors, warnings)
}

/// The DKIM key must load as the daemon will load it; a signing domain that is not the
/// From address's (or a parent of it) signs, but does not align for DMARC.
fn dkim_settings(config: &Config) -> (Vec<String>, Vec<String>) {
    let Some(dkim) = &config.email.dkim else {
        return (Vec::new(), Vec::new());
    };
    let at = |key: &str| located(config, key);
    let mut errors = Vec::new();
    if let Err(m) = crate::channel::dkim::Signer::configured(config) {
        errors.push(format!("{}: {m}", at("email.dkim.key_file")));
    }
    let from = config.business.email.domain().to_ascii_lowercase();
    let aligned = from == dkim.domain || from.ends_with(&format!(".{}", dkim.domain));
    let warnings = if aligned {
        Vec::new()
    } else {
        vec![format!(
            "{}: email.dkim.domain: `{}` is not the From address's domain `{from}`: receivers \
             check DMARC against the From domain, so sign with it",
            at("email.dkim.domain"),
            dkim.domain
        )]
    };
    (errors, warnings)
}
