//! `tickler contact ID`: one customer in the terminal, as the console's page shows them:
//! details and opt-outs, events, every send-log row with its reason, and what each
//! cadence sends next (or why not).

use std::path::Path;

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::{
    CommandResult, Failure, Format, load_config, open_store, parse_now, plain, print_table, say,
};
use crate::domain::time::{minute as when, rfc3339};
use crate::domain::{Contact, History};
use crate::store::{SendFilter, SendRow};
use crate::timeline::{self, reason_in_words};

/// Send-log rows shown, newest first (the console's page shows as many).
const ROWS: u32 = 500;

pub async fn run(path: &Path, id: &str, now: Option<&str>, format: Format) -> CommandResult {
    let config = load_config(path)?;
    let now = parse_now(now, &config.business.zone)?;
    let store = open_store(&config).await?;
    let Some(history) = store.history(&[id.to_owned()]).await?.pop() else {
        return Err(Failure::Errors(vec![format!(
            "no contact has the id `{id}`; `tickler sends` or the console's search finds one"
        )]));
    };
    let rows = store
        .sends(&SendFilter {
            contact: Some(id.to_owned()),
            limit: Some(ROWS),
            ..SendFilter::default()
        })
        .await?;
    let next = timeline::next_sends(&config, &history, now);
    let zone = history.contact.zone(&config.business.zone);
    let home = &config.business.address.country;
    match format {
        Format::Table => print_text(&history, &rows, &next, &zone, home),
        Format::Csv => Err(Failure::Usage(
            "--format csv: a customer's timeline is several tables; use table or json".into(),
        )),
        Format::Json => {
            let whole = as_json(&history, &rows, &next, &zone, home)
                .map_err(|e| Failure::Errors(vec![e]))?;
            let text = serde_json::to_string_pretty(&whole).map_err(anyhow::Error::from)?;
            say!("{text}");
            Ok(())
        }
    }
}

fn print_text(
    history: &History,
    rows: &[SendRow],
    next: &[timeline::Next],
    zone: &TimeZone,
    home: &str,
) -> CommandResult {
    let c = &history.contact;
    let zone_name = zone.iana_name().unwrap_or("UTC");
    say!("{} ({})", plain(&display_name(c)), plain(&c.id));
    let mut details: Vec<Vec<String>> = vec![
        vec![
            "email".into(),
            c.email.as_ref().map_or("(none)".into(), |e| e.to_string()),
            opted(c.email_opt_out),
        ],
        vec![
            "postcard".into(),
            Some(c.address.lines(home).join(", "))
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "(no address)".into()),
            opted(c.postcard_opt_out),
        ],
        vec!["zone".into(), zone_name.into(), String::new()],
    ];
    if let Some(birthday) = c.birthday {
        details.push(vec!["birthday".into(), birthday.to_string(), String::new()]);
    }
    if !c.tags.is_empty() {
        details.push(vec!["tags".into(), c.tags.join(", "), String::new()]);
    }
    for (name, value) in c.fields.map().map_err(|e| Failure::Errors(vec![e]))? {
        details.push(vec![name, value, String::new()]);
    }
    let width = details
        .iter()
        .map(|d| d[0].chars().count())
        .max()
        .unwrap_or(0);
    for d in &details {
        let line = format!("{:<width$}  {}  {}", d[0], d[1], d[2]);
        say!("  {}", plain(line.trim_end()));
    }

    say!("\nEvents, newest first (times in {zone_name})");
    let events: Vec<Vec<String>> = history
        .events_newest_first()
        .iter()
        .map(|e| vec![when(e.at, zone), e.kind.clone(), e.id.clone()])
        .collect();
    print_table(&["when", "kind", "id"], &events)?;

    say!("\nSend log, newest first");
    let sends: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let why = r
                .reason
                .as_deref()
                .map(reason_in_words)
                .or_else(|| r.reply.clone())
                .unwrap_or_default();
            vec![
                when(r.due_at, zone),
                r.cadence.clone(),
                r.occurrence.clone(),
                r.channel.to_string(),
                r.status.as_str().to_owned(),
                r.attempts.to_string(),
                why,
            ]
        })
        .collect();
    print_table(
        &[
            "due",
            "cadence",
            "occurrence",
            "channel",
            "status",
            "attempts",
            "reason",
        ],
        &sends,
    )?;

    say!("\nNext");
    let next: Vec<Vec<String>> = next
        .iter()
        .map(|n| {
            vec![
                n.cadence.clone(),
                n.channel.to_string(),
                n.at.map(|at| when(at, zone)).unwrap_or_else(|| "-".into()),
                n.what.clone(),
            ]
        })
        .collect();
    print_table(&["cadence", "channel", "when", "what"], &next)
}

fn display_name(c: &Contact) -> String {
    Some(c.full_name())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "(no name)".into())
}

fn opted(out: bool) -> String {
    if out { "opted out" } else { "" }.to_owned()
}

/// The same timeline as one JSON object; times in RFC 3339 with the contact's offset.
fn as_json(
    history: &History,
    rows: &[SendRow],
    next: &[timeline::Next],
    zone: &TimeZone,
    home: &str,
) -> Result<Value, String> {
    let c = &history.contact;
    let events = history
        .events_newest_first()
        .into_iter()
        .map(|e| {
            let fields = e
                .fields
                .map()
                .map_err(|m| format!("event `{}`: {m}", e.id))?;
            Ok(json!({ "id": e.id, "kind": e.kind, "at": rfc3339(e.at, zone), "fields": fields }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(json!({
        "id": c.id,
        "name": c.full_name(),
        "email": c.email.as_ref().map(ToString::to_string),
        "address": c.address.lines(home),
        "zone": zone.iana_name().unwrap_or("UTC"),
        "birthday": c.birthday.map(|b| b.to_string()),
        "tags": c.tags,
        "fields": c.fields.map()?,
        "opted_out": {"email": c.email_opt_out, "postcard": c.postcard_opt_out},
        "events": events,
        "sends": rows.iter().map(|r| json!({
            "cadence": r.cadence,
            "occurrence": r.occurrence,
            "channel": r.channel.as_str(),
            "status": r.status.as_str(),
            "reason": r.reason,
            "reply": r.reply,
            "attempts": r.attempts,
            "due_at": rfc3339(r.due_at, zone),
            "updated_at": rfc3339(r.updated_at, zone),
            "message_id": r.message_id,
        })).collect::<Vec<_>>(),
        "next": next.iter().map(|n| json!({
            "cadence": n.cadence,
            "channel": n.channel.as_str(),
            "at": n.at.map(|at| rfc3339(at, zone)),
            "what": n.what,
        })).collect::<Vec<_>>(),
    }))
}
