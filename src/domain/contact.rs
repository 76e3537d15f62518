//! Contacts and their events: the people a business follows up with and what happened
//! with them (a purchase, a service visit, an inquiry). Values here are already valid:
//! the CSV and API readers build them with the parsers in this module.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::PostalAddress;

/// An email address that lettre accepts as a mailbox, with no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(text: &str) -> Result<EmailAddress, String> {
        let text = text.trim();
        if text.chars().any(char::is_control) {
            return Err("email contains a control character".into());
        }
        lettre::Address::from_str(text)
            .map(|_| EmailAddress(text.to_owned()))
            .map_err(|_| format!("`{text}` is not a valid email address"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("localhost", |(_, d)| d)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> String {
        value.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A yearly date of a contact (a birthday), with or without the year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthDay {
    pub year: Option<i16>,
    pub month: i8,
    pub day: i8,
}

impl MonthDay {
    /// `YYYY-MM-DD` or `MM-DD`; Feb 29 is allowed without a year.
    pub fn parse(text: &str) -> Result<MonthDay, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not a date; write YYYY-MM-DD or MM-DD");
        match text.len() {
            10 => {
                let date: Date = text.parse().map_err(|_| bad())?;
                Ok(MonthDay {
                    year: Some(date.year()),
                    month: date.month(),
                    day: date.day(),
                })
            }
            5 => {
                let (m, d) = text.split_once('-').ok_or_else(bad)?;
                let (month, day): (i8, i8) =
                    (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
                // 2024 is a leap year, so Feb 29 passes and Feb 30 does not.
                Date::new(2024, month, day).map_err(|_| bad())?;
                Ok(MonthDay {
                    year: None,
                    month,
                    day,
                })
            }
            _ => Err(bad()),
        }
    }

    pub fn is_feb29(&self) -> bool {
        self.month == 2 && self.day == 29
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.year {
            Some(y) => write!(f, "{y:04}-{:02}-{:02}", self.month, self.day),
            None => write!(f, "{:02}-{:02}", self.month, self.day),
        }
    }
}

/// Parses an IANA zone name, returning it unchanged when jiff knows it.
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name.trim())
        .map_err(|_| format!("`{}` is not a known IANA time zone", name.trim()))
}

/// A customer as the business knows them.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<EmailAddress>,
    pub address: PostalAddress,
    pub birthday: Option<MonthDay>,
    /// IANA name; `None` means the business's zone.
    pub timezone: Option<String>,
    pub tags: Vec<String>,
    pub email_opt_out: bool,
    pub postcard_opt_out: bool,
    /// Columns the business added; templates see them as `contact.fields.NAME`.
    pub fields: Fields,
    /// When tickler first saw this contact (its first tick); `None` until then.
    /// Occurrences long before it are history and are not replayed.
    pub armed_at: Option<Timestamp>,
}

impl Contact {
    pub fn zone(&self, business: &TimeZone) -> TimeZone {
        self.timezone
            .as_deref()
            .and_then(|name| TimeZone::get(name).ok())
            .unwrap_or_else(|| business.clone())
    }

    pub fn full_name(&self) -> String {
        let name = format!("{} {}", self.first_name.trim(), self.last_name.trim());
        name.trim().to_owned()
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    pub fn has_postal_address(&self) -> bool {
        !self.address.line1.trim().is_empty()
            && !self.address.city.trim().is_empty()
            && !self.address.postal_code.trim().is_empty()
    }
}

/// The columns a business added to a contact or an event, as stored: a JSON object of
/// strings. It stays that text until a template or a listing reads it, because a pass
/// reads far more contacts and events than it renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields(String);

impl Fields {
    /// Fields as the store holds them; [`Fields::map`] checks them when they are read.
    pub fn stored(json: String) -> Fields {
        Fields(json)
    }

    /// The JSON object, as stored.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The fields by name, or why the stored text is not a JSON object of strings.
    pub fn map(&self) -> Result<BTreeMap<String, String>, String> {
        serde_json::from_str(&self.0).map_err(|e| format!("custom fields: {e}"))
    }
}

impl Default for Fields {
    fn default() -> Fields {
        Fields("{}".to_owned())
    }
}

impl From<BTreeMap<String, String>> for Fields {
    fn from(map: BTreeMap<String, String>) -> Fields {
        // A map of strings always has a JSON form.
        Fields(serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned()))
    }
}

/// Something that happened with a contact; cadences are triggered by these.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub contact_id: String,
    /// The business's id, or one derived from kind and time so re-imports stay idempotent.
    pub id: String,
    pub kind: String,
    pub at: Timestamp,
    pub fields: Fields,
    /// When tickler first saw this event; `None` until its first tick.
    pub armed_at: Option<Timestamp>,
}

impl Event {
    /// The id an event gets when its source gave none.
    pub fn derived_id(kind: &str, at: Timestamp) -> String {
        format!("{kind}@{at}")
    }
}

/// Parses an event time: RFC 3339, or a plain date meaning its start in `zone`.
pub fn parse_instant(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if text.len() == 10 {
        let date: Date = text
            .parse()
            .map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"))?;
        return Ok(crate::domain::time::start_of_day(date, zone));
    }
    text.parse::<Timestamp>().map_err(|_| {
        format!("`{text}` is not a date or an RFC 3339 time such as 2026-03-01T10:00:00-05:00")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_read_back_as_they_were_written() {
        let map = BTreeMap::from([
            ("favorite_tile".to_owned(), "subway, \"white\"".to_owned()),
            ("note".to_owned(), "ünïcode".to_owned()),
        ]);
        let fields = Fields::from(map.clone());
        assert_eq!(fields.map(), Ok(map.clone()));
        assert_eq!(Fields::stored(fields.as_json().to_owned()).map(), Ok(map));
        assert_eq!(Fields::default().map(), Ok(BTreeMap::new()));
        let broken = Fields::stored("{\"note\": 3".to_owned()).map().unwrap_err();
        assert!(broken.starts_with("custom fields: "), "{broken}");
    }

    #[test]
    fn emails_are_validated() {
        assert!(EmailAddress::parse("ana@example.com").is_ok());
        assert!(EmailAddress::parse("not an email").is_err());
        assert!(EmailAddress::parse("a@example.com\r\nBcc: x@example.com").is_err());
    }

    #[test]
    fn birthdays_with_and_without_year() {
        assert_eq!(MonthDay::parse("1990-07-14").unwrap().year, Some(1990));
        assert!(MonthDay::parse("02-29").unwrap().is_feb29());
        assert!(MonthDay::parse("2026-02-30").is_err());
        assert!(MonthDay::parse("1991-02-29").is_err());
        assert!(MonthDay::parse("02-30").is_err());
        assert!(MonthDay::parse("13-01").is_err());
    }

    #[test]
    fn plain_dates_start_in_the_zone() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let at = parse_instant("2026-03-01", &ny).unwrap();
        assert_eq!(at.to_string(), "2026-03-01T05:00:00Z");
        assert!(parse_instant("2026-02-30", &ny).is_err());
    }
}
