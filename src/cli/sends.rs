//! `tickler sends`: the send log, newest first.

use std::path::Path;

use super::{
    Failure, Format, Outcome, load_config, open_store, parse_ts, print_records, print_table,
};
use crate::domain::SendStatus;
use crate::store::SendFilter;

pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub contact: Option<String>,
    pub cadence: Option<String>,
    pub status: Option<String>,
    pub limit: Option<u32>,
}

pub async fn run(path: &Path, filter: Filter, format: Format) -> Outcome {
    let config = load_config(path)?;
    let zone = &config.business.zone;
    let when = |name: &str, text: Option<String>| -> Result<Option<jiff::Timestamp>, Failure> {
        text.map(|t| parse_ts(&t, zone).map_err(|m| Failure::Usage(format!("--{name}: {m}"))))
            .transpose()
    };
    let filter = SendFilter {
        since: when("since", filter.since)?,
        until: when("until", filter.until)?,
        contact: filter.contact,
        cadence: filter.cadence,
        status: filter
            .status
            .map(|s| SendStatus::parse(&s).map_err(|m| Failure::Usage(format!("--status: {m}"))))
            .transpose()?,
        limit: filter.limit,
    };
    let store = open_store(&config).await?;
    let rows = store.sends(&filter).await?;
    match format {
        Format::Json | Format::Csv => print_records(format, &rows)?,
        Format::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.updated_at.clone(),
                        r.contact.clone(),
                        r.cadence.clone(),
                        r.occurrence.clone(),
                        r.channel.clone(),
                        r.status.clone(),
                        r.attempts.to_string(),
                        r.reason
                            .clone()
                            .or_else(|| r.reply.clone())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "updated_at",
                    "contact",
                    "cadence",
                    "occurrence",
                    "channel",
                    "status",
                    "attempts",
                    "reason/reply",
                ],
                &table,
            )?;
        }
    }
    Ok(())
}
