//! The data a template sees (SPEC section 6), built from the configuration, the
//! cadence, the contact and the event that triggered the send.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::config::Config;
use crate::domain::{Cadence, Contact, Event, PostalAddress, Trigger};

/// What one message is rendered from.
pub struct MessageData<'a> {
    pub config: &'a Config,
    pub cadence: &'a Cadence,
    pub contact: &'a Contact,
    pub event: Option<&'a Event>,
    pub occurrence: &'a str,
    pub now: Timestamp,
    pub unsubscribe_url: &'a str,
    /// The customer's preferences page (or the unsubscribe `mailto:` without one).
    pub preferences_url: &'a str,
}

impl MessageData<'_> {
    /// What templates see; fails only where stored custom fields are not a JSON object
    /// of strings.
    pub fn to_json(&self) -> Result<Value, String> {
        let zone = self.contact.zone(&self.config.business.zone);
        let c = self.contact;
        let fields = c
            .fields
            .map()
            .map_err(|e| format!("contact `{}`: {e}", c.id))?;
        let mut data = json!({
            "contact": {
                "id": c.id, "first_name": c.first_name, "last_name": c.last_name,
                "email": c.email.as_ref().map(|e| e.as_str()).unwrap_or_default(),
                "address_line1": c.address.line1, "address_line2": c.address.line2,
                "city": c.address.city, "region": c.address.region, "postal_code": c.address.postal_code, "country": c.address.country,
                "birthday": c.birthday.map(|b| b.to_string()).unwrap_or_default(),
                "timezone": c.timezone.clone().unwrap_or_default(),
                "tags": c.tags,
                "fields": fields,
            },
            "business": business_json(self.config),
            "cadence": { "id": self.cadence.id },
            "occurrence": self.occurrence,
            "now": self.now.to_string(),
            "unsubscribe_url": self.unsubscribe_url,
            "preferences_url": self.preferences_url,
            "timezone": zone.iana_name().unwrap_or("UTC"),
        });
        if let Some(repeat) = self.repeat() {
            data["repeat"] = repeat;
        }
        if let Some(age) = self.age() {
            data["age"] = json!(age);
        }
        if let Some(e) = self.event {
            let fields = e
                .fields
                .map()
                .map_err(|m| format!("event `{}`: {m}", e.id))?;
            data["event"] =
                json!({ "id": e.id, "kind": e.kind, "at": e.at.to_string(), "fields": fields });
        }
        Ok(data)
    }
}

impl MessageData<'_> {
    /// For an `every` trigger, which repetition this is (`n`: 1, 2, ...) and how many
    /// days after the event it falls (`days`: 90, 180, ...), from the occurrence
    /// `EVENT/n`, so that the 180-day card can say so.
    fn repeat(&self) -> Option<Value> {
        let Trigger::Every { every, .. } = &self.cadence.trigger else {
            return None;
        };
        let n: i64 = self.occurrence.rsplit_once('/')?.1.parse().ok()?;
        let days = match every.calendar_days() {
            Some(days) => days * n,
            None => every.seconds() * n / 86_400,
        };
        Some(json!({ "n": n, "days": days }))
    }

    /// For a `yearly` trigger on a date with a year, the age the contact turns: the
    /// occurrence is the year of the date.
    fn age(&self) -> Option<i64> {
        let Trigger::Yearly { field, .. } = &self.cadence.trigger else {
            return None;
        };
        let born = match field.as_str() {
            "birthday" => self.contact.birthday?.year?,
            _ => return None,
        };
        let year: i64 = self.occurrence.parse().ok()?;
        Some(year - i64::from(born))
    }
}

fn business_json(config: &Config) -> Value {
    let b = &config.business;
    let address: &PostalAddress = &b.address;
    json!({
        "name": b.name,
        "email": b.email.as_str(),
        "reply_to": b.reply_to.as_ref().map(|e| e.as_str()).unwrap_or_default(),
        "phone": b.phone,
        "address": address,
        "address_line": address.one_line(),
        "logo": b.logo.as_ref().map(|l| l.name.as_str()).unwrap_or_default(),
        "colour": b.colour.as_str(),
    })
}
