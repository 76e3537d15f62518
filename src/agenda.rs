//! One contact's agenda: for each occurrence it is owed and that is not yet in the send
//! log, what happens and when. Shared by `tick` (which acts on what is due now) and
//! `plan` (which shows the rest), so that the two cannot disagree. Pure: no clock, no I/O.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::config::{Config, FrequencyCap};
use crate::domain::History;
use crate::domain::{Cadence, Channel, Suppression, Trigger};
use crate::plan::{self, Due, Frame};

/// What happens to one occurrence.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Deliver now.
    Send,
    /// Record as skipped, with the reason, now.
    Skip(String),
    /// Due, but the window is closed: goes out at this time.
    Wait(Timestamp),
    /// Not due yet: goes out at this time (unless something changes).
    Later(Timestamp),
}

#[derive(Clone, Debug)]
pub struct Verdict<'a> {
    pub cadence: &'a Cadence,
    pub due: Due,
    pub decision: Decision,
    /// The due time the frequency cap moved this send away from.
    pub deferred_from: Option<Timestamp>,
    /// Why it would be skipped, for an occurrence that is not due yet.
    pub skip_reason: Option<String>,
}

/// The agenda of `history`'s contact between its history and `until`, as of `now`, in
/// due order.
pub fn agenda<'a>(
    config: &'a Config,
    history: &History,
    now: Timestamp,
    until: Timestamp,
) -> Vec<Verdict<'a>> {
    let contact = &history.contact;
    let zone = contact.zone(&config.business.zone);
    let frame = Frame {
        now,
        until,
        business_zone: &config.business.zone,
    };
    let mut candidates: Vec<(&Cadence, Due)> = Vec::new();
    for cadence in &config.cadences {
        for due in plan::occurrences(cadence, contact, &history.events, frame) {
            // Most contacts have nothing logged: no key is built to look for it.
            let logged = !history.logged.is_empty()
                && history
                    .logged
                    .contains(&(due.cadence.clone(), due.occurrence.clone()));
            if !logged {
                candidates.push((cadence, due));
            }
        }
    }
    candidates.sort_by_key(|(_, d)| d.due_at);
    // A repeat goes out once at a time: of an `every` cadence's occurrences that are due
    // now, inside their window (repetitions missed during downtime), the latest is sent
    // and the earlier are logged as superseded. Each event of an `after` cadence keeps
    // its own follow-up.
    let due_now = |cadence: &Cadence, due: &Due| {
        matches!(cadence.trigger, Trigger::Every { .. })
            && due.due_at <= now
            && now.as_second() - due.due_at.as_second() <= cadence.max_lateness.seconds()
            && skip_reason(due, cadence, history).is_none()
            && cadence.opening.next_open(now, &zone) <= now
    };
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for (i, (cadence, due)) in candidates.iter().enumerate() {
        if due_now(cadence, due) {
            latest.insert(cadence.id.as_str(), i);
        }
    }

    // Send times that count against the cap: the log's, then each planned send's.
    let counts = |cadence: &str| config.cadence(cadence).is_some_and(|c| !c.transactional);
    let mut sent: Vec<Timestamp> = history
        .delivered
        .iter()
        .filter(|(c, _)| counts(c))
        .map(|(_, at)| *at)
        .collect();
    let mut out = Vec::with_capacity(candidates.len());
    for (i, (cadence, due)) in candidates.into_iter().enumerate() {
        if due_now(cadence, &due) && latest.get(cadence.id.as_str()) != Some(&i) {
            out.push(Verdict {
                cadence,
                due,
                decision: Decision::Skip("superseded".into()),
                deferred_from: None,
                skip_reason: None,
            });
            continue;
        }
        let skip_reason = skip_reason(&due, cadence, history);
        let capped = match (
            config.schedule.frequency_cap,
            cadence.transactional,
            &skip_reason,
        ) {
            (Some(cap), false, None) => release(cap, due.due_at, &sent, |t| {
                cadence.opening.next_open(t, &zone)
            }),
            _ => due.due_at,
        };
        let deferred_from = (capped > due.due_at).then_some(due.due_at);
        // Stale: past `max_lateness` now, or by the time its window next opens.
        let late =
            |at: Timestamp| at.as_second() - capped.as_second() > cadence.max_lateness.seconds();
        let decision = if capped > now {
            Decision::Later(capped)
        } else if late(now) {
            Decision::Skip("stale".into())
        } else if let Some(reason) = &skip_reason {
            Decision::Skip(reason.clone())
        } else {
            match cadence.opening.next_open(now, &zone) {
                open if open <= now => Decision::Send,
                open if late(open) => Decision::Skip("stale".into()),
                open => Decision::Wait(open),
            }
        };
        if skip_reason.is_none() && !cadence.transactional {
            match decision {
                Decision::Send => sent.push(now),
                Decision::Wait(at) | Decision::Later(at) => sent.push(at),
                Decision::Skip(_) => {}
            }
            sent.sort();
        }
        out.push(Verdict {
            cadence,
            due,
            decision,
            deferred_from,
            skip_reason,
        });
    }
    out
}

/// A send that would go out, as `plan` shows it.
#[derive(Clone, Debug)]
pub struct Planned {
    /// When it would go out: `now` for what is due, else its (possibly deferred) time.
    pub send_at: Timestamp,
    /// When it fell or falls due.
    pub due_at: Timestamp,
    pub deferred_from: Option<Timestamp>,
    pub contact: String,
    pub cadence: String,
    pub channel: Channel,
    pub occurrence: String,
    /// The contact's zone, to show times in.
    pub zone: jiff::tz::TimeZone,
}

/// The sends one contact would get between `now` and `until`, for looking ahead.
/// Skips are left out.
pub fn forecast<'a>(
    config: &'a Config,
    history: &'a History,
    now: Timestamp,
    until: Timestamp,
) -> impl Iterator<Item = Planned> + 'a {
    let zone = history.contact.zone(&config.business.zone);
    agenda(config, history, now, until)
        .into_iter()
        .filter_map(move |verdict| {
            let send_at = match verdict.decision {
                _ if verdict.skip_reason.is_some() => return None,
                Decision::Send => now,
                Decision::Wait(at) | Decision::Later(at) => at,
                Decision::Skip(_) => return None,
            };
            (send_at <= until).then(|| Planned {
                send_at,
                due_at: verdict.due.due_at,
                deferred_from: verdict.deferred_from,
                contact: history.contact.id.clone(),
                cadence: verdict.cadence.id.clone(),
                channel: verdict.cadence.channel,
                occurrence: verdict.due.occurrence,
                zone: zone.clone(),
            })
        })
}

/// Why an occurrence will be skipped whenever it falls due, if it will.
fn skip_reason(due: &Due, cadence: &Cadence, history: &History) -> Option<String> {
    if let Some(kind) = &due.cancelled_by {
        return Some(format!("unless:{kind}"));
    }
    let contact = &history.contact;
    let reason = match cadence.channel {
        Channel::Email if contact.email_opt_out => "opted_out",
        Channel::Email if contact.email.is_none() => "no_email",
        Channel::Email if history.suppressed.is_some() => {
            return history.suppressed.as_deref().map(Suppression::skip_reason);
        }
        Channel::Postcard if contact.postcard_opt_out => "opted_out",
        Channel::Postcard if !contact.has_postal_address() => "no_address",
        _ if history.choices.declined.contains(&cadence.id) => "declined",
        _ if history
            .choices
            .paused_until
            .is_some_and(|until| due.due_at < until) =>
        {
            "paused"
        }
        _ => return None,
    };
    Some(reason.into())
}

/// The first time at or after `at` when fewer than `cap.max` sends happened in the
/// `cap.per` before it, moved into the window by `open`.
fn release(
    cap: FrequencyCap,
    at: Timestamp,
    sent: &[Timestamp],
    open: impl Fn(Timestamp) -> Timestamp,
) -> Timestamp {
    let per = SignedDuration::from_secs(cap.per.seconds());
    let mut t = open(at);
    for _ in 0..64 {
        let window: Vec<Timestamp> = sent
            .iter()
            .copied()
            .filter(|s| *s > t - per && *s <= t + per)
            .collect();
        // A send at `t` must not make any stretch of `per` hold more than `max`.
        let in_last = window.iter().filter(|s| **s > t - per && **s <= t).count();
        let in_next = window.iter().filter(|s| **s >= t && **s < t + per).count();
        if in_last < cap.max as usize && in_next < cap.max as usize {
            return t;
        }
        let blockers: Vec<Timestamp> = window.iter().copied().filter(|s| *s <= t).collect();
        let next = match blockers.iter().min() {
            Some(oldest) if in_last >= cap.max as usize => *oldest + per,
            _ => window
                .iter()
                .copied()
                .filter(|s| *s >= t)
                .max()
                .map_or(t, |s| s + per),
        };
        t = open(next.max(t + SignedDuration::from_secs(1)));
    }
    t
}
