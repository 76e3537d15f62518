//! A pass's reads on SQLite (its pages of due contacts and their histories), through
//! SQLite's C interface (rusqlite) on read connections kept for them: sqlx copies every
//! column of every row and hands the rows over from its connection's thread, which
//! costs more than SQLite's own work on a pass through many contacts. The statements
//! are the shared ones (`queue::due_page_query`, `queue::history_heads`), and history
//! rows fill the same `Gathering`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::StoreError;
use super::backend::BATCH;
use super::queue::{ANY_SUPPRESSED, DuePosition, Gathering, SUPPRESSED_HEAD, history_heads};
use super::sql::{Columns, event_from};
use super::sqlite_conn::{self, Access};
use crate::domain::History;

/// Page cache of the history connection, in KiB: a page of contacts' rows and index
/// pages, read once each.
const CACHE_KIB: i64 = 8 * 1024;

/// A read connection, opened at the first read and used on one thread at a time.
#[derive(Clone)]
pub(super) struct HistoryReader {
    path: PathBuf,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl HistoryReader {
    pub(super) fn new(path: &Path) -> HistoryReader {
        HistoryReader {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// The histories of the contacts of `ids` that exist, in that order, read in one
    /// read transaction.
    pub(super) async fn read(&self, ids: &[String]) -> Result<Vec<History>, StoreError> {
        let ids = ids.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let found = histories(&tx, &ids);
            tx.finish()?;
            found
        })
        .await
    }

    /// A page of due contacts: `query`, the shared statement, with its binds.
    pub(super) async fn due_page(
        &self,
        query: String,
        now: i64,
        after: &DuePosition,
        limit: u32,
    ) -> Result<Vec<DuePosition>, StoreError> {
        let after = after.clone();
        self.run(move |conn| {
            let mut statement = conn.prepare_cached(&query)?;
            let page = statement
                .query_map(
                    rusqlite::params![now, after.next_due_at, after.id, i64::from(limit)],
                    |row| {
                        Ok(DuePosition {
                            next_due_at: row.get(0)?,
                            id: row.get(1)?,
                        })
                    },
                )?
                .collect::<Result<_, _>>()?;
            Ok(page)
        })
        .await
    }

    /// Runs `work` on the connection, on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while it was held leaves nothing half-done in the connection.
            let mut slot = reader
                .conn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => {
                    let conn = sqlite_conn::open(&reader.path, Access::ReadOnly)?;
                    conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}"))?;
                    slot.insert(conn)
                }
            };
            work(conn)
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("reading stopped: {e}")))?
    }
}

fn histories(conn: &Connection, ids: &[String]) -> Result<Vec<History>, StoreError> {
    let [contacts, events, logged] = history_heads();
    let any_suppressed = conn
        .prepare_cached(ANY_SUPPRESSED)?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        let mut gathering = Gathering::new(chunk);
        each_row(conn, &contacts, chunk, |row| gathering.contact_row(row))?;
        each_row(conn, &events, chunk, |row| {
            gathering.event(event_from(row)?);
            Ok(())
        })?;
        each_row(conn, &logged, chunk, |row| gathering.logged_row(row))?;
        let addresses = if any_suppressed {
            gathering.addresses()
        } else {
            Vec::new()
        };
        each_row(conn, SUPPRESSED_HEAD, &addresses, |row| {
            gathering.suppressed(row.text("address")?, row.text("reason")?);
            Ok(())
        })?;
        out.extend(gathering.finish());
    }
    Ok(out)
}

/// Runs `head` completed by an `IN` list of `values`, handing each row to `row`.
fn each_row(
    conn: &Connection,
    head: &str,
    values: &[String],
    mut row: impl FnMut(&ByName<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if values.is_empty() {
        return Ok(());
    }
    let mut sql = String::with_capacity(head.len() + 3 * values.len());
    sql.push_str(head);
    for i in 0..values.len() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
    }
    sql.push(')');
    let mut statement = conn.prepare_cached(&sql)?;
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut rows = statement.query(params_from_iter(values))?;
    while let Some(found) = rows.next()? {
        row(&ByName {
            row: found,
            names: &names,
        })?;
    }
    Ok(())
}

/// A rusqlite row with its statement's column names: rusqlite finds a column by name
/// comparing every name without regard to case, which cost more than the reading.
struct ByName<'r> {
    row: &'r rusqlite::Row<'r>,
    names: &'r [String],
}

impl ByName<'_> {
    fn index(&self, column: &str) -> Result<usize, StoreError> {
        self.names
            .iter()
            .position(|n| n == column)
            .ok_or_else(|| StoreError::Corrupt(format!("{column}: no such column")))
    }

    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> Result<T, StoreError> {
        Ok(self.row.get(self.index(column)?)?)
    }
}

impl Columns for ByName<'_> {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }
    fn text(&self, column: &str) -> Result<&str, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("{column}: NULL where text belongs")))
    }
    fn opt_text(&self, column: &str) -> Result<Option<&str>, StoreError> {
        match self.row.get_ref(self.index(column)?)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("{column}: {e}"))),
            other => Err(StoreError::Corrupt(format!(
                "{column}: {:?} where text belongs",
                other.data_type()
            ))),
        }
    }
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        self.get(column)
    }
}
