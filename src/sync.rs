//! Getting contacts and events in: CSV files (`import`, and the `sync_csv` files that
//! `run` and `tick` re-import when they change). Each row is checked on its own; valid
//! rows are upserted in one transaction and each rejected row is reported with its line.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::domain::contact::{parse_instant, parse_zone};
use crate::domain::{Contact, EmailAddress, Event, MonthDay};
use crate::store::{ContactUpsert, Store};

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub accepted: usize,
    pub changed: u64,
    /// (line, reason) of each rejected row.
    pub rejected: Vec<(u64, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Contacts,
    Events,
}

const CONTACT_COLUMNS: [&str; 15] = [
    "id",
    "first_name",
    "last_name",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "birthday",
    "timezone",
    "tags",
    "email_opt_out",
    "postcard_opt_out",
];
const EVENT_COLUMNS: [&str; 4] = ["contact_id", "kind", "at", "id"];

/// One record as column name -> value, from a CSV row or a JSON object.
pub type Record = Vec<(String, String)>;

fn get<'a>(record: &'a Record, name: &str) -> &'a str {
    record
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

fn no_controls(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{name}: contains a line break or control character"
        ));
    }
    Ok(())
}

fn flag(name: &str, value: &str) -> Result<Option<bool>, String> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "yes" | "1" => Ok(Some(true)),
        "false" | "no" | "0" => Ok(Some(false)),
        other => Err(format!("{name}: `{other}` is not true or false")),
    }
}

fn custom_fields(record: &Record, known: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut fields = BTreeMap::new();
    for (k, v) in record {
        if known.contains(&k.as_str()) || v.trim().is_empty() {
            continue;
        }
        no_controls(k, v)?;
        fields.insert(k.clone(), v.trim().to_owned());
    }
    Ok(fields)
}

/// Checks one contact record.
pub fn contact_from_record(record: &Record) -> Result<ContactUpsert, String> {
    let id = get(record, "id");
    if id.is_empty() {
        return Err("id: missing".into());
    }
    for name in CONTACT_COLUMNS {
        no_controls(name, get(record, name))?;
    }
    let email = match get(record, "email") {
        "" => None,
        e => Some(EmailAddress::parse(e).map_err(|m| format!("email: {m}"))?),
    };
    let birthday = match get(record, "birthday") {
        "" => None,
        b => Some(MonthDay::parse(b).map_err(|m| format!("birthday: {m}"))?),
    };
    let timezone = match get(record, "timezone") {
        "" => None,
        z => Some(
            parse_zone(z)
                .map(|_| z.to_owned())
                .map_err(|m| format!("timezone: {m}"))?,
        ),
    };
    let tags = get(record, "tags")
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let email_opt_out = flag("email_opt_out", get(record, "email_opt_out"))?;
    let postcard_opt_out = flag("postcard_opt_out", get(record, "postcard_opt_out"))?;
    let text = |name: &str| get(record, name).to_owned();
    Ok(ContactUpsert {
        contact: Contact {
            id: id.to_owned(),
            first_name: text("first_name"),
            last_name: text("last_name"),
            email,
            address_line1: text("address_line1"),
            address_line2: text("address_line2"),
            city: text("city"),
            region: text("region"),
            postal_code: text("postal_code"),
            country: text("country"),
            birthday,
            timezone,
            tags,
            email_opt_out: email_opt_out.unwrap_or(false),
            postcard_opt_out: postcard_opt_out.unwrap_or(false),
            fields: custom_fields(record, &CONTACT_COLUMNS)?,
            armed_at: None,
        },
        email_opt_out,
        postcard_opt_out,
    })
}

/// An event record checked on its own; its time is resolved once its contact is known.
pub struct PendingEvent {
    pub contact_id: String,
    pub id: Option<String>,
    pub kind: String,
    pub at: String,
    pub fields: BTreeMap<String, String>,
}

pub fn event_from_record(record: &Record) -> Result<PendingEvent, String> {
    for name in EVENT_COLUMNS {
        no_controls(name, get(record, name))?;
    }
    let contact_id = get(record, "contact_id");
    if contact_id.is_empty() {
        return Err("contact_id: missing".into());
    }
    let kind = get(record, "kind");
    if kind.is_empty() {
        return Err("kind: missing".into());
    }
    if !kind
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(format!(
            "kind: `{kind}` is not a single word such as purchase"
        ));
    }
    let at = get(record, "at");
    if at.is_empty() {
        return Err("at: missing".into());
    }
    // Check the format now, so the error names the row even before the contact is known.
    parse_instant(at, &TimeZone::UTC).map_err(|m| format!("at: {m}"))?;
    Ok(PendingEvent {
        contact_id: contact_id.to_owned(),
        id: Some(get(record, "id").to_owned()).filter(|s| !s.is_empty()),
        kind: kind.to_owned(),
        at: at.to_owned(),
        fields: custom_fields(record, &EVENT_COLUMNS)?,
    })
}

impl PendingEvent {
    /// Resolves a plain date to its start in the contact's zone.
    pub fn resolve(self, zone: &TimeZone) -> Result<Event, String> {
        let at: Timestamp = parse_instant(&self.at, zone).map_err(|m| format!("at: {m}"))?;
        Ok(Event {
            id: self.id.unwrap_or_else(|| Event::derived_id(&self.kind, at)),
            contact_id: self.contact_id,
            kind: self.kind,
            at,
            fields: self.fields,
            armed_at: None,
        })
    }
}

/// Reads CSV records with their line numbers. A row that is not UTF-8 or has the wrong
/// number of fields is reported, not fatal.
/// A CSV row's line and its record, or why it cannot be read.
pub type Row = (u64, Result<Record, String>);

pub fn read_csv(input: impl Read) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .byte_headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .clone();
    let mut names = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let h = std::str::from_utf8(h).map_err(|_| "the header row is not UTF-8".to_owned())?;
        let h = if i == 0 {
            h.trim_start_matches('\u{feff}')
        } else {
            h
        };
        names.push(h.trim().to_owned());
    }
    if names.iter().all(|n| n.is_empty()) {
        return Err("the header row is empty".into());
    }
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                    continue;
                }
                if record.len() != names.len() {
                    rows.push((
                        line,
                        Err(format!(
                            "has {} fields, the header has {}",
                            record.len(),
                            names.len()
                        )),
                    ));
                    continue;
                }
                let mut fields = Vec::with_capacity(names.len());
                let mut bad = None;
                for (name, value) in names.iter().zip(record.iter()) {
                    match std::str::from_utf8(value) {
                        Ok(v) => fields.push((name.clone(), v.to_owned())),
                        Err(_) => {
                            bad = Some(format!(
                                "{name}: is not UTF-8 text (save the file as UTF-8)"
                            ))
                        }
                    }
                }
                rows.push((line, bad.map_or(Ok(fields), Err)));
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                rows.push((line, Err(format!("unreadable CSV: {e}"))));
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

/// Imports a contacts or events CSV: every valid row in one transaction.
pub async fn import(
    store: &dyn Store,
    kind: Kind,
    input: impl Read,
    business_zone: &TimeZone,
    now: Timestamp,
) -> anyhow::Result<ImportReport> {
    let rows = read_csv(input).map_err(|m| anyhow::anyhow!(m))?;
    let mut report = ImportReport::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let reject =
        |report: &mut ImportReport, line: u64, reason: String| report.rejected.push((line, reason));
    match kind {
        Kind::Contacts => {
            let mut contacts = Vec::new();
            for (line, row) in rows {
                match row.and_then(|r| contact_from_record(&r)) {
                    Ok(c) => match seen.insert(c.contact.id.clone(), line) {
                        Some(first) => reject(
                            &mut report,
                            line,
                            format!("id: `{}` is also on line {first}", c.contact.id),
                        ),
                        None => contacts.push(c),
                    },
                    Err(reason) => reject(&mut report, line, reason),
                }
            }
            report.accepted = contacts.len();
            report.changed = store.upsert_contacts(&contacts, now).await?;
        }
        Kind::Events => {
            let mut pending = Vec::new();
            for (line, row) in rows {
                match row.and_then(|r| event_from_record(&r)) {
                    Ok(e) => pending.push((line, e)),
                    Err(reason) => reject(&mut report, line, reason),
                }
            }
            let mut ids: Vec<String> = pending.iter().map(|(_, e)| e.contact_id.clone()).collect();
            ids.sort();
            ids.dedup();
            let zones = store.contact_zones(&ids).await?;
            let mut events = Vec::new();
            for (line, e) in pending {
                let Some(zone) = zones.get(&e.contact_id) else {
                    reject(
                        &mut report,
                        line,
                        format!(
                            "contact_id: no contact `{}` (import contacts first)",
                            e.contact_id
                        ),
                    );
                    continue;
                };
                let zone = zone
                    .as_deref()
                    .and_then(|z| TimeZone::get(z).ok())
                    .unwrap_or_else(|| business_zone.clone());
                match e.resolve(&zone) {
                    Ok(event) => {
                        let key = format!("{}\u{0}{}", event.contact_id, event.id);
                        match seen.insert(key, line) {
                            Some(first) => reject(
                                &mut report,
                                line,
                                format!("id: `{}` is also on line {first}", event.id),
                            ),
                            None => events.push(event),
                        }
                    }
                    Err(reason) => reject(&mut report, line, reason),
                }
            }
            report.accepted = events.len();
            report.changed = store.upsert_events(&events, now).await?;
        }
    }
    report.rejected.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// Imports `path` if it changed since the last sync (by size and modification time).
/// Returns the report when it imported.
pub async fn sync_file(
    store: &dyn Store,
    kind: Kind,
    path: &Path,
    business_zone: &TimeZone,
    now: Timestamp,
) -> anyhow::Result<Option<ImportReport>> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| Timestamp::try_from(m).ok())
        .map(|t| t.as_nanosecond());
    let stamp = format!("{}:{}", meta.len(), modified.unwrap_or_default());
    let key = format!("sync:{}", path.display());
    if store.meta(&key).await?.as_deref() == Some(stamp.as_str()) {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let report = import(
        store,
        kind,
        std::io::BufReader::new(file),
        business_zone,
        now,
    )
    .await?;
    store.set_meta(&key, &stamp).await?;
    Ok(Some(report))
}
