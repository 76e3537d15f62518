//! The YAML files as they are written: a serde mirror that rejects unknown keys and
//! keeps values as text, so that validation can report every bad value at once.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub business: RawBusiness,
    pub state_dir: Option<String>,
    pub database: Option<RawDatabase>,
    pub cadences: Option<String>,
    pub templates: Option<String>,
    pub contacts: Option<RawSync>,
    pub events: Option<RawSync>,
    pub email: Option<RawEmail>,
    pub postcards: Option<RawPostcards>,
    pub schedule: Option<RawSchedule>,
    pub http: Option<RawHttp>,
    pub console: Option<RawConsole>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub keep_messages: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBusiness {
    pub name: String,
    pub email: String,
    pub reply_to: Option<String>,
    pub phone: Option<String>,
    pub address: Option<RawAddress>,
    pub timezone: String,
    /// A PNG or SVG file, relative to this file: the logo postcard fronts show.
    pub logo: Option<String>,
    /// `#rrggbb`: the colour postcard fronts are printed in.
    pub colour: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddress {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub sync_csv: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub transport: Option<String>,
    pub file: Option<RawDir>,
    pub smtp: Option<RawSmtp>,
    pub rate_limit: Option<String>,
    pub retry: Option<RawRetry>,
    pub dkim: Option<RawDkim>,
    pub bounce: Option<RawBounce>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim {
    pub domain: String,
    pub selector: String,
    pub key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBounce {
    pub return_path: Option<String>,
    pub imap: Option<RawImap>,
    pub poll: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImap {
    pub url: String,
    pub username: String,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    pub mailbox: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDir {
    pub dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub url: String,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    pub max_connections: Option<u32>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub give_up_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostcards {
    pub dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub tick: Option<String>,
    pub send_window: Option<String>,
    pub days: Option<Vec<String>>,
    pub max_lateness: Option<String>,
    pub frequency_cap: Option<RawCap>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCap {
    pub max: u32,
    pub per: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: String,
    pub public_url: Option<String>,
    pub secret_file: Option<String>,
    pub api_token_file: Option<String>,
    pub console: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCadenceFile {
    pub cadences: Vec<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCadence {
    pub id: String,
    pub channel: String,
    pub template: String,
    pub trigger: RawTrigger,
    #[serde(rename = "where")]
    pub where_: Option<RawWhere>,
    pub unless: Option<Vec<String>>,
    pub send_window: Option<String>,
    pub days: Option<Vec<String>>,
    pub max_lateness: Option<String>,
    pub transactional: Option<bool>,
    pub enabled: Option<bool>,
    /// Postcards: a PNG or JPEG in the templates directory for the card's front.
    pub front_image: Option<String>,
    /// Groups cadences on the customer's preferences page.
    pub topic: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    pub after: Option<String>,
    pub delay: Option<String>,
    pub every: Option<String>,
    pub since: Option<String>,
    pub yearly: Option<String>,
    pub lead: Option<String>,
    pub feb29: Option<String>,
    pub cron: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhere {
    pub tags: Option<Vec<String>>,
}
