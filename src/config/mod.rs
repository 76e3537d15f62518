//! Configuration: `tickler.yaml` and the cadence files it names, read into a validated
//! [`Config`]. Loading reports every problem it finds, each with its file, line and
//! column, instead of stopping at the first.

mod cadences;
mod hearing;
mod raw;
mod sections;
pub mod yaml;
mod yaml_guard;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

use crate::domain::{Cadence, EmailAddress, Opening, Period, PostalAddress};
use raw::RawConfig;
use sections::{Base, Validator, database_url, email, schedule};
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
    /// How long each sent email's rendered text is kept for the console (`0d`: not kept).
    pub keep_messages: Period,
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
    /// The logo postcard fronts show, when the business has one.
    pub logo: Option<Logo>,
    /// The colour postcard fronts are printed in.
    pub colour: Colour,
}

/// `business.logo`: the file, and its name as written, which a front template uses to
/// place it (`<image href="{{business.logo}}"/>`).
#[derive(Clone, Debug)]
pub struct Logo {
    pub path: PathBuf,
    pub name: String,
}

/// A colour as `#rrggbb`, lower-case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Colour(String);

impl Colour {
    /// A dark slate blue: readable under white text, and quiet on any front.
    pub const DEFAULT: &str = "#2f5566";

    /// `#rrggbb` or `#rgb`.
    pub fn parse(text: &str) -> Result<Colour, String> {
        let hex = text.trim().strip_prefix('#').unwrap_or("");
        let full: String = match hex.len() {
            3 => hex.chars().flat_map(|c| [c, c]).collect(),
            _ => hex.to_owned(),
        };
        if full.len() == 6 && full.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Colour(format!("#{}", full.to_ascii_lowercase())))
        } else {
            Err(format!(
                "`{text}` is not a colour; write it as #rrggbb, e.g. \"{}\"",
                Colour::DEFAULT
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub transport: Transport,
    /// At most this many messages per `per`.
    pub rate_limit: Option<(u32, std::time::Duration)>,
    pub give_up_after: Period,
    /// Signs every email when set.
    pub dkim: Option<DkimConfig>,
    /// Where bounces and complaints come back, when set.
    pub bounce: Option<BounceConfig>,
}

/// `email.dkim`: the signing domain (`d=`), the selector (`s=`) and the PEM key file.
#[derive(Clone, Debug)]
pub struct DkimConfig {
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
}

/// `email.bounce`.
#[derive(Clone, Debug)]
pub struct BounceConfig {
    /// The envelope sender's base: each email's is `LOCAL+TOKEN@DOMAIN` (VERP).
    pub return_path: Option<EmailAddress>,
    /// The mailbox that bounces and complaints arrive in.
    pub imap: Option<ImapConfig>,
    /// How often `run` reads it.
    pub poll: std::time::Duration,
}

/// `email.bounce.imap`.
#[derive(Clone, Debug)]
pub struct ImapConfig {
    /// `imaps://HOST:PORT`, or `imap://HOST:PORT` with STARTTLS required.
    pub url: String,
    pub username: String,
    pub password: PasswordSource,
    pub ca_file: Option<PathBuf>,
    pub mailbox: String,
    /// For each step of a session.
    pub timeout: std::time::Duration,
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

impl PasswordSource {
    /// The password now; `setting` (`email.smtp`, ...) names where it was configured. A
    /// password file loses its trailing line break.
    pub fn read(&self, setting: &str) -> anyhow::Result<String> {
        match self {
            PasswordSource::File(path) => Ok(std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{setting}.password_file {}: {e}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned()),
            PasswordSource::Env(var) => std::env::var(var)
                .map_err(|_| anyhow::anyhow!("{setting}.password_env: ${var} is not set")),
        }
    }
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
    /// Whether `/console/` serves the owner's console.
    pub console: bool,
}

impl Config {
    /// The key file that signs links and return paths: `http.secret_file`, else
    /// `state_dir/secret`.
    pub fn secret_file(&self) -> PathBuf {
        self.http
            .as_ref()
            .map_or_else(|| self.state_dir.join("secret"), |h| h.secret_file.clone())
    }
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
        let colour = match raw.business.colour.as_deref() {
            Some(text) => v.check("business.colour", Colour::parse(text)),
            None => Some(Colour(Colour::DEFAULT.to_owned())),
        };
        let logo = raw.business.logo.as_ref().map(|name| Logo {
            path: base.join(name),
            name: name.clone(),
        });
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
            let public_url = h.public_url.and_then(|u| {
                let u = u.trim_end_matches('/').to_owned();
                let ok = u.strip_prefix("https://").is_some_and(|host| !host.is_empty());
                if !ok {
                    v.push(
                        "http.public_url",
                        &format!("http.public_url: `{u}` must be an https:// address: mail providers honour one-click unsubscribe links only over https"),
                    );
                }
                ok.then_some(u)
            });
            Some(HttpConfig {
                listen,
                public_url,
                secret_file: h
                    .secret_file
                    .map_or_else(|| state_dir.join("secret"), |f| base.join(f)),
                api_token_file: h.api_token_file.map(|f| base.join(f)),
                console: h.console.unwrap_or(false),
            })
        });
        let keep_messages = v.period(
            "console.keep_messages",
            raw.console.and_then(|c| c.keep_messages).as_deref(),
            Period::days(90),
        );
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
        let (
            Some(zone),
            Some(business_email),
            Some(schedule),
            Some(email),
            Some(keep_messages),
            Some(colour),
        ) = (zone, business_email, schedule, email, keep_messages, colour)
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
                logo,
                colour,
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
            keep_messages,
        })
    }

    /// Every cadence's id, in file order.
    pub fn cadence_ids(&self) -> Vec<String> {
        self.cadences.iter().map(|c| c.id.clone()).collect()
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
