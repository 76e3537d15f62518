//! Writing an import's staged events: a thread merges the staged rows, a few thousand
//! at a time in whole contacts, looks their contacts up and resolves each row in its
//! contact's zone, while the writer writes the chunk before.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::mpsc;

use super::staging::{Row, Sorted, Staging};
use crate::store::{BulkWriter, ContactLookup, EventUpsert, KnownContact};

/// Staged event rows resolved together (more when a contact's rows go on past it).
const RESOLVE_ROWS: usize = 4096;

/// The events resolved from the rows of some contacts (in key order), and those
/// contacts as the lookup found them (in id order).
type Resolved = (Vec<EventUpsert>, Vec<(String, KnownContact)>);

/// What the resolving of every staged row found.
#[derive(Default)]
pub(super) struct Resolution {
    pub(super) accepted: usize,
    pub(super) changed: u64,
    /// (line, reason) of each row rejected, in no order.
    pub(super) rejected: Vec<(u64, String)>,
}

/// Writes every staged row, contact by contact: each resolved in its contact's zone
/// (`business_zone` when it has none), an unknown contact's and a repeated key's rows
/// rejected.
pub(super) async fn write_staged(
    writer: &mut dyn BulkWriter,
    staging: Staging,
    business_zone: &TimeZone,
    now: Timestamp,
) -> anyhow::Result<Resolution> {
    let lookup = writer.lookup().await?;
    let business_zone = business_zone.clone();
    let (chunks, mut resolved) = mpsc::channel(2);
    let reader = tokio::task::spawn_blocking(move || {
        resolve_sorted(staging.sorted()?, lookup, &business_zone, &chunks)
    });
    let mut changed = 0;
    let mut failed = None;
    while let Some((events, known)) = resolved.recv().await {
        match writer.events(events, known, now).await {
            Ok(n) => changed += n,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // A failed write stops the reader at its next chunk.
    drop(resolved);
    let read = reader
        .await
        .map_err(|e| anyhow::anyhow!("the reader of staged events stopped: {e}"))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(Resolution { changed, ..read? })
}

/// Looks up the contacts of the sorted staged rows and resolves them, sending them on
/// in chunks of whole contacts; stops early when the writer has gone.
fn resolve_sorted(
    mut sorted: Sorted,
    mut lookup: Box<dyn ContactLookup>,
    business_zone: &TimeZone,
    resolved: &mpsc::Sender<Resolved>,
) -> anyhow::Result<Resolution> {
    let mut resolution = Resolution::default();
    let mut zones = HashMap::new();
    while let Some(chunk) = sorted.next_chunk(RESOLVE_ROWS)? {
        let mut ids: Vec<&str> = chunk.iter().map(|(_, e)| e.contact_id.as_str()).collect();
        ids.dedup();
        let known = lookup.find(&ids)?;
        let events = resolve_events(
            chunk,
            &known,
            business_zone,
            &mut zones,
            &mut resolution.rejected,
        );
        resolution.accepted += events.len();
        if resolved.blocking_send((events, known)).is_err() {
            break;
        }
    }
    Ok(resolution)
}

/// Resolves rows that hold every row of each of their contacts, in (contact, line)
/// order, given those contacts that exist (`known`, in id order): a row whose contact
/// does not exist, whose time is not valid in its contact's zone, or whose key an
/// earlier row has is rejected. Returns the events in key order.
fn resolve_events(
    rows: Vec<Row>,
    known: &[(String, KnownContact)],
    business_zone: &TimeZone,
    zones: &mut HashMap<String, TimeZone>,
    rejected: &mut Vec<(u64, String)>,
) -> Vec<EventUpsert> {
    let mut resolved = Vec::with_capacity(rows.len());
    let mut next = 0;
    for (line, e) in rows {
        while next < known.len() && known[next].0 < e.contact_id {
            next += 1;
        }
        let Some((_, contact)) = known.get(next).filter(|(id, _)| *id == e.contact_id) else {
            rejected.push((
                line,
                format!(
                    "contact_id: no contact `{}` (import contacts first)",
                    e.contact_id
                ),
            ));
            continue;
        };
        let zone = match &contact.zone {
            None => business_zone.clone(),
            Some(name) => zone_named(name, business_zone, zones),
        };
        match e.resolve(&zone) {
            Ok(event) => resolved.push((line, event)),
            Err(reason) => rejected.push((line, reason)),
        }
    }
    // In key order, and a repeated key's rows in line order: the first one is kept.
    resolved.sort_unstable_by(|(line_a, a), (line_b, b)| {
        (&a.contact_id, &a.id, line_a).cmp(&(&b.contact_id, &b.id, line_b))
    });
    let mut events: Vec<EventUpsert> = Vec::with_capacity(resolved.len());
    let mut first_line = 0;
    for (line, event) in resolved {
        match events.last() {
            Some(last) if last.contact_id == event.contact_id && last.id == event.id => {
                rejected.push((
                    line,
                    format!("id: `{}` is also on line {first_line}", event.id),
                ));
            }
            _ => {
                first_line = line;
                events.push(event);
            }
        }
    }
    events
}

/// The zone of a stored name (checked when it was stored; the business's should the
/// name no longer be known), each name looked up once an import.
fn zone_named(
    name: &str,
    business_zone: &TimeZone,
    zones: &mut HashMap<String, TimeZone>,
) -> TimeZone {
    if let Some(zone) = zones.get(name) {
        return zone.clone();
    }
    let zone = TimeZone::get(name).unwrap_or_else(|_| business_zone.clone());
    zones.insert(name.to_owned(), zone.clone());
    zone
}
