//! `tickler plan`: what would be sent in the next N days, overdue sends included.

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::{
    CommandResult, Failure, Format, load_config, open_store, parse_now, print_records, print_table,
};
use crate::agenda::{Planned, forecast};
use crate::config::Config;
use crate::domain::time::rfc3339;
use crate::store::Store;

#[derive(Debug, Serialize)]
pub struct Item {
    pub due_at: String,
    pub contact: String,
    pub cadence: String,
    pub channel: String,
    pub occurrence: String,
    pub deferred_from: Option<String>,
    /// When the occurrence first fell due, for sends that are already late.
    pub overdue_since: Option<String>,
}

pub async fn run(
    path: &Path,
    days: u32,
    now: Option<&str>,
    format: Format,
    cadences: Option<&Path>,
) -> CommandResult {
    let mut config = load_config(path)?;
    if let Some(file) = cadences {
        // Try a cadence file against the real contacts before it goes live.
        let trial = Config::load_with_cadences(path, file)
            .map_err(|d| Failure::Errors(d.0.iter().map(ToString::to_string).collect()))?;
        config = trial;
    }
    let now = parse_now(now, &config.business.zone)?;
    let store = open_store(&config).await?;
    let items = items(&config, store.as_ref(), now, days).await?;
    match format {
        Format::Json | Format::Csv => print_records(format, &items)?,
        Format::Table => {
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|i| {
                    vec![
                        i.due_at.clone(),
                        i.contact.clone(),
                        i.cadence.clone(),
                        i.channel.clone(),
                        i.occurrence.clone(),
                        match (&i.deferred_from, &i.overdue_since) {
                            (Some(from), _) => format!("deferred from {from} (frequency cap)"),
                            (None, Some(since)) => format!("overdue since {since}"),
                            (None, None) => String::new(),
                        },
                    ]
                })
                .collect();
            print_table(
                &[
                    "due_at",
                    "contact",
                    "cadence",
                    "channel",
                    "occurrence",
                    "note",
                ],
                &rows,
            )?;
            let mut per_cadence: std::collections::BTreeMap<&str, usize> = Default::default();
            for item in &items {
                *per_cadence.entry(item.cadence.as_str()).or_default() += 1;
            }
            let counts: Vec<String> = per_cadence
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            super::say!(
                "{} sends in the next {days} days ({})",
                items.len(),
                counts.join(", ")
            );
        }
    }
    Ok(())
}

/// Every send that would go out between `now` and `days` later, in send order.
pub async fn items(
    config: &Config,
    store: &dyn Store,
    now: Timestamp,
    days: u32,
) -> Result<Vec<Item>, Failure> {
    let until = now
        .checked_add(SignedDuration::from_hours(24 * i64::from(days)))
        .ok()
        .filter(|until| until.as_second() <= crate::domain::time::LAST_INSTANT)
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--days: {days} days from {now} is beyond the year 9000; give fewer days"
            ))
        })?;
    let planned = upcoming(config, store, now, until).await?;
    Ok(planned
        .into_iter()
        .map(|p| Item {
            due_at: rfc3339(p.send_at, &p.zone),
            contact: p.contact,
            cadence: p.cadence,
            channel: p.channel.to_string(),
            deferred_from: p.deferred_from.map(|at| rfc3339(at, &p.zone)),
            overdue_since: (p.due_at < now && p.deferred_from.is_none())
                .then(|| rfc3339(p.due_at, &p.zone)),
            occurrence: p.occurrence,
        })
        .collect())
}

/// Every send that would go out between `now` and `until`, over all contacts a page at
/// a time, in send order. Costs O(contacts): it is for looking ahead, not for ticks.
pub async fn upcoming(
    config: &Config,
    store: &dyn Store,
    now: Timestamp,
    until: Timestamp,
) -> anyhow::Result<Vec<Planned>> {
    let mut planned = Vec::new();
    let mut after = String::new();
    loop {
        let ids = store.contact_ids(&after, 1000).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for history in store.history(&ids).await? {
            planned.extend(forecast(config, &history, now, until));
        }
    }
    planned.sort_by(|a, b| {
        (a.send_at, &a.contact, &a.cadence).cmp(&(b.send_at, &b.contact, &b.cadence))
    });
    Ok(planned)
}
