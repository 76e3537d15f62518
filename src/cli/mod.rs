//! The command line (SPEC section 2). Each subcommand has its own file; all printing to
//! the terminal happens in this module.

mod bounces;
mod check;
mod console;
mod contact;
mod copy;
mod dkim;
mod import;
mod plan;
mod preview;
mod run;
mod sends;
mod subscribe;
mod suppress;
mod tick;

pub use plan::upcoming;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::config::Config;
use crate::render::Templates;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "tickler",
    version,
    about = "Follow-up sends for small businesses, each exactly once and on time."
)]
pub struct Cli {
    /// Configuration file [default: $TICKLER_CONFIG, else /etc/tickler/tickler.yaml if it exists, else config/tickler.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format [default: journald under systemd, else text]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<crate::telemetry::LogFormat>,
    /// More log output (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleAction {
    /// Set the console's password (read from standard input).
    Passwd,
}

#[derive(Debug, Subcommand)]
pub enum BouncesAction {
    /// Act on bounce and complaint reports saved as .eml files.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DkimAction {
    /// Make a DKIM key and print the DNS record that publishes it.
    Keygen {
        /// The selector (`s=`): a DNS label such as tickler2026.
        #[arg(long)]
        selector: String,
        /// The signing domain (`d=`): your From address's domain.
        #[arg(long)]
        domain: String,
        #[arg(long, value_enum, default_value_t = KeyKind::Rsa)]
        algorithm: KeyKind,
        /// Where to write the key [default: SELECTOR.DOMAIN.dkim.pem]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// RSA (2048 bits) is what every receiver verifies; Ed25519 only some.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: sync, plan, send and record, forever.
    Run,
    /// One full pass (sync, plan, send everything due, record), then exit.
    Tick {
        /// The time to act at: RFC 3339, or a date (its start in the business zone).
        #[arg(long, value_name = "TS")]
        now: Option<String>,
        /// Show what would be sent; send and record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the configuration, the cadences and every template.
    Check {
        /// Also connect to the SMTP server (TLS, login) and say what it offers; sends nothing.
        #[arg(long)]
        smtp: bool,
    },
    /// Upsert contacts or events from a CSV file (`-` reads standard input).
    Import {
        #[arg(value_enum)]
        what: ImportKind,
        /// The CSV file, or `-`.
        file: PathBuf,
    },
    /// What would be sent in the next N days; records nothing.
    Plan {
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long, value_name = "TS")]
        now: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Plan with this cadence file (or directory) instead of the configured one,
        /// to see what it would do before it goes live.
        #[arg(long, value_name = "PATH")]
        cadences: Option<PathBuf>,
    },
    /// Render the exact message a contact would get from a cadence.
    Preview {
        cadence: String,
        contact: String,
        #[arg(long, value_name = "TS")]
        now: Option<String>,
        /// Write the message into this directory instead of printing it.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// The send log, newest first.
    Sends {
        #[arg(long, value_name = "D")]
        since: Option<String>,
        #[arg(long, value_name = "D")]
        until: Option<String>,
        #[arg(long)]
        contact: Option<String>,
        #[arg(long)]
        cadence: Option<String>,
        /// pending, sent, retrying, failed, skipped or bounced
        #[arg(long, value_name = "S")]
        status: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Opt a contact out of a channel.
    Unsubscribe {
        contact: String,
        #[arg(long, value_enum, default_value_t = ChannelArg::All)]
        channel: ChannelArg,
    },
    /// Opt a contact back into a channel.
    Resubscribe {
        contact: String,
        #[arg(long, value_enum, default_value_t = ChannelArg::All)]
        channel: ChannelArg,
    },
    /// One customer: details, events, every send with its reason, and what comes next.
    Contact {
        id: String,
        #[arg(long, value_name = "TS")]
        now: Option<String>,
        /// table or json
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Put an email address on the suppression list: it gets no more email.
    Suppress {
        address: String,
        /// Why, in a word or a few (shown as `suppressed:REASON` in the send log).
        #[arg(long, default_value = "manual")]
        reason: String,
        /// A note kept with the entry.
        #[arg(long, default_value = "")]
        detail: String,
    },
    /// Take an email address off the suppression list.
    Unsuppress { address: String },
    /// The suppression list, newest first; with an address, that entry and its report.
    Suppressions {
        address: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Bounce and complaint reports.
    Bounces {
        #[command(subcommand)]
        action: BouncesAction,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// The owner's web console.
    Console {
        #[command(subcommand)]
        action: ConsoleAction,
    },
    /// Copy the configured SQLite database (send log included) into an empty PostgreSQL one.
    CopyDb {
        /// The PostgreSQL database: postgres://USER@HOST:PORT/NAME
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ImportKind {
    Contacts,
    Events,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChannelArg {
    Email,
    Postcard,
    All,
}

/// How a command failed, which decides the exit status.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage: exit 2.
    Usage(String),
    /// Something the user must look at: exit 1. Each line is printed as `error: LINE`.
    Errors(Vec<String>),
    /// Already reported on stderr; exit 1.
    Reported,
    /// Standard output was closed by its reader (`tickler sends | head`): exit 0.
    PipeClosed,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Errors(vec![format!("{e:#}")])
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Failure {
        anyhow::Error::from(e).into()
    }
}

pub type CommandResult = Result<(), Failure>;

/// Prints a line to standard output, like `println!`, inside a function that returns
/// `Result<_, Failure>`: a reader that went away ends the command quietly.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())?
    };
}
pub(crate) use say;

/// Writes `bytes` to standard output. A closed pipe is [`Failure::PipeClosed`]; any
/// other failure to write is an error to report.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::PipeClosed),
        Err(e) => Err(Failure::Errors(vec![format!(
            "cannot write to standard output: {e}"
        )])),
    }
}

/// `error: TEXT` as one line of plain text. Messages quote what the user gave, which may
/// hold line breaks or terminal escapes; shown escaped, they can neither split the
/// message into lines that lack the `error:` prefix nor drive the terminal.
pub fn error_line(text: &str) -> String {
    format!("error: {}", plain(text))
}

/// `text` with line breaks and terminal escapes shown escaped: what a table cell or a
/// message quotes from the data cannot drive the terminal or break the layout.
pub(crate) fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the parsed command line.
pub async fn execute(cli: Cli) -> CommandResult {
    let path = cli.config.clone().unwrap_or_else(Config::default_path);
    match cli.command {
        Command::Check { smtp } => check::run(&path, smtp).await,
        Command::Run => run::run(&path).await,
        Command::Tick { now, dry_run } => tick::run(&path, now.as_deref(), dry_run).await,
        Command::Import { what, file } => import::run(&path, what, &file).await,
        Command::Plan {
            days,
            now,
            format,
            cadences,
        } => plan::run(&path, days, now.as_deref(), format, cadences.as_deref()).await,
        Command::Preview {
            cadence,
            contact,
            now,
            out,
        } => preview::run(&path, &cadence, &contact, now.as_deref(), out.as_deref()).await,
        Command::Sends {
            since,
            until,
            contact,
            cadence,
            status,
            format,
            limit,
        } => {
            let filter = sends::Filter {
                since,
                until,
                contact,
                cadence,
                status,
                limit,
            };
            sends::run(&path, filter, format).await
        }
        Command::Unsubscribe { contact, channel } => {
            subscribe::run(&path, &contact, channel, true).await
        }
        Command::Resubscribe { contact, channel } => {
            subscribe::run(&path, &contact, channel, false).await
        }
        Command::Contact { id, now, format } => {
            contact::run(&path, &id, now.as_deref(), format).await
        }
        Command::CopyDb { to } => copy::run(&path, &to).await,
        Command::Suppress {
            address,
            reason,
            detail,
        } => suppress::suppress(&path, &address, &reason, &detail).await,
        Command::Bounces {
            action: BouncesAction::Import { files },
        } => bounces::import(&path, &files).await,
        Command::Dkim {
            action:
                DkimAction::Keygen {
                    selector,
                    domain,
                    algorithm,
                    out,
                },
        } => {
            let algorithm = match algorithm {
                KeyKind::Rsa => crate::channel::dkim::Algorithm::Rsa,
                KeyKind::Ed25519 => crate::channel::dkim::Algorithm::Ed25519,
            };
            dkim::run(&selector, &domain, algorithm, out.as_deref())
        }
        Command::Unsuppress { address } => suppress::unsuppress(&path, &address).await,
        Command::Suppressions { address, format } => {
            suppress::list(&path, address.as_deref(), format).await
        }
        Command::Console {
            action: ConsoleAction::Passwd,
        } => console::passwd(&path).await,
    }
}

/// Loads the configuration, printing every problem.
fn load_config(path: &std::path::Path) -> Result<Config, Failure> {
    if !path.exists() {
        return Err(Failure::Errors(vec![format!(
            "{}: no configuration file here; give one with --config PATH or $TICKLER_CONFIG",
            path.display()
        )]));
    }
    Config::load(path).map_err(|d| Failure::Errors(d.0.iter().map(ToString::to_string).collect()))
}

fn load_templates(config: &Config) -> Result<Templates, Failure> {
    Templates::load(config)
        .map_err(|d| Failure::Errors(d.iter().map(ToString::to_string).collect()))
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, Failure> {
    Ok(crate::store::open(&config.database_url).await?)
}

/// `--now`: RFC 3339, a zoned time, or a plain date meaning its start in `zone`.
/// Refused outside 1970-9000: a pass looks a year and more ahead of `now`, and the
/// calendar ends in 9999.
fn parse_now(text: Option<&str>, zone: &TimeZone) -> Result<Timestamp, Failure> {
    let Some(text) = text else {
        return Ok(Timestamp::now());
    };
    let now = parse_ts(text, zone).map_err(|m| Failure::Usage(format!("--now: {m}")))?;
    if now < Timestamp::UNIX_EPOCH || now.as_second() >= crate::domain::time::LAST_INSTANT {
        return Err(Failure::Usage(format!(
            "--now: `{text}` is out of range; give a time between 1970 and 9000"
        )));
    }
    Ok(now)
}

fn parse_ts(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    crate::domain::contact::parse_instant(text, zone)
}

/// Prints records as one JSON array, or as CSV with a header row (cells that a
/// spreadsheet would run as formulas defused, as in the postcard manifest).
fn print_records<T: serde::Serialize>(format: Format, records: &[T]) -> Result<(), Failure> {
    if let Format::Json = format {
        let json = serde_json::to_string_pretty(records).map_err(anyhow::Error::from)?;
        say!("{json}");
        return Ok(());
    }
    let mut out = crate::csv_safe::Writer::new(Vec::new());
    for record in records {
        out.serialize(record).map_err(anyhow::Error::from)?;
    }
    write_stdout(&out.into_inner().map_err(anyhow::Error::from)?)
}

/// Prints rows as an aligned table.
fn print_table(headers: &[&str], rows: &[Vec<String>]) -> Result<(), Failure> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| plain(cell)).collect())
        .collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(padded.join("  ").trim_end());
        text.push('\n');
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
    write_stdout(text.as_bytes())
}
