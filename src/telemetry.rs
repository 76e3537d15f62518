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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        // Until the journald writer arrives, journald gets plain lines without colour
        // or timestamps (the journal adds its own).
        LogFormat::Journald => builder.with_ansi(false).without_time().init(),
        LogFormat::Text => builder.init(),
    }
}
