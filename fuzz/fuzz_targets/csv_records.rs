//! Contacts and events CSV as other software exports it: each row is either a valid
//! record or rejected with a reason and a line number; no panic, and nothing accepted
//! carries a control character that could end up in a header or a log line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tickler::sync::{contact_from_record, event_from_record, read_csv};

fn clean(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

fuzz_target!(|data: &[u8]| {
    let mut last = 1;
    let _ = read_csv(data, |line, row| {
        assert!(line >= last, "line numbers go back: {line} after {last}");
        last = line;
        let record = match row {
            Ok(record) => record,
            Err(reason) => {
                assert!(!reason.is_empty());
                return true;
            }
        };
        match contact_from_record(record) {
            Ok(upsert) => {
                let c = &upsert.contact;
                assert!(!c.id.is_empty());
                for value in [
                    &c.id,
                    &c.first_name,
                    &c.last_name,
                    &c.address.city,
                    &c.address.line1,
                ] {
                    assert!(clean(value), "control character accepted: {value:?}");
                }
                let fields = c.fields.map().expect("a record's fields read back");
                assert!(fields.values().all(|v| clean(v)), "{fields:?}");
                assert!(c.tags.iter().all(|t| !t.is_empty() && !t.contains(';')));
                if let Some(zone) = &c.timezone {
                    assert!(jiff::tz::TimeZone::get(zone).is_ok(), "{zone}");
                }
            }
            Err(reason) => assert!(!reason.is_empty()),
        }
        match event_from_record(record) {
            Ok(event) => {
                assert!(clean(&event.contact_id) && clean(&event.kind));
                let zone = jiff::tz::TimeZone::get("Pacific/Kiritimati").expect("zone");
                // A time that passed the check resolves in any zone.
                event.resolve(&zone).expect("a checked time resolves");
            }
            Err(reason) => assert!(!reason.is_empty()),
        }
        true
    });
});
