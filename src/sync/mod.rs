//! Getting contacts and events in: CSV files (`import`, and the `sync_csv` files that
//! `run` and `tick` re-import when they change). Each row is checked on its own; valid
//! rows are upserted in one transaction and each rejected row is reported with its line.
//!
//! A file is streamed, never held: a reader thread parses and checks rows in chunks
//! while the previous chunk is written, so memory stays flat whatever the file's size.

mod check;
mod csv_rows;
mod resolve;
mod staging;

use std::io::Read;
use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::mpsc;

use crate::keys::KeyTable;
use crate::store::{BulkWriter, ContactUpsert, Store};
use staging::Staging;

pub use check::{
    CONTACT_COLUMNS, Fields, MAX_CUSTOM_FIELDS, MAX_ID, MAX_TAGS, MAX_VALUE, PendingEvent, Record,
    contact_from_record, event_from_record,
};
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
        staging: None,
        staged: 0,
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
    writer.write_staged_events(&mut report).await?;
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
    tx: Option<Box<dyn BulkWriter>>,
    /// The event rows that wait to be written, once there are any.
    staging: Option<Staging>,
    staged: usize,
    business_zone: &'a TimeZone,
    now: Timestamp,
}

impl Writer<'_> {
    async fn tx(&mut self, store: &dyn Store) -> anyhow::Result<&mut Box<dyn BulkWriter>> {
        if self.tx.is_none() {
            self.tx = Some(store.writer().await?);
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
        report.changed += self.tx(store).await?.contacts(contacts, now).await?;
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
        if pending.is_empty() {
            return Ok(());
        }
        self.tx(store).await?;
        self.staged += pending.len();
        let staging = match &mut self.staging {
            Some(staging) => staging,
            None => self.staging.insert(Staging::open()?),
        };
        staging.add(pending).await?;
        let tx = self.tx.as_mut().expect("begun above");
        Ok(tx.expect_lookups(self.staged).await?)
    }

    /// Writes the staged events, if any.
    async fn write_staged_events(&mut self, report: &mut ImportReport) -> anyhow::Result<()> {
        let (Some(staging), Some(tx)) = (self.staging.take(), self.tx.as_mut()) else {
            return Ok(());
        };
        let resolution =
            resolve::write_staged(tx.as_mut(), staging, self.business_zone, self.now).await?;
        report.accepted += resolution.accepted;
        report.changed += resolution.changed;
        report.rejected.extend(resolution.rejected);
        Ok(())
    }
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
