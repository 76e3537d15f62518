//! Configuration: `tickler.yaml` and the cadence files it names, read into a validated
//! [`Config`]. Loading reports every problem it finds, each with its file, line and
//! column, instead of stopping at the first.

mod cadences;
mod raw;
pub mod yaml;
mod yaml_guard;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

use crate::domain::{Cadence, Days, EmailAddress, Opening, Period, Window};
use raw::{RawConfig, RawSchedule};
pub use yaml::{Diagnostic, Document, Location};

#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was read from; `reload` reads it again.
    pub path: PathBuf,
    pub business: Business,
    pub state_dir: PathBuf,
    pub database_url: String,
    pub cadences: Vec<Cadence>,
    /// Where each cadence was defined, for messages that point at it.
    pub cadence_sources: Vec<CadenceSource>,
    pub templates_dir: PathBuf,
    pub contacts_sync: Option<PathBuf>,
    pub events_sync: Option<PathBuf>,
    pub email: EmailConfig,
    pub postcards_dir: PathBuf,
    pub schedule: Schedule,
    pub http: Option<HttpConfig>,
}

#[derive(Clone, Debug)]
pub struct CadenceSource {
    pub cadence: Location,
    pub template: Location,
}

#[derive(Clone, Debug)]
pub struct Business {
    pub name: String,
    pub email: EmailAddress,
    pub reply_to: Option<EmailAddress>,
    pub phone: String,
    pub address: PostalAddress,
    pub zone: TimeZone,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostalAddress {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

impl PostalAddress {
    /// The address as lines for an envelope or a card: street lines, then
    /// `City, REGION POSTAL` where there is a region (North American style), else
    /// `POSTAL City`; the country last, when the card leaves `home` (the sender's country).
    pub fn lines(&self, home: &str) -> Vec<String> {
        let (city, region, postal) = (
            self.city.trim(),
            self.region.trim(),
            self.postal_code.trim(),
        );
        let place = if region.is_empty() {
            format!("{postal} {city}")
        } else {
            format!("{city}, {region} {postal}")
        };
        let country = self.country.trim();
        let abroad = !country.is_empty() && !country.eq_ignore_ascii_case(home.trim());
        [
            self.line1.trim(),
            self.line2.trim(),
            place.trim(),
            if abroad { country } else { "" },
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .collect()
    }

    /// The address on one line: `12 River St, Albany, NY 12207, US`.
    pub fn one_line(&self) -> String {
        let region_postal = [self.region.as_str(), self.postal_code.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        [
            self.line1.as_str(),
            self.line2.as_str(),
            self.city.as_str(),
            region_postal.as_str(),
            self.country.as_str(),
        ]
        .iter()
        .filter(|s| !s.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
    }
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub transport: Transport,
    /// At most this many messages per `per`.
    pub rate_limit: Option<(u32, std::time::Duration)>,
    pub give_up_after: Period,
}

#[derive(Clone, Debug)]
pub enum Transport {
    /// One `.eml` file per message in `dir`.
    File {
        dir: PathBuf,
    },
    Smtp(SmtpConfig),
}

#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
    pub ca_file: Option<PathBuf>,
    pub max_connections: u32,
    pub timeout: std::time::Duration,
}

/// Where the SMTP password comes from; it is read when the transport is built, never
/// stored in the configuration.
#[derive(Clone, Debug)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub tick: std::time::Duration,
    pub opening: Opening,
    pub max_lateness: Period,
    pub frequency_cap: Option<FrequencyCap>,
}

impl Schedule {
    /// What cadences are checked against when `schedule` itself is broken.
    const DEFAULT: Schedule = Schedule {
        tick: std::time::Duration::from_secs(60),
        opening: Opening::ALWAYS,
        max_lateness: Period::days(7),
        frequency_cap: None,
    };
}

#[derive(Clone, Copy, Debug)]
pub struct FrequencyCap {
    pub max: u32,
    pub per: Period,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub secret_file: PathBuf,
    pub api_token_file: Option<PathBuf>,
}

/// Everything wrong with a configuration, in file order.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Config {
    /// Reads `path` and the cadence files it names.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        Config::load_inner(path, None)
    }

    /// Reads `path`, but the cadences from `cadences` (a file or a directory).
    pub fn load_with_cadences(path: &Path, cadences: &Path) -> Result<Config, Diagnostics> {
        Config::load_inner(path, Some(cadences))
    }

    /// Validates `text` as the content of `path`; the files it names (cadences) are
    /// still read from disk. Lets the fuzzers and tests feed text without a file.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
        let doc = Document::parse(path, text).map_err(|d| Diagnostics(vec![d]))?;
        Config::from_document(path, doc, None)
    }

    /// Validates the text of one cadence file, as if read from `file`, against the
    /// default schedule.
    pub fn parse_cadences(file: &Path, text: &str) -> Result<Vec<Cadence>, Diagnostics> {
        let doc = Document::parse(file, text).map_err(|d| Diagnostics(vec![d]))?;
        let mut errors = Vec::new();
        let (cadences, _) = cadences::from_document(&doc, &Schedule::DEFAULT, &mut errors);
        if errors.is_empty() {
            Ok(cadences)
        } else {
            Err(Diagnostics(errors))
        }
    }

    fn load_inner(path: &Path, cadences: Option<&Path>) -> Result<Config, Diagnostics> {
        let doc = Document::read(path).map_err(|d| Diagnostics(vec![d]))?;
        Config::from_document(path, doc, cadences)
    }

    fn from_document(
        path: &Path,
        doc: Document,
        cadences: Option<&Path>,
    ) -> Result<Config, Diagnostics> {
        let mut errors = Vec::new();
        let raw: RawConfig = doc
            .deserialize("", doc.value.clone())
            .map_err(|d| Diagnostics(vec![d]))?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let base = &Base(base);
        let mut v = Validator {
            doc: &doc,
            errors: &mut errors,
        };

        let zone = v.check(
            "business.timezone",
            crate::domain::contact::parse_zone(&raw.business.timezone),
        );
        let business_email = v.check("business.email", EmailAddress::parse(&raw.business.email));
        let reply_to = raw
            .business
            .reply_to
            .as_deref()
            .and_then(|r| v.check("business.reply_to", EmailAddress::parse(r)));
        let address = raw.business.address.unwrap_or_default();
        let address = PostalAddress {
            line1: address.line1.unwrap_or_default(),
            line2: address.line2.unwrap_or_default(),
            city: address.city.unwrap_or_default(),
            region: address.region.unwrap_or_default(),
            postal_code: address.postal_code.unwrap_or_default(),
            country: address.country.unwrap_or_default(),
        };
        if address.line1.trim().is_empty() || address.city.trim().is_empty() {
            v.push(
                "business",
                "business.address needs at least line1 and city: every commercial email carries the postal address",
            );
        }
        if raw.business.name.trim().is_empty() {
            v.push("business.name", "business.name is empty");
        }

        let state_dir = match &raw.state_dir {
            Some(dir) => base.join(dir),
            // systemd may list several directories, separated by colons.
            None => std::env::var("STATE_DIRECTORY")
                .ok()
                .and_then(|d| d.split(':').next().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("var")),
        };
        let database_url = match raw.database.as_ref().and_then(|d| d.url.as_deref()) {
            Some(url) => v
                .check("database.url", database_url(url, base))
                .unwrap_or_default(),
            None => format!("sqlite://{}", state_dir.join("tickler.db").display()),
        };
        let schedule = schedule(&mut v, raw.schedule.unwrap_or_default());
        let email = email(&mut v, raw.email, base, &state_dir);
        let http = raw.http.and_then(|h| {
            let listen = v.check(
                "http.listen",
                h.listen.parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "`{}` is not a listen address such as 127.0.0.1:8025",
                        h.listen
                    )
                }),
            )?;
            Some(HttpConfig {
                listen,
                public_url: h.public_url.map(|u| u.trim_end_matches('/').to_owned()),
                secret_file: h
                    .secret_file
                    .map_or_else(|| state_dir.join("secret"), |f| base.join(f)),
                api_token_file: h.api_token_file.map(|f| base.join(f)),
            })
        });
        let templates_dir = base.join(raw.templates.as_deref().unwrap_or("templates"));
        let cadence_path = match cadences {
            Some(path) => path.to_owned(),
            None => base.join(raw.cadences.as_deref().unwrap_or("cadences.yaml")),
        };
        // With a broken `schedule`, cadences are still checked, against the defaults.
        let defaults = schedule.as_ref().unwrap_or(&Schedule::DEFAULT);
        let (cadences, cadence_sources) = cadences::load(&cadence_path, defaults, &mut errors);
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let (Some(zone), Some(business_email), Some(schedule), Some(email)) =
            (zone, business_email, schedule, email)
        else {
            // Every missing value comes with an error above; this is a safety net.
            return Err(Diagnostics(vec![
                doc.error("", "the configuration is incomplete"),
            ]));
        };
        Ok(Config {
            path: path.to_owned(),
            business: Business {
                name: raw.business.name,
                email: business_email,
                reply_to,
                phone: raw.business.phone.unwrap_or_default(),
                address,
                zone,
            },
            postcards_dir: raw
                .postcards
                .and_then(|p| p.dir)
                .map_or_else(|| state_dir.join("postcards"), |d| base.join(d)),
            state_dir,
            database_url,
            cadences,
            cadence_sources,
            templates_dir,
            contacts_sync: raw.contacts.and_then(|s| s.sync_csv).map(|f| base.join(f)),
            events_sync: raw.events.and_then(|s| s.sync_csv).map(|f| base.join(f)),
            email,
            schedule,
            http,
        })
    }

    /// The configuration file to use when `--config` is not given (SPEC section 2).
    pub fn default_path() -> PathBuf {
        if let Some(path) = std::env::var_os("TICKLER_CONFIG") {
            return PathBuf::from(path);
        }
        let system = PathBuf::from("/etc/tickler/tickler.yaml");
        if system.exists() {
            system
        } else {
            PathBuf::from("config/tickler.yaml")
        }
    }

    pub fn cadence(&self, id: &str) -> Option<&Cadence> {
        self.cadences.iter().find(|c| c.id == id)
    }
}

/// The directory of the file being read: relative paths in it are relative to it.
struct Base(PathBuf);

impl Base {
    /// `self/relative` with `.` and `..` resolved lexically, so messages show
    /// `../var/outbox` as `var/outbox` rather than `config/../var/outbox`.
    fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        use std::path::Component;
        let mut out = PathBuf::new();
        for part in self.0.join(relative).components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir
                    if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
                {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        if out.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            out
        }
    }
}

/// Collects diagnostics while turning raw values into typed ones.
pub(crate) struct Validator<'a> {
    pub(crate) doc: &'a Document,
    pub(crate) errors: &'a mut Vec<Diagnostic>,
}

impl Validator<'_> {
    pub(crate) fn check<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|message| self.push(path, &format!("{path}: {message}")))
            .ok()
    }

    pub(crate) fn push(&mut self, path: &str, message: &str) {
        self.errors.push(self.doc.error(path, message));
    }

    pub(crate) fn period(
        &mut self,
        path: &str,
        text: Option<&str>,
        default: Period,
    ) -> Option<Period> {
        match text {
            None => Some(default),
            Some(text) => self.check(path, Period::parse(text)),
        }
    }
}

fn database_url(url: &str, base: &Base) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_owned());
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            format!("`{url}` is not a database URL; use sqlite://PATH or postgres://...")
        })?;
    let (file, query) = rest
        .split_once('?')
        .map_or((rest, None), |(f, q)| (f, Some(q)));
    if file == ":memory:" || query.is_some_and(|q| q.contains("mode=memory")) {
        return Err(
            "an in-memory database would forget every contact and send when tickler exits; name a file".into(),
        );
    }
    let file = base.join(file);
    Ok(match query {
        Some(q) => format!("sqlite://{}?{q}", file.display()),
        None => format!("sqlite://{}", file.display()),
    })
}

fn schedule(v: &mut Validator<'_>, raw: RawSchedule) -> Option<Schedule> {
    let tick = v.period("schedule.tick", raw.tick.as_deref(), Period::minutes(1));
    let window = match raw.send_window.as_deref() {
        Some(w) => v.check("schedule.send_window", Window::parse(w)),
        None => Window::parse("09:00-18:00").ok(),
    };
    let days = match &raw.days {
        Some(days) => v.check("schedule.days", Days::parse(days)),
        None => Some(Days::ALL),
    };
    let max_lateness = v.period(
        "schedule.max_lateness",
        raw.max_lateness.as_deref(),
        Period::days(7),
    );
    let cap = match raw.frequency_cap {
        Some(cap) => {
            let per = v.check("schedule.frequency_cap.per", Period::parse(&cap.per));
            if cap.max == 0 {
                v.push(
                    "schedule.frequency_cap.max",
                    "schedule.frequency_cap.max must be at least 1",
                );
            }
            per.map(|per| Some(FrequencyCap { max: cap.max, per }))
        }
        None => Some(None),
    };
    if let Some(t) = tick.filter(|t| t.seconds() < 1) {
        v.push(
            "schedule.tick",
            &format!("schedule.tick: `{t}` must be at least 1s"),
        );
    }
    Some(Schedule {
        tick: tick?.as_std(),
        opening: Opening {
            window: window?,
            days: days?,
        },
        max_lateness: max_lateness?,
        frequency_cap: cap?,
    })
}

fn email(
    v: &mut Validator<'_>,
    raw: Option<raw::RawEmail>,
    base: &Base,
    state_dir: &Path,
) -> Option<EmailConfig> {
    let Some(raw) = raw else {
        return Some(EmailConfig {
            transport: Transport::File {
                dir: state_dir.join("outbox"),
            },
            rate_limit: None,
            give_up_after: Period::days(3),
        });
    };
    let file_dir = raw
        .file
        .and_then(|f| f.dir)
        .map_or_else(|| state_dir.join("outbox"), |d| base.join(d));
    let transport = match raw.transport.as_deref().unwrap_or("file") {
        "file" => Some(Transport::File { dir: file_dir }),
        "smtp" => match raw.smtp {
            None => {
                v.push("email", "email.transport is smtp but email.smtp is missing");
                None
            }
            Some(smtp) => {
                let url_ok = ["smtp://", "smtps://"]
                    .iter()
                    .any(|p| smtp.url.starts_with(p));
                if !url_ok {
                    v.push(
                        "email.smtp.url",
                        &format!(
                            "email.smtp.url: `{}` must start with smtp:// or smtps://",
                            smtp.url
                        ),
                    );
                }
                let password = match (smtp.password_file, smtp.password_env) {
                    (Some(_), Some(_)) => {
                        v.push(
                            "email.smtp",
                            "email.smtp: give password_file or password_env, not both",
                        );
                        None
                    }
                    (Some(file), None) => Some(PasswordSource::File(base.join(file))),
                    (None, Some(var)) => Some(PasswordSource::Env(var)),
                    (None, None) => None,
                };
                if password.is_some() && smtp.username.is_none() {
                    v.push("email.smtp", "email.smtp: a password needs a username");
                }
                let timeout = v.period(
                    "email.smtp.timeout",
                    smtp.timeout.as_deref(),
                    Period::minutes(0),
                );
                let max_connections = smtp.max_connections.unwrap_or(4);
                if max_connections == 0 {
                    v.push(
                        "email.smtp.max_connections",
                        "email.smtp.max_connections must be at least 1",
                    );
                }
                Some(Transport::Smtp(SmtpConfig {
                    url: smtp.url,
                    username: smtp.username,
                    password,
                    ca_file: smtp.ca_file.map(|f| base.join(f)),
                    max_connections,
                    timeout: match timeout {
                        Some(t) if !t.is_zero() => t.as_std(),
                        _ => std::time::Duration::from_secs(30),
                    },
                }))
            }
        },
        other => {
            v.push(
                "email.transport",
                &format!("email.transport: `{other}` is not smtp or file"),
            );
            None
        }
    };
    let rate_limit = raw
        .rate_limit
        .as_deref()
        .and_then(|r| v.check("email.rate_limit", parse_rate(r)));
    let give_up_after = v.period(
        "email.retry.give_up_after",
        raw.retry.and_then(|r| r.give_up_after).as_deref(),
        Period::days(3),
    );
    Some(EmailConfig {
        transport: transport?,
        rate_limit,
        give_up_after: give_up_after?,
    })
}

/// `20/s`, `600/m`, `1000/h`.
fn parse_rate(text: &str) -> Result<(u32, std::time::Duration), String> {
    let bad = || format!("`{text}` is not a rate; write e.g. 20/s or 600/m");
    let (n, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let per = match per.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    Ok((n, std::time::Duration::from_secs(per)))
}
