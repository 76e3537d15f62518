//! Cron broadcasts. Expressions use tokio-cron-scheduler's syntax (six or seven fields,
//! seconds first), parsed by the same parser it uses. Fire times are found in wall-clock
//! time and only then placed in the business zone by jiff, so a 09:00 broadcast is
//! 09:00 local on both sides of a DST change, and a wall time skipped by a change
//! fires at the first instant after the gap (tokio-cron-scheduler's own scheduling
//! works in a fixed UTC offset and drifts an hour; see its issues #107 and #113).

use chrono::{NaiveDateTime, TimeZone as _, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Parses `expr` as tokio-cron-scheduler would, less one thing it accepts: a list with
/// an empty item (`,` or `5,,10`). A field that is only that matches nothing, and
/// finding that no date matches then takes the parser's calendar search a minute.
pub fn parse(expr: &str) -> Result<Cron, String> {
    if let Some(n) = expr
        .split_whitespace()
        .position(|field| field.split(',').any(str::is_empty))
    {
        return Err(format!(
            "`{expr}` is not a cron expression (sec min hour day month weekday): field {} has an empty item in its list",
            n + 1
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| {
            format!("`{expr}` is not a cron expression (sec min hour day month weekday): {e}")
        })
}

/// The shortest time allowed between two fire times: a follow-up, not a pager.
pub const MIN_INTERVAL: i64 = 3600;

/// [`parse`], refusing an expression that never fires (`30 2`, February 30, parses but
/// would send nothing) or that fires more often than once an hour (SPEC section 7).
/// For reading the configuration only: the search takes a while, so the planner uses
/// plain `parse` on what passed here.
pub fn parse_checked(expr: &str) -> Result<Cron, String> {
    let cron = parse(expr)?;
    let start = Utc.from_utc_datetime(
        &chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default(),
    );
    if cron.find_next_occurrence(&start, false).is_err() {
        return Err(format!("`{expr}` never fires: no date matches it"));
    }
    // Two years of wall time cover every month and weekday pattern; more than two years
    // of hourly fire times is itself more often than hourly.
    let mut last = start;
    let mut first = true;
    for _ in 0..2 * 366 * 24 + 1 {
        let Ok(next) = cron.find_next_occurrence(&last, first) else {
            break;
        };
        let gap_seconds = next.timestamp() - last.timestamp();
        if !first && gap_seconds < MIN_INTERVAL {
            return Err(format!(
                "`{expr}` fires {} apart at times; a cadence may fire at most once an hour",
                gap(gap_seconds)
            ));
        }
        first = false;
        last = next;
        if last.timestamp() - start.timestamp() > 2 * 366 * 86_400 {
            break;
        }
    }
    Ok(cron)
}

fn gap(seconds: i64) -> String {
    if seconds < 60 {
        format!("{seconds} s")
    } else {
        format!("{} min", seconds / 60)
    }
}

/// The latest fire time of `cron` in `zone` within `[from, until]`, if any: what a
/// broadcast owes after fire times were missed (they collapse into the latest).
pub fn latest_fire(
    cron: &Cron,
    zone: &TimeZone,
    from: Timestamp,
    until: Timestamp,
) -> Option<Timestamp> {
    // Start a day late in wall time: offsets differ by at most a day.
    let start = until
        .to_zoned(zone.clone())
        .datetime()
        .saturating_add(jiff::Span::new().days(1));
    let start = to_chrono(start)?;
    let earliest = from.as_second() - 2 * 86_400;
    for wall in cron
        .iter_from(Utc.from_utc_datetime(&start), croner::Direction::Backward)
        .take(10_000)
    {
        let civil = from_chrono(wall.naive_utc())?;
        let at = civil.to_zoned(zone.clone()).ok()?.timestamp();
        if at < from {
            if at.as_second() < earliest {
                return None;
            }
            continue;
        }
        if at <= until {
            return Some(at);
        }
    }
    None
}

/// Fire times of `cron` in `zone` within `[from, until]`, oldest first, at most `limit`.
pub fn fire_times(
    cron: &Cron,
    zone: &TimeZone,
    from: Timestamp,
    until: Timestamp,
    limit: usize,
) -> Vec<Timestamp> {
    // Start a day early in wall time: offsets differ by at most a day.
    let start = from
        .to_zoned(zone.clone())
        .datetime()
        .saturating_sub(jiff::Span::new().days(1));
    let Some(start) = to_chrono(start) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut last = None;
    for wall in cron.iter_from(Utc.from_utc_datetime(&start), croner::Direction::Forward) {
        let Some(civil) = from_chrono(wall.naive_utc()) else {
            break;
        };
        let Ok(zoned) = civil.to_zoned(zone.clone()) else {
            break;
        };
        let at = zoned.timestamp();
        if at > until || out.len() >= limit {
            break;
        }
        // Two wall times in a DST gap resolve to one instant: fire once.
        if at >= from && last != Some(at) {
            out.push(at);
            last = Some(at);
        }
    }
    out
}

/// The fire times a broadcast owes a contact: the latest within `[floor, now]`, then
/// those after `now` until `until` (at most `limit`). Every contact of a pass asks with
/// the same arguments but its floor, so the last answer is kept per thread: searching
/// the expression's calendar costs far more than planning the rest of a contact.
pub fn owed_fires(
    expr: &str,
    zone: &TimeZone,
    floor: Timestamp,
    now: Timestamp,
    until: Timestamp,
    limit: usize,
) -> Vec<Timestamp> {
    type Key = (String, TimeZone, Timestamp, Timestamp, Timestamp, usize);
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Key, Vec<Timestamp>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let same = |k: &Key| {
        k.0 == expr && k.1 == *zone && k.2 == floor && k.3 == now && k.4 == until && k.5 == limit
    };
    if let Some(found) = LAST.with_borrow(|last| {
        last.as_ref()
            .filter(|(k, _)| same(k))
            .map(|(_, fires)| fires.clone())
    }) {
        return found;
    }
    let fires = match parse(expr) {
        Ok(cron) => {
            let after_now = now + jiff::SignedDuration::from_nanos(1);
            latest_fire(&cron, zone, floor, now)
                .into_iter()
                .chain(fire_times(&cron, zone, after_now, until, limit))
                .collect()
        }
        Err(_) => Vec::new(),
    };
    let key = (expr.to_owned(), zone.clone(), floor, now, until, limit);
    LAST.with_borrow_mut(|last| *last = Some((key, fires.clone())));
    fires
}

fn to_chrono(dt: DateTime) -> Option<NaiveDateTime> {
    let date =
        chrono::NaiveDate::from_ymd_opt(dt.year().into(), dt.month() as u32, dt.day() as u32)?;
    date.and_hms_opt(dt.hour() as u32, dt.minute() as u32, dt.second() as u32)
}

fn from_chrono(dt: NaiveDateTime) -> Option<DateTime> {
    use chrono::{Datelike, Timelike};
    DateTime::new(
        i16::try_from(dt.year()).ok()?,
        dt.month() as i8,
        dt.day() as i8,
        dt.hour() as i8,
        dt.minute() as i8,
        dt.second() as i8,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_with_an_empty_item_is_refused_at_once() {
        for expr in [
            ", 02 * * * *",
            "0 , * * * *",
            "0 0 9 * * Mon,",
            "0,,30 0 9 * * *",
        ] {
            let started = std::time::Instant::now();
            let e = parse_checked(expr).map(|_| ()).unwrap_err();
            assert!(e.contains("has an empty item"), "{expr}: {e}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "{expr}"
            );
        }
        assert!(parse_checked("0 0 9,17 * * Mon,Wed").is_ok());
    }

    #[test]
    fn owed_fires_answers_each_floor_on_its_own_though_it_keeps_the_last() {
        let zone = TimeZone::get("America/New_York").expect("zone");
        let day = jiff::SignedDuration::from_hours(24);
        let now: Timestamp = "2026-05-01T12:00:00Z".parse().expect("instant");
        let until = now + day * 400;
        let expr = "0 0 10 18 4 *";
        let missed: Timestamp = "2026-04-18T14:00:00Z".parse().expect("instant");
        let next: Timestamp = "2027-04-18T14:00:00Z".parse().expect("instant");
        // Seen a month ago: April 18 fell due since, and is owed.
        let old = owed_fires(expr, &zone, now - day * 30, now, until, 10);
        // Seen ten days ago: only next year's.
        let recent = owed_fires(expr, &zone, now - day * 10, now, until, 10);
        assert_eq!(old, [missed, next]);
        assert_eq!(recent, [next]);
        assert_eq!(owed_fires(expr, &zone, now - day * 30, now, until, 10), old);
        assert!(owed_fires("not cron", &zone, now, now, until, 10).is_empty());
    }

    #[test]
    fn rejects_too_few_fields_and_dates_that_never_come() {
        assert!(parse("0 9 1 6 *").is_err());
        assert!(parse("0 0 9 1 6 *").is_ok());
        assert!(parse_checked("0 0 9 30 2 *").is_err());
        assert!(parse_checked("0 0 9 29 2 *").is_ok());
    }

    #[test]
    fn refuses_crons_that_fire_more_often_than_hourly() {
        assert!(parse_checked("* * * * * *").is_err());
        assert!(parse_checked("0 */30 * * * *").is_err());
        // Twice within an hour, once a year.
        assert!(parse_checked("0 0,30 9 1 1 *").is_err());
        assert!(parse_checked("0 0 * * * *").is_ok());
        assert!(parse_checked("0 0 9 1 6 *").is_ok());
    }

    #[test]
    fn the_latest_fire_time_before_a_moment() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cron = parse("0 0 9 * * *").unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let latest = latest_fire(
            &cron,
            &ny,
            at("2026-03-01T00:00:00Z"),
            at("2026-03-10T12:00:00Z"),
        );
        // 09:00 New York on Mar 10 is 13:00Z (after DST): not yet; Mar 9 was 14:00Z.
        assert_eq!(latest, Some(at("2026-03-09T13:00:00Z")));
        assert_eq!(
            latest_fire(
                &cron,
                &ny,
                at("2026-03-09T14:00:00Z"),
                at("2026-03-09T20:00:00Z")
            ),
            None
        );
    }

    #[test]
    fn nine_am_stays_nine_am_across_dst() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cron = parse("0 0 9 * * *").unwrap();
        let times = fire_times(
            &cron,
            &ny,
            "2026-03-07T00:00:00Z".parse().unwrap(),
            "2026-03-10T00:00:00Z".parse().unwrap(),
            10,
        );
        let local: Vec<String> = times
            .iter()
            .map(|t| t.to_zoned(ny.clone()).strftime("%F %H:%M").to_string())
            .collect();
        assert_eq!(
            local,
            ["2026-03-07 09:00", "2026-03-08 09:00", "2026-03-09 09:00"]
        );
    }

    #[test]
    fn a_time_skipped_by_dst_fires_once_after_the_gap() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let cron = parse("0 30 2 * * *").unwrap();
        let times = fire_times(
            &cron,
            &ny,
            "2026-03-08T00:00:00Z".parse().unwrap(),
            "2026-03-08T23:00:00Z".parse().unwrap(),
            10,
        );
        assert_eq!(times.len(), 1);
        assert_eq!(times[0].to_zoned(ny).strftime("%H:%M").to_string(), "03:30");
    }
}
