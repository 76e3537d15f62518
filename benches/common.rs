//! What the criterion benches share: the shipped configuration and generated contacts
//! shaped like `gen_data`'s.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use tickler::config::Config;
use tickler::domain::History;
use tickler::domain::{Contact, EmailAddress, Event, MonthDay, PostalAddress};

/// The instant the benches plan at: a Wednesday afternoon inside the send window.
pub fn now() -> Timestamp {
    "2026-03-04T15:00:00-05:00"
        .parse()
        .expect("a valid instant")
}

/// The shipped configuration and cadences.
pub fn config() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tickler.yaml");
    Config::load(&path).unwrap_or_else(|d| panic!("config/tickler.yaml: {d}"))
}

/// Contact `n` with a purchase, a service and an inquiry in its past, and (for a due
/// contact) a purchase whose thank-you falls due two hours before [`now`].
pub fn history(n: u64, due: bool) -> History {
    let now = now();
    let day = SignedDuration::from_hours(24);
    let contact = Contact {
        id: format!("C-{n:07}"),
        first_name: "Maria".into(),
        last_name: "Alvarez".into(),
        email: EmailAddress::parse(&format!("c{n:07}@example.com")).ok(),
        address: PostalAddress {
            line1: "48 Delaware Ave".into(),
            line2: String::new(),
            city: "Albany".into(),
            region: "NY".into(),
            postal_code: "12209".into(),
            country: "US".into(),
        },
        birthday: MonthDay::parse("1981-11-24").ok(),
        timezone: None,
        tags: vec!["customer".into()],
        email_opt_out: false,
        postcard_opt_out: false,
        fields: BTreeMap::from([("favorite_tile".into(), "subway tile".into())]).into(),
        armed_at: Some(now - day * 30),
    };
    let event = |id: &str, kind: &str, at: Timestamp| Event {
        id: id.into(),
        contact_id: contact.id.clone(),
        kind: kind.into(),
        at,
        fields: BTreeMap::from([("item".into(), "12x24 porcelain, 320 sq ft".into())]).into(),
        armed_at: Some(now - day * 30),
    };
    let mut events = vec![
        event("E-1", "purchase", now - day * 400),
        event("E-2", "service", now - day * 130),
        event("E-3", "inquiry", now - day * 500),
    ];
    if due {
        events.push(event(
            "E-4",
            "purchase",
            now - SignedDuration::from_hours(50),
        ));
    }
    History {
        contact,
        events,
        logged: HashSet::new(),
        delivered: Vec::new(),
        suppressed: None,
        choices: Default::default(),
    }
}
