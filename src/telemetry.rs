//! Logging through tracing: text for people, JSON for log shippers, journald (with
//! priorities) under systemd. Message bodies and secrets are never logged, nor are
//! customers' names and addresses: log lines carry ids, and reasons that may quote an
//! address (an SMTP reply, a rejected CSV value) go through [`redact`].

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbosity` is -v count minus -q count.
/// How log lines are written: `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
    Journald,
}

pub fn init(format: Option<LogFormat>, verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("TICKLER_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},sqlx=warn,tokio_cron_scheduler=warn,lettre=warn"
        ))
    });
    // Handlebars logs the values it renders (names, addresses) at debug level: off at
    // every level, whatever TICKLER_LOG asks for.
    let filter = match "handlebars=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let format = format.unwrap_or(if std::env::var_os("JOURNAL_STREAM").is_some() {
        LogFormat::Journald
    } else {
        LogFormat::Text
    });
    if let LogFormat::Journald = format {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        // Levels become journal priorities; fields become journal fields.
        match tracing_journald::layer() {
            Ok(journald) => {
                tracing_subscriber::registry()
                    .with(filter)
                    .with(journald.with_syslog_identifier("tickler".into()))
                    .init();
                return;
            }
            Err(e) => eprintln!("warning: cannot reach the journal ({e}); logging to stderr"),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Journald => builder.with_ansi(false).without_time().init(),
        // Colours only on a terminal: a log redirected to a file stays plain text.
        LogFormat::Text => {
            use std::io::IsTerminal as _;
            builder.with_ansi(std::io::stderr().is_terminal()).init()
        }
    }
}

/// `text` with every email address in it replaced by `<address>`: SMTP replies and
/// import errors quote the address they are about, and logs carry ids, not addresses.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('@') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let is_part = |c: char| !c.is_whitespace() && !"<>()[]{},;:\"'`".contains(c);
        let start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_part(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = rest[at + 1..]
            .char_indices()
            .find(|(_, c)| !is_part(*c))
            .map_or(rest.len(), |(i, _)| at + 1 + i);
        out.push_str(&rest[..start]);
        out.push_str("<address>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_redacted_from_log_text() {
        assert_eq!(
            super::redact("550 5.1.1 <ana.lima@example.com>: Recipient address rejected"),
            "550 5.1.1 <<address>>: Recipient address rejected"
        );
        assert_eq!(
            super::redact("email: `x@y` is not valid; and b@c."),
            "email: `<address>` is not valid; and <address>"
        );
        assert_eq!(super::redact("no address here"), "no address here");
    }
}
