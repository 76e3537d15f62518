//! Logging through tracing: text for people, JSON for log shippers, journald (with
//! priorities) under systemd. Message bodies and secrets are never logged.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber. `verbosity` is -v count minus -q count.
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
