//! Checking one record (a CSV row or a JSON object) on its own: the limits every
//! column must keep, and the contact or event it describes. Both the CSV import and
//! the HTTP API use these, so a record is taken or refused alike by either.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;

use crate::domain::contact::{parse_instant, parse_zone};
use crate::domain::{Contact, EmailAddress, Event, MonthDay, PostalAddress};
use crate::store::{ContactUpsert, EventUpsert};

/// The contacts CSV columns tickler knows; any other column is a custom field.
pub const CONTACT_COLUMNS: [&str; 15] = [
    "id",
    "first_name",
    "last_name",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "birthday",
    "timezone",
    "tags",
    "email_opt_out",
    "postcard_opt_out",
];
const EVENT_COLUMNS: [&str; 4] = ["contact_id", "kind", "at", "id"];

/// One record as column name -> value, from a JSON object.
pub type Record = Vec<(String, String)>;

/// Column values by name: a CSV row or a JSON object.
pub trait Fields {
    /// The value of column `name`, trimmed; empty when there is no such column.
    fn get(&self, name: &str) -> &str;
    /// Every column as (name, value), the values untrimmed.
    fn columns(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Fields for Record {
    fn get(&self, name: &str) -> &str {
        self.iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    fn columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Longest id (contact or event) taken, in characters: ids go into every link and
/// header that names a contact, and a header line must stay under 998 characters.
pub const MAX_ID: usize = 128;
/// Longest value of any other column, in bytes.
pub const MAX_VALUE: usize = 4096;
/// Most custom columns a record may carry.
pub const MAX_CUSTOM_FIELDS: usize = 100;
/// Most tags a contact may carry: templates iterate over them, nested.
pub const MAX_TAGS: usize = 100;

fn no_controls(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{name}: contains a line break or control character"
        ));
    }
    if value.len() > MAX_VALUE {
        return Err(format!(
            "{name}: is {} bytes long; at most {MAX_VALUE} are taken",
            value.len()
        ));
    }
    Ok(())
}

fn id_ok(name: &str, value: &str) -> Result<(), String> {
    let length = value.chars().count();
    if length > MAX_ID {
        return Err(format!(
            "{name}: is {length} characters long; ids of at most {MAX_ID} are taken"
        ));
    }
    Ok(())
}

fn flag(name: &str, value: &str) -> Result<Option<bool>, String> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "yes" | "1" => Ok(Some(true)),
        "false" | "no" | "0" => Ok(Some(false)),
        other => Err(format!("{name}: `{other}` is not true or false")),
    }
}

fn custom_fields(record: &impl Fields, known: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut fields = BTreeMap::new();
    for (k, v) in record.columns() {
        if known.contains(&k) || v.trim().is_empty() {
            continue;
        }
        no_controls(k, v)?;
        fields.insert(k.to_owned(), v.trim().to_owned());
        if fields.len() > MAX_CUSTOM_FIELDS {
            return Err(format!(
                "{k}: more than {MAX_CUSTOM_FIELDS} custom columns with values in one record"
            ));
        }
    }
    Ok(fields)
}

/// Checks one contact record.
pub fn contact_from_record(record: &impl Fields) -> Result<ContactUpsert, String> {
    let id = record.get("id");
    if id.is_empty() {
        return Err("id: missing".into());
    }
    id_ok("id", id)?;
    for name in CONTACT_COLUMNS {
        no_controls(name, record.get(name))?;
    }
    let email = match record.get("email") {
        "" => None,
        e => Some(EmailAddress::parse(e).map_err(|m| format!("email: {m}"))?),
    };
    let birthday = match record.get("birthday") {
        "" => None,
        b => Some(MonthDay::parse(b).map_err(|m| format!("birthday: {m}"))?),
    };
    let timezone = match record.get("timezone") {
        "" => None,
        z => Some(
            parse_zone(z)
                .map(|_| z.to_owned())
                .map_err(|m| format!("timezone: {m}"))?,
        ),
    };
    let tags: Vec<String> = record
        .get("tags")
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "tags: {} tags; at most {MAX_TAGS} are taken",
            tags.len()
        ));
    }
    let email_opt_out = flag("email_opt_out", record.get("email_opt_out"))?;
    let postcard_opt_out = flag("postcard_opt_out", record.get("postcard_opt_out"))?;
    let text = |name: &str| record.get(name).to_owned();
    ContactUpsert::new(
        Contact {
            id: id.to_owned(),
            first_name: text("first_name"),
            last_name: text("last_name"),
            email,
            address: PostalAddress {
                line1: text("address_line1"),
                line2: text("address_line2"),
                city: text("city"),
                region: text("region"),
                postal_code: text("postal_code"),
                country: text("country"),
            },
            birthday,
            timezone,
            tags,
            email_opt_out: email_opt_out.unwrap_or(false),
            postcard_opt_out: postcard_opt_out.unwrap_or(false),
            fields: custom_fields(record, &CONTACT_COLUMNS)?.into(),
            armed_at: None,
        },
        email_opt_out,
        postcard_opt_out,
    )
}

/// Checks one event record; its time is resolved once its contact is known.
pub fn event_from_record(record: &impl Fields) -> Result<PendingEvent, String> {
    for name in EVENT_COLUMNS {
        no_controls(name, record.get(name))?;
    }
    let contact_id = record.get("contact_id");
    if contact_id.is_empty() {
        return Err("contact_id: missing".into());
    }
    id_ok("contact_id", contact_id)?;
    id_ok("id", record.get("id"))?;
    let kind = record.get("kind");
    if kind.is_empty() {
        return Err("kind: missing".into());
    }
    if !kind
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(format!(
            "kind: `{kind}` is not a single word such as purchase"
        ));
    }
    let at = record.get("at");
    if at.is_empty() {
        return Err("at: missing".into());
    }
    // Check the format now, so the error names the row even before the contact is known.
    parse_instant(at, &TimeZone::UTC).map_err(|m| format!("at: {m}"))?;
    Ok(PendingEvent {
        contact_id: contact_id.to_owned(),
        id: Some(record.get("id").to_owned()).filter(|s| !s.is_empty()),
        kind: kind.to_owned(),
        at: at.to_owned(),
        fields: serde_json::to_string(&custom_fields(record, &EVENT_COLUMNS)?)
            .map_err(|e| format!("cannot store the custom fields: {e}"))?,
    })
}

/// An event row as a file or an API call gives it, checked on its own: its time (a
/// plain date is the start of that day in the contact's zone) and so its id (derived
/// from kind and time when none is given) wait until its contact is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    pub contact_id: String,
    pub id: Option<String>,
    pub kind: String,
    pub at: String,
    /// The custom columns as a JSON object, as they are stored.
    pub fields: String,
}

impl PendingEvent {
    /// The event as stored, its time placed in its contact's `zone`.
    pub fn resolve(self, zone: &TimeZone) -> Result<EventUpsert, String> {
        let at = parse_instant(&self.at, zone).map_err(|m| format!("at: {m}"))?;
        Ok(EventUpsert {
            id: self.id.unwrap_or_else(|| Event::derived_id(&self.kind, at)),
            contact_id: self.contact_id,
            kind: self.kind,
            at,
            fields: self.fields,
        })
    }
}
