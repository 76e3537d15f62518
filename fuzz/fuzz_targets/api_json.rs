//! `POST /api/v1/contacts` and `/events` bodies: any bytes end in records or in
//! field-level errors (422), never in a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tickler::http::api::records;
use tickler::sync::{contact_from_record, event_from_record};

fuzz_target!(|data: &[u8]| {
    match records(data) {
        Ok(records) => {
            for record in &records {
                if let Ok(upsert) = contact_from_record(record) {
                    assert!(!upsert.contact.id.is_empty());
                }
                let _ = event_from_record(record);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.iter().all(|e| !e.message.is_empty()), "{errors:?}");
        }
    }
});
