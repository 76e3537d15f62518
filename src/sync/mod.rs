//! Getting contacts and events in: CSV files (`import`, and the `sync_csv` files that
//! `run` and `tick` re-import when they change). Each row is checked on its own; valid
//! rows are upserted in one transaction and each rejected row is reported with its line.
//!
//! A file is streamed, never held: a reader thread parses and checks rows in chunks
//! while the previous chunk is written, so memory stays flat whatever the file's size.

mod csv_rows;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::mpsc;

use crate::domain::contact::{parse_instant, parse_zone};
use crate::domain::{Contact, EmailAddress, MonthDay};
use crate::keys::KeyTable;
use crate::store::{ContactUpsert, EventUpsert, ImportTx, Store};

pub use crate::store::PendingEvent;
pub use csv_rows::{CsvRow, read_csv};

/// Rows checked and handed to the writer together.
const CHUNK: usize = 2048;

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

/// The contacts CSV columns tickler knows; any other column is a custom field.
pub const CONTACT_COLUMNS: [&str; 15] = [
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

/// One record as column name -> value, from a JSON object.
pub type Record = Vec<(String, String)>;

/// Column values by name: a CSV row or a JSON object.
pub trait Fields {
    /// The value of column `name`, trimmed; empty when there is no such column.
    fn get(&self, name: &str) -> &str;
    /// Every column as (name, value), the values untrimmed.
    fn columns(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Fields for Record {
    fn get(&self, name: &str) -> &str {
        self.iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    fn columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Longest id (contact or event) taken, in characters: ids go into every link and
/// header that names a contact, and a header line must stay under 998 characters.
pub const MAX_ID: usize = 128;
/// Longest value of any other column, in bytes.
pub const MAX_VALUE: usize = 4096;
/// Most custom columns a record may carry.
pub const MAX_CUSTOM_FIELDS: usize = 100;
/// Most tags a contact may carry: templates iterate over them, nested.
pub const MAX_TAGS: usize = 100;

fn no_controls(name: &str, value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{name}: contains a line break or control character"
        ));
    }
    if value.len() > MAX_VALUE {
        return Err(format!(
            "{name}: is {} bytes long; at most {MAX_VALUE} are taken",
            value.len()
        ));
    }
    Ok(())
}

fn id_ok(name: &str, value: &str) -> Result<(), String> {
    let length = value.chars().count();
    if length > MAX_ID {
        return Err(format!(
            "{name}: is {length} characters long; ids of at most {MAX_ID} are taken"
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

fn custom_fields(record: &impl Fields, known: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut fields = BTreeMap::new();
    for (k, v) in record.columns() {
        if known.contains(&k) || v.trim().is_empty() {
            continue;
        }
        no_controls(k, v)?;
        fields.insert(k.to_owned(), v.trim().to_owned());
        if fields.len() > MAX_CUSTOM_FIELDS {
            return Err(format!(
                "{k}: more than {MAX_CUSTOM_FIELDS} custom columns with values in one record"
            ));
        }
    }
    Ok(fields)
}

/// Checks one contact record.
pub fn contact_from_record(record: &impl Fields) -> Result<ContactUpsert, String> {
    let id = record.get("id");
    if id.is_empty() {
        return Err("id: missing".into());
    }
    id_ok("id", id)?;
    for name in CONTACT_COLUMNS {
        no_controls(name, record.get(name))?;
    }
    let email = match record.get("email") {
        "" => None,
        e => Some(EmailAddress::parse(e).map_err(|m| format!("email: {m}"))?),
    };
    let birthday = match record.get("birthday") {
        "" => None,
        b => Some(MonthDay::parse(b).map_err(|m| format!("birthday: {m}"))?),
    };
    let timezone = match record.get("timezone") {
        "" => None,
        z => Some(
            parse_zone(z)
                .map(|_| z.to_owned())
                .map_err(|m| format!("timezone: {m}"))?,
        ),
    };
    let tags: Vec<String> = record
        .get("tags")
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "tags: {} tags; at most {MAX_TAGS} are taken",
            tags.len()
        ));
    }
    let email_opt_out = flag("email_opt_out", record.get("email_opt_out"))?;
    let postcard_opt_out = flag("postcard_opt_out", record.get("postcard_opt_out"))?;
    let text = |name: &str| record.get(name).to_owned();
    ContactUpsert::new(
        Contact {
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
    )
}

/// Checks one event record; its time is resolved once its contact is known.
pub fn event_from_record(record: &impl Fields) -> Result<PendingEvent, String> {
    for name in EVENT_COLUMNS {
        no_controls(name, record.get(name))?;
    }
    let contact_id = record.get("contact_id");
    if contact_id.is_empty() {
        return Err("contact_id: missing".into());
    }
    id_ok("contact_id", contact_id)?;
    id_ok("id", record.get("id"))?;
    let kind = record.get("kind");
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
    let at = record.get("at");
    if at.is_empty() {
        return Err("at: missing".into());
    }
    // Check the format now, so the error names the row even before the contact is known.
    parse_instant(at, &TimeZone::UTC).map_err(|m| format!("at: {m}"))?;
    Ok(PendingEvent {
        contact_id: contact_id.to_owned(),
        id: Some(record.get("id").to_owned()).filter(|s| !s.is_empty()),
        kind: kind.to_owned(),
        at: at.to_owned(),
        fields: serde_json::to_string(&custom_fields(record, &EVENT_COLUMNS)?)
            .map_err(|e| format!("cannot store the custom fields: {e}"))?,
    })
}

/// Rows with their lines, each checked or with why it was rejected. One file holds
/// one kind of row, and each kind travels in a vector of its own size.
enum Chunk {
    Contacts(Rows<ContactUpsert>),
    Events(Rows<PendingEvent>),
}

/// Rows of one kind with their lines.
type Rows<T> = Vec<(u64, Result<T, String>)>;

/// Imports a contacts or events CSV: every valid row in one transaction.
pub async fn import(
    store: &dyn Store,
    kind: Kind,
    input: impl Read + Send + 'static,
    business_zone: &TimeZone,
    now: Timestamp,
) -> anyhow::Result<ImportReport> {
    let (sender, mut chunks) = mpsc::channel(2);
    let reader = tokio::task::spawn_blocking(move || check_rows(input, kind, &sender));
    let mut report = ImportReport::default();
    let mut writer = Writer {
        tx: None,
        staged: false,
        business_zone,
        now,
    };
    // A write that fails drops `chunks`, which stops the reader.
    while let Some(chunk) = chunks.recv().await {
        match chunk {
            Chunk::Contacts(rows) => writer.contacts(store, rows, &mut report).await?,
            Chunk::Events(rows) => writer.events(store, rows, &mut report).await?,
        }
    }
    reader
        .await
        .map_err(|e| anyhow::anyhow!("the CSV reader stopped: {e}"))?
        .map_err(|m| anyhow::anyhow!(m))?;
    if writer.staged {
        writer.write_staged_events(&mut report).await?;
    }
    if let Some(tx) = writer.tx {
        tx.commit().await?;
    }
    report.rejected.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// Reads and checks every row, handing them on in chunks; stops early if the writer
/// has gone. A repeated contact id is found here too, off the writer's thread; an
/// event's key may depend on its contact's zone, so repeated events are found when
/// they are written.
fn check_rows(input: impl Read, kind: Kind, chunks: &mpsc::Sender<Chunk>) -> Result<(), String> {
    match kind {
        Kind::Contacts => {
            let mut seen = KeyTable::default();
            let mut failed = None;
            let check = |line, row: &CsvRow| {
                let c = contact_from_record(row)?;
                match seen.insert(&[&c.contact.id], line_u32(line)) {
                    Ok(None) => Ok(c),
                    Ok(Some(first)) => {
                        Err(format!("id: `{}` is also on line {first}", c.contact.id))
                    }
                    Err(fatal) => {
                        failed = Some(fatal);
                        Err(String::new())
                    }
                }
            };
            send_checked(input, CHUNK, check, Chunk::Contacts, chunks)?;
            failed.map_or(Ok(()), Err)
        }
        Kind::Events => send_checked(
            input,
            CHUNK,
            |_, row: &CsvRow| event_from_record(row),
            Chunk::Events,
            chunks,
        ),
    }
}

/// Checks each row with `check` and sends them on in chunks of `size`; stops when a
/// check meets an error that ends the import, or when the writer has gone.
fn send_checked<T>(
    input: impl Read,
    size: usize,
    mut check: impl FnMut(u64, &CsvRow) -> Result<T, String>,
    wrap: fn(Rows<T>) -> Chunk,
    chunks: &mpsc::Sender<Chunk>,
) -> Result<(), String> {
    let mut chunk = Vec::with_capacity(size);
    read_csv(input, |line, row| {
        chunk.push((line, row.and_then(|r| check(line, r))));
        chunk.len() < size
            || chunks
                .blocking_send(wrap(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(size),
                )))
                .is_ok()
    })?;
    if !chunk.is_empty() {
        let _ = chunks.blocking_send(wrap(chunk));
    }
    Ok(())
}

/// The writing half of an import.
struct Writer<'a> {
    /// Begun with the first chunk, so that a file whose header is bad writes nothing.
    tx: Option<Box<dyn ImportTx>>,
    /// Whether any event rows wait to be written.
    staged: bool,
    business_zone: &'a TimeZone,
    now: Timestamp,
}

impl Writer<'_> {
    async fn tx(&mut self, store: &dyn Store) -> anyhow::Result<&mut Box<dyn ImportTx>> {
        if self.tx.is_none() {
            self.tx = Some(store.begin_import().await?);
        }
        Ok(self.tx.as_mut().expect("begun above"))
    }

    async fn contacts(
        &mut self,
        store: &dyn Store,
        chunk: Rows<ContactUpsert>,
        report: &mut ImportReport,
    ) -> anyhow::Result<()> {
        let mut contacts = Vec::with_capacity(chunk.len());
        for (line, checked) in chunk {
            match checked {
                Ok(c) => contacts.push(c),
                Err(reason) => report.rejected.push((line, reason)),
            }
        }
        report.accepted += contacts.len();
        let now = self.now;
        report.changed += self
            .tx(store)
            .await?
            .upsert_contacts(&contacts, now)
            .await?;
        Ok(())
    }

    /// Stages the chunk's good rows; they are written once the whole file is read.
    async fn events(
        &mut self,
        store: &dyn Store,
        chunk: Rows<PendingEvent>,
        report: &mut ImportReport,
    ) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(chunk.len());
        for (line, checked) in chunk {
            match checked {
                Ok(e) => pending.push((line, e)),
                Err(reason) => report.rejected.push((line, reason)),
            }
        }
        if !pending.is_empty() {
            self.tx(store).await?.stage_events(pending).await?;
            self.staged = true;
        }
        Ok(())
    }

    /// Writes the staged events contact by contact: each resolved in its contact's
    /// zone, an unknown contact's and a repeated key's rows rejected.
    async fn write_staged_events(&mut self, report: &mut ImportReport) -> anyhow::Result<()> {
        let business_zone = self.business_zone;
        let now = self.now;
        let tx = self.tx.as_mut().expect("staged in a transaction");
        let mut zones: HashMap<String, TimeZone> = HashMap::new();
        let rejected = &mut report.rejected;
        let mut accepted = 0;
        let mut resolve = |rows: Vec<(u64, PendingEvent)>,
                           stored: &HashMap<String, Option<String>>| {
            let events = resolve_events(rows, stored, business_zone, &mut zones, rejected);
            accepted += events.len();
            events
        };
        report.changed += tx.write_staged_events(&mut resolve, now).await?;
        report.accepted += accepted;
        Ok(())
    }
}

/// Resolves rows that hold every row of each of their contacts, in line order: a row
/// whose contact does not exist, whose time is not valid in its contact's zone, or
/// whose key an earlier row has is rejected. Returns the events in key order.
fn resolve_events(
    rows: Vec<(u64, PendingEvent)>,
    stored: &HashMap<String, Option<String>>,
    business_zone: &TimeZone,
    zones: &mut HashMap<String, TimeZone>,
    rejected: &mut Vec<(u64, String)>,
) -> Vec<EventUpsert> {
    let mut resolved = Vec::with_capacity(rows.len());
    for (line, e) in rows {
        let Some(zone) = stored.get(&e.contact_id) else {
            rejected.push((
                line,
                format!(
                    "contact_id: no contact `{}` (import contacts first)",
                    e.contact_id
                ),
            ));
            continue;
        };
        let zone = match zone {
            None => business_zone.clone(),
            Some(name) => zones
                .entry(name.clone())
                .or_insert_with(|| TimeZone::get(name).unwrap_or_else(|_| business_zone.clone()))
                .clone(),
        };
        match e.resolve(&zone) {
            Ok(event) => resolved.push((line, event)),
            Err(reason) => rejected.push((line, reason)),
        }
    }
    // In key order, and a repeated key's rows in line order: the first one is kept.
    resolved.sort_unstable_by(|(line_a, a), (line_b, b)| {
        (&a.contact_id, &a.id, line_a).cmp(&(&b.contact_id, &b.id, line_b))
    });
    let mut events: Vec<EventUpsert> = Vec::with_capacity(resolved.len());
    let mut first_line = 0;
    for (line, event) in resolved {
        match events.last() {
            Some(last) if last.contact_id == event.contact_id && last.id == event.id => {
                rejected.push((
                    line,
                    format!("id: `{}` is also on line {first_line}", event.id),
                ));
            }
            _ => {
                first_line = line;
                events.push(event);
            }
        }
    }
    events
}

/// Lines past 4 billion are reported as the last one a `u32` holds.
fn line_u32(line: u64) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// Whether `path` changed since it was last synced (or was never synced).
pub async fn changed(store: &dyn Store, path: &Path) -> anyhow::Result<bool> {
    let (key, stamp) = stamp(path)?;
    Ok(store.meta(&key).await?.as_deref() != Some(stamp.as_str()))
}

/// The meta key of `path`'s last sync, and the file's size and mtime now.
fn stamp(path: &Path) -> anyhow::Result<(String, String)> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| Timestamp::try_from(m).ok())
        .map(|t| t.as_nanosecond());
    let stamp = format!("{}:{}", meta.len(), modified.unwrap_or_default());
    Ok((format!("sync:{}", path.display()), stamp))
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
    let (key, stamp) = stamp(path)?;
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
