//! The planner: a pure function from (now, a cadence, one contact's history) to the
//! occurrences that contact is owed and when each falls due. No clock and no I/O; the
//! store decides which contacts to ask about, and the tick decides what to do with the
//! answer.

pub mod cron;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::domain::time::start_of_day;
use crate::domain::{Cadence, Contact, Event, Feb29, MonthDay, Period, Trigger};

/// One occurrence of a cadence for a contact, and when it may go out.
#[derive(Clone, Debug, PartialEq)]
pub struct Due {
    pub cadence: String,
    pub occurrence: String,
    /// The first moment inside the cadence's window and days on or after the nominal
    /// due time, in the contact's zone.
    pub due_at: Timestamp,
    /// The event behind the occurrence, for templates.
    pub event_id: Option<String>,
    /// The `unless` kind of a newer event that cancels this occurrence.
    pub cancelled_by: Option<String>,
}

/// What every question to the planner shares.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub now: Timestamp,
    /// Occurrences due after this are not listed.
    pub until: Timestamp,
    pub business_zone: &'a TimeZone,
}

/// At most this many occurrences of one cadence per contact per question: bounds a
/// short `every` over a long horizon.
const MAX_PER_CADENCE: usize = 2_000;

/// Every occurrence of `cadence` that `contact` is owed and that falls due by
/// `frame.until`, oldest first.
///
/// Owed means: the contact matches `where`, and the occurrence is not history, that is,
/// not due before the moment tickler first saw the contact or event behind it (its
/// `armed_at`, or `now` if it was never seen) less the cadence's `max_lateness`.
/// `events` are the contact's events in any order.
pub fn occurrences(
    cadence: &Cadence,
    contact: &Contact,
    events: &[Event],
    frame: Frame<'_>,
) -> Vec<Due> {
    if !cadence.enabled || !cadence.tags.iter().all(|t| contact.has_tag(t)) {
        return Vec::new();
    }
    let zone = contact.zone(frame.business_zone);
    let floor_for = |armed: Option<Timestamp>| {
        armed
            .unwrap_or(frame.now)
            .checked_sub(jiff::SignedDuration::from_secs(
                cadence.max_lateness.seconds(),
            ))
            .unwrap_or(Timestamp::MIN)
    };
    let mut out = Vec::new();
    // The occurrence's name is made only for an occurrence that is kept.
    let mut push = |nominal: Timestamp,
                    occurrence: &dyn Fn() -> String,
                    event: Option<&Event>,
                    floor: Timestamp| {
        let due_at = cadence.opening.next_open(nominal, &zone);
        if due_at < floor || due_at > frame.until {
            return;
        }
        let occurrence = occurrence();
        let cancelled_by =
            event.and_then(|e| newer_cancelling_event(cadence, e, events, frame.now));
        out.push(Due {
            cadence: cadence.id.clone(),
            occurrence,
            due_at,
            event_id: event.map(|e| e.id.clone()),
            cancelled_by,
        });
    };
    match &cadence.trigger {
        Trigger::After { kind, delay } => {
            let mut matching: Vec<&Event> = events.iter().filter(|e| &e.kind == kind).collect();
            matching.sort_by_key(|e| e.at);
            for event in matching {
                let nominal = after(event.at, *delay, &zone, 1);
                push(
                    nominal,
                    &|| event.id.clone(),
                    Some(event),
                    floor_for(event.armed_at),
                );
            }
        }
        Trigger::Every { every, since } => {
            // Each event of `since` starts a series; a newer one ends the older series
            // (occurrences due before it stay owed) and restarts the count.
            let mut anchors: Vec<&Event> = events.iter().filter(|e| &e.kind == since).collect();
            anchors.sort_by_key(|e| (e.at, e.id.as_str()));
            for (i, event) in anchors.iter().enumerate() {
                let end = anchors.get(i + 1).map_or(Timestamp::MAX, |next| next.at);
                let floor = floor_for(event.armed_at);
                // Jump close to the floor instead of walking from n = 1.
                let approx =
                    (floor.as_second() - event.at.as_second()) / every.seconds().max(1) - 2;
                let first = approx.max(1);
                for n in first..first + MAX_PER_CADENCE as i64 {
                    let nominal = after(event.at, *every, &zone, n);
                    if nominal > frame.until || nominal >= end {
                        break;
                    }
                    push(nominal, &|| format!("{}/{n}", event.id), Some(event), floor);
                }
            }
        }
        Trigger::Yearly { lead, feb29, .. } => {
            if let Some(day) = contact.birthday {
                let floor = floor_for(contact.armed_at);
                let first = zone.to_datetime(floor.max(Timestamp::UNIX_EPOCH)).year();
                let last = zone.to_datetime(frame.until).year() + 1;
                for year in first..=last {
                    if let Some(date) = yearly_date(day, year, *feb29) {
                        let send_day = jiff::Span::new()
                            .try_days(lead.calendar_days().unwrap_or(0))
                            .and_then(|span| date.checked_sub(span));
                        let nominal = match (send_day, lead.calendar_days()) {
                            (Ok(d), Some(_)) => start_of_day(d, &zone),
                            _ => start_of_day(date, &zone)
                                .checked_sub(jiff::SignedDuration::from_secs(lead.seconds()))
                                .unwrap_or(Timestamp::MIN),
                        };
                        push(nominal, &|| year.to_string(), None, floor);
                    }
                }
            }
        }
        Trigger::Cron { expr } => {
            let floor = floor_for(contact.armed_at);
            // Fire times missed while tickler was not running collapse into the latest:
            // only it is owed (SPEC section 7).
            let zone = frame.business_zone;
            for at in cron::owed_fires(expr, zone, floor, frame.now, frame.until, MAX_PER_CADENCE) {
                push(at, &|| at.to_string(), None, floor);
            }
        }
    }
    out
}

/// `at` plus `times` periods. A calendar period counts days in `zone` and lands at the
/// start of the due day, but never before `at` itself (a `0d` delay is "now").
fn after(at: Timestamp, period: Period, zone: &TimeZone, times: i64) -> Timestamp {
    match period.calendar_days() {
        Some(days) => {
            let day = zone.to_datetime(at).date();
            let due_day = days
                .checked_mul(times)
                .and_then(|days| jiff::Span::new().try_days(days).ok())
                .and_then(|span| day.checked_add(span).ok());
            match due_day {
                Some(due_day) => start_of_day(due_day, zone).max(at),
                None => Timestamp::MAX,
            }
        }
        None => period.add_to(at, zone, times),
    }
}

/// The date of a yearly contact date in `year`, or `None` when Feb 29 is skipped.
pub fn yearly_date(day: MonthDay, year: i16, feb29: Feb29) -> Option<Date> {
    if let Ok(date) = Date::new(year, day.month, day.day) {
        return Some(date);
    }
    // Only Feb 29 in a common year gets here (MonthDay is a valid leap-year date).
    match feb29 {
        Feb29::Feb28 => Date::new(year, 2, 28).ok(),
        Feb29::Mar1 => Date::new(year, 3, 1).ok(),
        Feb29::Skip => None,
    }
}

/// The kind of the first event listed in `unless` that happened after `trigger`
/// (and by `now`).
fn newer_cancelling_event(
    cadence: &Cadence,
    trigger: &Event,
    events: &[Event],
    now: Timestamp,
) -> Option<String> {
    events
        .iter()
        .filter(|e| e.at > trigger.at && e.at <= now && e.id != trigger.id)
        .find(|e| cadence.unless.contains(&e.kind))
        .map(|e| e.kind.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Days, Opening, PostalAddress, Window};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_repeat_beyond_the_calendar_is_never_due() {
        let zone = TimeZone::get("America/New_York").unwrap();
        let now = ts("2026-03-08T06:30:00Z");
        for text in ["10000w", "100000d"] {
            let period = Period::parse(text).unwrap();
            assert_eq!(after(now, period, &zone, 1_000), Timestamp::MAX, "{text}");
            assert!(after(now, period, &zone, 1) < Timestamp::MAX, "{text}");
        }
    }

    fn contact() -> Contact {
        Contact {
            id: "C-1".into(),
            first_name: "Ana".into(),
            last_name: "Lima".into(),
            email: crate::domain::EmailAddress::parse("ana@example.com").ok(),
            address: PostalAddress {
                line1: String::new(),
                line2: String::new(),
                city: String::new(),
                region: String::new(),
                postal_code: String::new(),
                country: String::new(),
            },
            birthday: None,
            timezone: None,
            tags: vec!["customer".into()],
            email_opt_out: false,
            postcard_opt_out: false,
            fields: Default::default(),
            armed_at: Some(ts("2026-01-01T00:00:00Z")),
        }
    }

    fn event(id: &str, kind: &str, at: &str) -> Event {
        Event {
            contact_id: "C-1".into(),
            id: id.into(),
            kind: kind.into(),
            at: ts(at),
            fields: Default::default(),
            armed_at: Some(ts("2026-01-01T00:00:00Z")),
        }
    }

    fn cadence(trigger: Trigger) -> Cadence {
        Cadence {
            id: "c".into(),
            channel: Channel::Email,
            template: "t".into(),
            trigger,
            tags: vec![],
            unless: vec![],
            opening: Opening {
                window: Window::parse("09:00-18:00").unwrap(),
                days: Days::ALL,
            },
            max_lateness: Period::days(7),
            transactional: false,
            enabled: true,
            front_image: None,
            topic: None,
        }
    }

    fn frame<'a>(now: &str, zone: &'a TimeZone) -> Frame<'a> {
        Frame {
            now: ts(now),
            until: ts(now),
            business_zone: zone,
        }
    }

    #[test]
    fn after_a_purchase_the_send_waits_for_the_window_of_the_due_day() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let c = cadence(Trigger::After {
            kind: "purchase".into(),
            delay: Period::days(2),
        });
        let events = [event("E-1", "purchase", "2026-03-01T20:00:00Z")];
        let due = occurrences(&c, &contact(), &events, frame("2026-03-10T00:00:00Z", &ny));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].occurrence, "E-1");
        // Mar 1 15:00 New York + 2 days -> Mar 3, 09:00 New York.
        assert_eq!(due[0].due_at, ts("2026-03-03T14:00:00Z"));
    }

    #[test]
    fn unless_cancels_when_a_newer_event_exists() {
        let utc = TimeZone::UTC;
        let mut c = cadence(Trigger::After {
            kind: "purchase".into(),
            delay: Period::days(27),
        });
        c.unless = vec!["purchase".into(), "service".into()];
        let events = [
            event("E-1", "purchase", "2026-03-01T12:00:00Z"),
            event("E-2", "service", "2026-03-10T12:00:00Z"),
        ];
        let due = occurrences(&c, &contact(), &events, frame("2026-04-01T00:00:00Z", &utc));
        assert_eq!(due[0].cancelled_by.as_deref(), Some("service"));
    }

    #[test]
    fn every_restarts_from_the_latest_event() {
        let utc = TimeZone::UTC;
        let c = cadence(Trigger::Every {
            every: Period::days(90),
            since: "service".into(),
        });
        let events = [
            event("S-1", "service", "2025-12-01T12:00:00Z"),
            event("S-2", "service", "2026-01-15T12:00:00Z"),
        ];
        let due = occurrences(&c, &contact(), &events, frame("2026-08-01T00:00:00Z", &utc));
        let keys: Vec<&str> = due.iter().map(|d| d.occurrence.as_str()).collect();
        // S-1's first reminder (Mar 1) would come after S-2: the count restarts.
        assert_eq!(keys, ["S-2/1", "S-2/2"]);
        assert_eq!(due[0].due_at, ts("2026-04-15T09:00:00Z"));

        // A reminder that fell due before the newer service is still owed.
        let events = [
            event("S-1", "service", "2025-12-01T12:00:00Z"),
            event("S-2", "service", "2026-03-10T12:00:00Z"),
        ];
        let due = occurrences(&c, &contact(), &events, frame("2026-08-01T00:00:00Z", &utc));
        let keys: Vec<&str> = due.iter().map(|d| d.occurrence.as_str()).collect();
        assert_eq!(keys, ["S-1/1", "S-2/1"]);
    }

    #[test]
    fn history_before_arming_is_not_owed() {
        let utc = TimeZone::UTC;
        let c = cadence(Trigger::After {
            kind: "purchase".into(),
            delay: Period::days(2),
        });
        let mut old = event("E-0", "purchase", "2024-05-01T12:00:00Z");
        old.armed_at = Some(ts("2026-03-01T00:00:00Z"));
        let due = occurrences(&c, &contact(), &[old], frame("2026-03-02T00:00:00Z", &utc));
        assert!(due.is_empty());
    }

    #[test]
    fn where_tags_must_all_match() {
        let utc = TimeZone::UTC;
        let mut c = cadence(Trigger::After {
            kind: "inquiry".into(),
            delay: Period::days(3),
        });
        c.tags = vec!["prospect".into()];
        let events = [event("E-1", "inquiry", "2026-03-01T12:00:00Z")];
        assert!(
            occurrences(&c, &contact(), &events, frame("2026-03-10T00:00:00Z", &utc)).is_empty()
        );
    }

    #[test]
    fn feb29_policies_in_common_and_leap_years() {
        let day = MonthDay::parse("02-29").unwrap();
        assert_eq!(
            yearly_date(day, 2027, Feb29::Feb28),
            Date::new(2027, 2, 28).ok()
        );
        assert_eq!(
            yearly_date(day, 2027, Feb29::Mar1),
            Date::new(2027, 3, 1).ok()
        );
        assert_eq!(yearly_date(day, 2027, Feb29::Skip), None);
        for policy in [Feb29::Feb28, Feb29::Mar1, Feb29::Skip] {
            assert_eq!(yearly_date(day, 2028, policy), Date::new(2028, 2, 29).ok());
        }
    }

    #[test]
    fn birthdays_are_keyed_by_year() {
        let utc = TimeZone::UTC;
        let mut person = contact();
        person.birthday = MonthDay::parse("1980-03-05").ok();
        let c = cadence(Trigger::Yearly {
            field: "birthday".into(),
            lead: Period::days(0),
            feb29: Feb29::Feb28,
        });
        let mut f = frame("2026-03-01T00:00:00Z", &utc);
        f.until = ts("2027-12-31T00:00:00Z");
        let due = occurrences(&c, &person, &[], f);
        let keys: Vec<&str> = due.iter().map(|d| d.occurrence.as_str()).collect();
        assert_eq!(keys, ["2026", "2027"]);
        assert_eq!(due[0].due_at, ts("2026-03-05T09:00:00Z"));
    }
}
