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

/// Parses `expr` as tokio-cron-scheduler would.
pub fn parse(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| {
            format!("`{expr}` is not a cron expression (sec min hour day month weekday): {e}")
        })
}

/// [`parse`], refusing an expression that never fires: `30 2` (February 30) parses, but
/// would send nothing. For reading the configuration only: the search for a first fire
/// time can take a while, so the planner uses plain `parse` on what passed here.
pub fn parse_checked(expr: &str) -> Result<Cron, String> {
    let cron = parse(expr)?;
    let start = chrono::DateTime::<Utc>::UNIX_EPOCH;
    if cron.find_next_occurrence(&start, false).is_err() {
        return Err(format!("`{expr}` never fires: no date matches it"));
    }
    Ok(cron)
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
    fn rejects_too_few_fields_and_dates_that_never_come() {
        assert!(parse("0 9 1 6 *").is_err());
        assert!(parse("0 0 9 1 6 *").is_ok());
        assert!(parse_checked("0 0 9 30 2 *").is_err());
        assert!(parse_checked("0 0 9 29 2 *").is_ok());
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
