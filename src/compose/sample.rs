//! The sample contact and event `check` renders every template against, and the custom
//! fields it fills in as the templates ask for them.

use jiff::Timestamp;
use serde_json::Value;

use super::data::MessageData;
use crate::config::Config;
use crate::domain::{Cadence, Contact, Event, PostalAddress, Trigger};
use crate::render::{RenderFailure, RenderReason};

/// The unsubscribe link `check` renders with.
pub(super) const SAMPLE_UNSUBSCRIBE: &str = "https://example.com/unsubscribe/sample";
/// The preferences link `check` renders with.
pub(super) const SAMPLE_PREFERENCES: &str = "https://example.com/preferences/sample";

/// A plausible contact (and event, for event triggers) to render `check` against.
pub(super) fn sample_data(config: &Config, cadence: &Cadence) -> Value {
    let contact = sample_contact(cadence);
    let now: Timestamp = "2026-06-15T13:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let event = cadence.trigger.event_kind().map(|kind| Event {
        contact_id: contact.id.clone(),
        id: "SAMPLE-E1".into(),
        kind: kind.to_owned(),
        at: now,
        fields: Default::default(),
        armed_at: None,
    });
    // The first repetition, or this year's date, so that `repeat` and `age` are set.
    let occurrence = match &cadence.trigger {
        Trigger::Every { .. } => "SAMPLE-E1/1".to_owned(),
        Trigger::Yearly { .. } => now
            .to_zoned(config.business.zone.clone())
            .year()
            .to_string(),
        _ => "sample".to_owned(),
    };
    MessageData {
        config,
        cadence,
        contact: &contact,
        event: event.as_ref(),
        occurrence: &occurrence,
        now,
        unsubscribe_url: SAMPLE_UNSUBSCRIBE,
        preferences_url: SAMPLE_PREFERENCES,
    }
    .to_json()
    // The sample's custom fields are empty, and empty fields always read.
    .unwrap_or_default()
}

pub(super) fn sample_contact(cadence: &Cadence) -> Contact {
    Contact {
        id: "SAMPLE-1".into(),
        first_name: "Sam".into(),
        last_name: "Sample".into(),
        email: crate::domain::EmailAddress::parse("sam.sample@example.com").ok(),
        address: PostalAddress {
            line1: "1 Sample St".into(),
            line2: String::new(),
            city: "Albany".into(),
            region: "NY".into(),
            postal_code: "12207".into(),
            country: "US".into(),
        },
        birthday: crate::domain::MonthDay::parse("1980-06-15").ok(),
        timezone: None,
        tags: cadence.tags.clone(),
        email_opt_out: false,
        postcard_opt_out: false,
        fields: Default::default(),
        armed_at: None,
    }
}

/// The custom field, `contact.fields.NAME` or `event.fields.NAME`, whose absence made
/// rendering fail.
pub(super) fn custom_field(failure: &RenderFailure) -> Option<&str> {
    let RenderReason::MissingVariable(path) = &failure.reason else {
        return None;
    };
    let open = path.starts_with("contact.fields.") || path.starts_with("event.fields.");
    (open && path.split('.').count() == 3).then_some(path.as_str())
}

pub(super) fn fill(data: &mut Value, path: &str) -> bool {
    let parts: Vec<&str> = path.split('.').collect();
    match data.pointer_mut(&format!("/{}/{}", parts[0], parts[1])) {
        Some(Value::Object(map)) if !map.contains_key(parts[2]) => {
            map.insert(
                parts[2].to_owned(),
                Value::String(format!("sample {}", parts[2])),
            );
            true
        }
        _ => false,
    }
}
