//! A year of ticks, twice a day, over the shipped examples, on SQLite and on
//! PostgreSQL: what went out is what the year's plan said, each at the first tick at or
//! after its time.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use tickler::cli::upcoming;
use tickler::domain::SendStatus;

use crate::simulation::{Sim, key};

#[test]
fn a_year_of_daily_ticks_over_the_examples_matches_the_plan() {
    year_of_ticks(None);
}

#[test]
fn a_year_of_daily_ticks_on_postgres_matches_the_plan() {
    let Some(db) = crate::backends::TempDb::create() else {
        return;
    };
    year_of_ticks(Some(db.url()));
}

/// Ticks twice a day for a year over the shipped examples, on SQLite or on the
/// PostgreSQL database at `url`, and compares what went out with the year's plan.
fn year_of_ticks(url: Option<String>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["config", "templates", "examples"] {
        crate::helpers::copy_dir(&root.join(sub), &dir.path().join(sub));
    }
    let sim = Sim::with_database(&dir.path().join("config/tickler.yaml"), url);
    let zone = sim.engine.config.business.zone.clone();
    let start = jiff::civil::date(2026, 11, 23)
        .at(10, 0, 0, 0)
        .to_zoned(zone.clone())
        .expect("start");
    // Sync the examples and arm everything, then ask for the year ahead.
    sim.tick(start.timestamp() - SignedDuration::from_hours(1));
    let year_end = start.timestamp() + SignedDuration::from_hours(24 * 364);
    let planned = sim
        .rt
        .block_on(upcoming(
            &sim.engine.config,
            sim.engine.store.as_ref(),
            start.timestamp(),
            year_end,
        ))
        .expect("forecast");
    assert!(planned.len() > 40, "only {} planned", planned.len());
    // Two ticks a day, at 10:00 and 15:00 in Albany, cover every contact's window.
    for day in 0..=364 {
        for hour in [10, 15] {
            let date = start
                .date()
                .checked_add(jiff::Span::new().days(day))
                .expect("date");
            let at = date
                .at(hour, 0, 0, 0)
                .to_zoned(zone.clone())
                .expect("zoned")
                .timestamp();
            let summary = sim.tick(at);
            assert_eq!(summary.failed + summary.retrying, 0);
        }
    }
    let rows = sim.sends();
    // What went out during the year (the first tick, before the plan, sent what was
    // already due).
    let sent: BTreeMap<_, _> = rows
        .iter()
        .filter(|r| r.status == SendStatus::Sent && r.updated_at >= start.timestamp())
        .map(|r| (key(r), r))
        .collect();
    for p in &planned {
        let row = sent.get(&(p.contact.clone(), p.cadence.clone(), p.occurrence.clone()));
        let row = row.unwrap_or_else(|| {
            panic!(
                "planned {} {} {} at {} was not sent",
                p.contact, p.cadence, p.occurrence, p.send_at
            )
        });
        let at: Timestamp = row.updated_at;
        // Sent at the first tick at or after its planned time.
        assert!(
            at >= p.send_at && at.duration_since(p.send_at) < SignedDuration::from_hours(24),
            "{} {}: planned {} sent {}",
            p.contact,
            p.cadence,
            p.send_at,
            at
        );
    }
    assert_eq!(
        sent.len(),
        planned.len(),
        "sent something that was not planned"
    );
}
