//! Which occurrence a preview or an owner's test shows (the one the contact would get
//! next, else the latest one they had), and the request that composes it.

use jiff::{SignedDuration, Timestamp};

use super::Request;
use crate::config::Config;
use crate::domain::{Cadence, History};
use crate::plan::{self, Due, Frame};

/// How far ahead an occurrence to show is looked for.
const AHEAD_DAYS: i64 = 800;

/// The occurrence of `cadence` to show for `history`'s contact at `now`, or why there is
/// none, in words.
pub fn shown_occurrence(
    config: &Config,
    cadence: &Cadence,
    history: &History,
    now: Timestamp,
) -> Result<Due, String> {
    let frame = Frame {
        now,
        until: now + SignedDuration::from_hours(24 * AHEAD_DAYS),
        business_zone: &config.business.zone,
    };
    // Look at the whole history, not only what is still owed.
    let mut everything = history.clone();
    everything.contact.armed_at = Some(Timestamp::UNIX_EPOCH);
    for e in &mut everything.events {
        e.armed_at = Some(Timestamp::UNIX_EPOCH);
    }
    let mut all = plan::occurrences(cadence, &everything.contact, &everything.events, frame);
    let next = all.iter().position(|d| d.due_at >= now);
    match next.or(all.len().checked_sub(1)) {
        Some(i) => Ok(all.swap_remove(i)),
        None => {
            let contact = &history.contact.id;
            Err(match cadence.trigger.event_kind() {
                Some(kind) => format!(
                    "contact `{contact}` has no `{kind}` event, or does not match the cadence's `where`"
                ),
                None => format!(
                    "contact `{contact}` has no occurrence of this cadence (no birthday, or `where` does not match)"
                ),
            })
        }
    }
}

/// The message `due` would be for `history`'s contact, composed at `at`: a preview's or
/// a test's, so of no send record.
pub fn shown_request<'a>(
    cadence: &'a Cadence,
    history: &'a History,
    due: &'a Due,
    at: Timestamp,
    message_id: &'a str,
) -> Request<'a> {
    Request {
        cadence,
        contact: &history.contact,
        events: &history.events,
        event_id: due.event_id.as_deref(),
        occurrence: &due.occurrence,
        at,
        send_id: 0,
        message_id,
    }
}
