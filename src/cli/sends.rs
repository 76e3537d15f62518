//! `tickler sends`: the send log, newest first.

use std::path::Path;

use super::{
    CommandResult, Failure, Format, load_config, open_store, parse_ts, print_records, print_table,
};
use crate::domain::SendStatus;
use crate::store::{SendFilter, SendRow};

/// A send-log row as `sends --format json|csv` prints it: times in RFC 3339 (UTC).
#[derive(serde::Serialize)]
struct Record<'a> {
    contact: &'a str,
    cadence: &'a str,
    occurrence: &'a str,
    channel: &'static str,
    status: &'static str,
    reason: Option<&'a str>,
    due_at: String,
    attempts: i64,
    message_id: &'a str,
    reply: Option<&'a str>,
    next_attempt_at: Option<String>,
    updated_at: String,
}

impl<'a> Record<'a> {
    fn of(row: &'a SendRow) -> Record<'a> {
        Record {
            contact: &row.contact,
            cadence: &row.cadence,
            occurrence: &row.occurrence,
            channel: row.channel.as_str(),
            status: row.status.as_str(),
            reason: row.reason.as_deref(),
            due_at: row.due_at.to_string(),
            attempts: row.attempts,
            message_id: &row.message_id,
            reply: row.reply.as_deref(),
            next_attempt_at: row.next_attempt_at.map(|t| t.to_string()),
            updated_at: row.updated_at.to_string(),
        }
    }
}

pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub contact: Option<String>,
    pub cadence: Option<String>,
    pub status: Option<String>,
    pub limit: Option<u32>,
}

pub async fn run(path: &Path, filter: Filter, format: Format) -> CommandResult {
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
        ..SendFilter::default()
    };
    let store = open_store(&config).await?;
    let rows = store.sends(&filter).await?;
    match format {
        Format::Json | Format::Csv => {
            let records: Vec<Record> = rows.iter().map(Record::of).collect();
            print_records(format, &records)?
        }
        Format::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.updated_at.to_string(),
                        r.contact.clone(),
                        r.cadence.clone(),
                        r.occurrence.clone(),
                        r.channel.to_string(),
                        r.status.to_string(),
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
