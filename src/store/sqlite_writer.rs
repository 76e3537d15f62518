//! SQLite's bulk writer: one `BEGIN IMMEDIATE` transaction on a rusqlite connection
//! that the process keeps for its bulk writes, one prepared statement a row (the
//! cheapest way into SQLite). It takes the same write turn as the pool's writes, and its
//! blocking work runs on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, params};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;

use super::bulk::KnownWalk;
use super::sqlite_conn::{self, Access, BUSY_TIMEOUT};
use super::sqlite_contacts::{AllContacts, Lookup};
use super::upsert_sql::{CONTACT_INSERT, EVENT_CONFLICT, EVENT_INSERT, SHAPES, contact_conflict};
use super::{BulkWriter, ContactLookup, ContactUpsert, EventUpsert, KnownContact, StoreError};
use crate::domain::EmailAddress;

/// Page cache of the bulk writer's connection, in KiB (SQLite's default is 2 MiB); also
/// the memory SQLite's sorter fills before it writes a sorted run to its temporary file.
const CACHE_KIB: i64 = 32 * 1024;
/// Event rows from which a writer reads every contact (if there are at least an eighth
/// as many as contacts) rather than looking each one up.
const READ_ALL_FROM: usize = 16_384;

/// This process's turn to write to the database: every write holds it (the pool's and
/// the bulk writer's), so that two writers of one process never wait on SQLite's lock,
/// whose busy handler sleeps. Beside it, the bulk writer's connection between writes.
#[derive(Clone, Default)]
pub(super) struct WriteTurn {
    turn: Arc<Mutex<()>>,
    /// Taken and given back only by the holder of the turn.
    kept: Arc<std::sync::Mutex<Option<Connection>>>,
}

impl WriteTurn {
    /// Waits for the turn.
    pub(super) async fn hold(&self) -> OwnedMutexGuard<()> {
        self.turn.clone().lock_owned().await
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        // A panic while it was taken leaves nothing half-done in it.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The bulk writer's connection in its transaction, and the turn. Fields drop in
/// order: a connection dropped uncommitted closes (rolling back) before the turn goes.
struct Held {
    conn: Connection,
    write_turn: WriteTurn,
    _turn: OwnedMutexGuard<()>,
}

impl Held {
    /// Keeps the connection, out of its transaction, for the next bulk writer.
    fn keep(self) {
        let Held {
            conn,
            write_turn,
            _turn,
        } = self;
        *write_turn.kept() = Some(conn);
    }
}

pub(super) struct SqliteWriter {
    /// `None` while work on it runs on a blocking thread, or once that failed.
    held: Option<Held>,
    /// Every contact being read on the writer's connection while a file is staged.
    reading: Option<JoinHandle<(Held, Result<AllContacts, StoreError>)>>,
    all: Option<AllContacts>,
    /// About how many contacts exist, once asked.
    contacts: Option<usize>,
    /// Contacts written in this transaction.
    written: usize,
    /// The search indexes dropped for a large import, as `CREATE INDEX` statements to
    /// run again before the commit.
    dropped: Vec<String>,
    path: PathBuf,
}

/// Contacts written in one transaction past which the console's search indexes are
/// dropped and built again at the commit: building an index in one sorted pass is
/// cheaper than inserting many keys into it in random order.
const REBUILD_SEARCH_AFTER: usize = 50_000;

/// The indexes a large contacts import builds again at its end.
const SEARCH_INDEXES: &str =
    "'contacts_by_first_name', 'contacts_by_last_name', 'contacts_by_email'";

impl SqliteWriter {
    /// Waits for the write turn (as long as SQLite would wait for its lock), then begins
    /// a transaction on the kept connection to the database at `path` (opened the
    /// first time).
    pub(super) async fn begin(turn: &WriteTurn, path: &Path) -> Result<SqliteWriter, StoreError> {
        let held_turn = tokio::time::timeout(BUSY_TIMEOUT, turn.hold())
            .await
            .map_err(|_| {
                StoreError::Unavailable("database is locked: another write went on too long".into())
            })?;
        let kept = turn.kept().take();
        let write_turn = turn.clone();
        let opening = path.to_owned();
        let held = tokio::task::spawn_blocking(move || -> Result<Held, StoreError> {
            let conn = match kept {
                Some(conn) => conn,
                None => {
                    let conn = sqlite_conn::open(&opening, Access::ReadWrite)?;
                    conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}"))?;
                    conn
                }
            };
            conn.execute_batch("BEGIN IMMEDIATE")?;
            Ok(Held {
                conn,
                write_turn,
                _turn: held_turn,
            })
        })
        .await
        .map_err(stopped)??;
        Ok(SqliteWriter {
            held: Some(held),
            reading: None,
            all: None,
            contacts: None,
            written: 0,
            dropped: Vec::new(),
            path: path.to_owned(),
        })
    }

    /// Waits for any reading of every contact to end.
    async fn finish_reading(&mut self) -> Result<(), StoreError> {
        if let Some(reading) = self.reading.take() {
            let (held, all) = reading.await.map_err(stopped)?;
            self.held = Some(held);
            self.all = Some(all?);
        }
        Ok(())
    }

    /// The connection, taken out for work on another thread.
    async fn take(&mut self) -> Result<Held, StoreError> {
        self.finish_reading().await?;
        self.held.take().ok_or_else(|| {
            StoreError::Other(anyhow::anyhow!("the database writer's connection was lost"))
        })
    }

    /// Runs `work` on the connection, on a blocking thread.
    async fn run<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let held = self.take().await?;
        let (held, result) = tokio::task::spawn_blocking(move || {
            let result = work(&held.conn);
            (held, result)
        })
        .await
        .map_err(stopped)?;
        self.held = Some(held);
        result
    }
}

fn stopped(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other(anyhow::anyhow!("the database writer stopped: {e}"))
}

#[async_trait]
impl BulkWriter for SqliteWriter {
    async fn contacts(
        &mut self,
        rows: Vec<ContactUpsert>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.contacts = None;
        self.written += rows.len();
        let drop_search = self.written >= REBUILD_SEARCH_AFTER && self.dropped.is_empty();
        let (written, dropped) = self
            .run(move |conn| {
                let dropped = match drop_search {
                    true => drop_search_indexes(conn)?,
                    false => Vec::new(),
                };
                Ok((upsert_contacts(conn, &rows, now)?, dropped))
            })
            .await?;
        self.dropped.extend(dropped);
        Ok(written)
    }

    async fn events(
        &mut self,
        events: Vec<EventUpsert>,
        mut known: Vec<(String, KnownContact)>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.run(move |conn| write_events(conn, &events, &mut known, now))
            .await
    }

    async fn expect_lookups(&mut self, rows: usize) -> Result<(), StoreError> {
        if rows < READ_ALL_FROM || self.reading.is_some() || self.all.is_some() {
            return Ok(());
        }
        let contacts = match self.contacts {
            Some(contacts) => contacts,
            None => {
                // Contacts are never deleted: the highest rowid is about their number.
                let contacts = self
                    .run(|conn| {
                        let max: i64 = conn.query_row(
                            "SELECT coalesce(max(rowid), 0) FROM contacts",
                            [],
                            |row| row.get(0),
                        )?;
                        Ok(usize::try_from(max).unwrap_or(0))
                    })
                    .await?;
                *self.contacts.insert(contacts)
            }
        };
        if rows.saturating_mul(8) < contacts {
            return Ok(());
        }
        let held = self.take().await?;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            let all = AllContacts::read(&held.conn);
            (held, all)
        }));
        Ok(())
    }

    async fn lookup(&mut self) -> Result<Box<dyn ContactLookup>, StoreError> {
        self.finish_reading().await?;
        Ok(Box::new(match self.all.take() {
            Some(all) => Lookup::All(all),
            None => Lookup::each(&self.path),
        }))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let mut writer = *self;
        let held = writer.take().await?;
        let rebuild = std::mem::take(&mut writer.dropped);
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            for create in &rebuild {
                held.conn.execute_batch(create)?;
            }
            held.conn.execute_batch("COMMIT")?;
            // The cache is of no use to the next transaction, which another connection's
            // writes may have made stale: the memory goes back until then.
            held.conn.execute_batch("PRAGMA shrink_memory")?;
            held.keep();
            Ok(())
        })
        .await
        .map_err(stopped)?
    }
}

/// Drops the search indexes inside the import's transaction (a rollback brings them
/// back) and returns the statements that create them again.
fn drop_search_indexes(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut found = conn.prepare(&format!(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({SEARCH_INDEXES})"
    ))?;
    let indexes: Vec<(String, String)> = found
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX {name}"))?;
    }
    Ok(indexes.into_iter().map(|(_, sql)| sql).collect())
}

fn upsert_contacts(
    conn: &Connection,
    contacts: &[ContactUpsert],
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut changed = 0;
    // Looked up in the statement cache once a call, not once a row (the key is the
    // whole statement's text).
    let mut statements: [Option<rusqlite::CachedStatement>; 4] = [None, None, None, None];
    for row in contacts {
        let c = &row.contact;
        let columns = &row.columns;
        let shape = usize::from(row.email_opt_out.is_some()) * 2
            + usize::from(row.postcard_opt_out.is_some());
        if statements[shape].is_none() {
            statements[shape] = Some(conn.prepare_cached(&CONTACT_UPSERTS[shape])?);
        }
        let statement = statements[shape].as_mut().expect("prepared above");
        changed += statement.execute(params![
            c.id,
            c.first_name,
            c.last_name,
            c.email.as_ref().map(EmailAddress::as_str),
            c.address.line1,
            c.address.line2,
            c.address.city,
            c.address.region,
            c.address.postal_code,
            c.address.country,
            columns.birthday,
            c.timezone,
            columns.tags,
            row.email_opt_out.unwrap_or(false),
            row.postcard_opt_out.unwrap_or(false),
            columns.fields,
            columns.digest,
            now.as_second(),
        ])? as u64;
    }
    Ok(changed)
}

/// Upserts `events` (in key order) and wakes the contact of each changed one, unless
/// `known` (in id order) says it is due already. Returns how many rows changed.
fn write_events(
    conn: &Connection,
    events: &[EventUpsert],
    known: &mut [(String, KnownContact)],
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut upsert = conn.prepare_cached(&EVENT_UPSERT)?;
    let mut wake = conn.prepare_cached(
        "UPDATE contacts SET next_due_at = 0 WHERE id = ?1 AND next_due_at IS NOT 0",
    )?;
    let mut changed = 0;
    let mut known = KnownWalk::new(known);
    for e in events {
        let contact = known.find(&e.contact_id);
        let written = upsert.execute(params![
            e.contact_id,
            e.id,
            e.kind,
            e.at.as_second(),
            e.fields,
            now.as_second(),
            KnownContact::armed_with(contact.as_deref()),
        ])?;
        if written == 0 {
            continue;
        }
        changed += 1;
        match contact {
            Some(contact) if contact.due => {}
            Some(contact) => {
                contact.due = true;
                wake.execute([&e.contact_id])?;
            }
            None => {
                wake.execute([&e.contact_id])?;
            }
        }
    }
    Ok(changed)
}

/// The contact upsert for each shape of given opt-out flags, in `SHAPES`' order.
static CONTACT_UPSERTS: LazyLock<[String; 4]> = LazyLock::new(|| {
    SHAPES.map(|(email, postcard)| {
        format!(
            "{CONTACT_INSERT}VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
             ?15, ?16, ?17, 0, ?18, ?18){}",
            contact_conflict(email, postcard)
        )
    })
});

static EVENT_UPSERT: LazyLock<String> =
    LazyLock::new(|| format!("{EVENT_INSERT}VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7){EVENT_CONFLICT}"));

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_turn_not_free_in_time_is_unavailable() {
        let turn = WriteTurn::default();
        let _other_write = turn.hold().await;
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = SqliteWriter::begin(&turn, &dir.path().join("t.db")).await else {
            panic!("began while another write held the turn");
        };
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "database is locked: another write went on too long"
        );
    }
}
