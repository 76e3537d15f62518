//! `tickler check`: every problem in the configuration, cadences and templates, and in
//! the SMTP settings as far as they can be known without connecting.

use std::path::Path;

use super::{CommandResult, Failure, load_config, load_templates};
use crate::compose::check_cadence;
use crate::config::{Config, Document, PasswordSource, Transport};

pub fn run(path: &Path) -> CommandResult {
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
    let (smtp_errors, warnings) = smtp_settings(&config);
    errors.extend(smtp_errors);
    for warning in warnings {
        eprintln!("warning: {warning}");
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

/// The SMTP password must be readable where the configuration says, as the daemon will
/// read it; and a password with `tls=none` can never be used (tickler never sends one
/// without TLS). Returns (errors, warnings), each `FILE:LINE:COL: message`.
fn smtp_settings(config: &Config) -> (Vec<String>, Vec<String>) {
    let Transport::Smtp(smtp) = &config.email.transport else {
        return (Vec::new(), Vec::new());
    };
    let at = |key: &str| match Document::read(&config.path) {
        Ok(doc) => doc.locate(key).to_string(),
        Err(_) => config.path.display().to_string(),
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    match &smtp.password {
        Some(PasswordSource::File(file)) => {
            if let Err(e) = std::fs::read_to_string(file) {
                errors.push(format!(
                    "{}: email.smtp.password_file: cannot read {}: {e}",
                    at("email.smtp.password_file"),
                    file.display()
                ));
            }
        }
        Some(PasswordSource::Env(var)) if std::env::var_os(var).is_none() => {
            errors.push(format!(
                "{}: email.smtp.password_env: ${var} is not set here",
                at("email.smtp.password_env")
            ));
        }
        Some(PasswordSource::Env(_)) | None => {}
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
