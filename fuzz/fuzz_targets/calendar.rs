//! The calendar parsers (durations, send windows, weekdays, cron, dates, zones, email
//! addresses) and the arithmetic done with what they accept. The first byte picks the
//! parser; the rest is its text. Bad text is an error; good values never panic, overflow
//! or hang when used.

#![no_main]

use jiff::Timestamp;
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;
use tickler::domain::contact::{parse_instant, parse_zone};
use tickler::domain::{Days, EmailAddress, MonthDay, Opening, Period, Window};
use tickler::plan::cron;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let zone = TimeZone::get("America/New_York").expect("zone");
    let now: Timestamp = "2026-03-08T06:30:00Z".parse().expect("time");
    match which % 7 {
        0 => {
            if let Ok(period) = Period::parse(text) {
                // What is printed reads back as the same period.
                assert_eq!(Period::parse(&period.to_string()), Ok(period));
                let _ = period.as_std();
                for times in [0, 1, 7, 1_000] {
                    assert!(period.add_to(now, &zone, times) >= now);
                }
            }
        }
        1 => {
            if let Ok(window) = Window::parse(text) {
                let opening = Opening {
                    window,
                    days: Days::ALL,
                };
                let next = opening.next_open(now, &zone);
                assert!(next >= now);
                assert!(opening.is_open(next, &zone), "{text}: not open at {next}");
            }
        }
        2 => {
            let names: Vec<String> = text.split(',').map(str::to_owned).collect();
            if let Ok(days) = Days::parse(&names) {
                let opening = Opening {
                    window: Window::ALWAYS,
                    days,
                };
                assert!(opening.is_open(opening.next_open(now, &zone), &zone));
            }
        }
        3 => {
            if let Ok(cron) = cron::parse_checked(text) {
                let until = now
                    .checked_add(jiff::SignedDuration::from_hours(24 * 800))
                    .expect("time");
                let times = cron::fire_times(&cron, &zone, now, until, 50);
                assert!(times.windows(2).all(|w| w[0] < w[1]), "{text}: {times:?}");
                assert!(times.iter().all(|t| *t >= now && *t <= until));
            }
        }
        4 => {
            if let Ok(day) = MonthDay::parse(text) {
                assert_eq!(MonthDay::parse(&day.to_string()), Ok(day));
            }
        }
        5 => {
            if let Ok(at) = parse_instant(text, &zone) {
                // Plain dates depend on the zone; full times do not.
                let _ = parse_instant(text, &TimeZone::UTC).expect("zone-independent");
                let _ = at.to_zoned(zone.clone()).strftime("%F %T").to_string();
            }
            let _ = parse_zone(text);
        }
        _ => {
            if let Ok(address) = EmailAddress::parse(text) {
                assert!(!address.as_str().chars().any(char::is_control), "{text:?}");
                assert!(!address.domain().is_empty());
            }
        }
    }
});
