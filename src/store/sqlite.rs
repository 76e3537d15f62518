//! The SQLite backend: one file in WAL mode, writes in `BEGIN IMMEDIATE` transactions
//! (one writer at a time, no lock upgrades that deadlock), a busy timeout so that a CLI
//! command and the daemon can share the file. The writers of one process take turns
//! before they ask SQLite for the lock, because SQLite's busy handler waits by sleeping
//! while a turn is handed over the moment the last writer commits. Multi-row statements
//! are `VALUES` lists of at most `ROWS_PER_STATEMENT` rows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Pool, QueryBuilder, Row, Sqlite, SqliteConnection};

use super::backend::{BATCH, Backend, Exclusive};
use super::queue::{DuePosition, due_page_query};
use super::sql::{SEND_COLUMNS, Write, in_list, push_list, rows, send_from_row};
use super::sqlite_conn;
use super::sqlite_history::HistoryReader;
use super::sqlite_writer::{SqliteWriter, WriteTurn};
use super::{BulkWriter, NewSend, NextDue, Outcome, SendRow, StoreError};
use crate::domain::{History, SendStatus};

pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's writers, one at a time.
    write_turn: WriteTurn,
    /// The database file, which the bulk writer opens a connection of its own to.
    path: PathBuf,
    /// A pass's history reads, on a connection of their own.
    history: HistoryReader,
    /// A pass's pages of due contacts, on another: they are found while the page
    /// before is read.
    pages: HistoryReader,
}

/// Prepared statements each connection keeps. A pass's multi-row statements differ
/// in text with their row counts, and a prepared one of 500 rows holds a few hundred
/// KB, so the cache stays well below sqlx's default of 100.
const STATEMENT_CACHE: usize = 24;

impl SqliteStore {
    pub async fn open(url: &str) -> anyhow::Result<SqliteStore> {
        let options = sqlite_conn::pool_options(url)?
            .statement_cache_capacity(STATEMENT_CACHE)
            // A pass's bulk statements at a million contacts take a second or more
            // (marking every contact due after an import): expected, so not a warning.
            // `TICKLER_LOG=sqlx=info` shows them.
            .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
        let path = options.get_filename().to_owned();
        if url.contains(":memory:") || url.contains("mode=memory") {
            anyhow::bail!(
                "database.url: an in-memory SQLite database would forget every send when tickler exits; name a file"
            );
        }
        if let Some(parent) = options
            .get_filename()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            write_turn: WriteTurn::default(),
            history: HistoryReader::new(&path),
            pages: HistoryReader::new(&path),
            path,
        })
    }
}

/// Rows a multi-row statement of a pass (sends, due times, outcomes) carries: at most
/// 13 values a row, and SQLite allows 32766 in one statement.
const ROWS_PER_STATEMENT: usize = 500;

#[async_trait]
impl Backend for SqliteStore {
    type Db = Sqlite;
    const TEXT_ORDER: &'static str = "";
    const CLAIM_LOCK: &'static str = "";

    fn pool(&self) -> &Pool<Sqlite> {
        &self.pool
    }

    /// In this process's write turn, so that its writers queue here rather than in
    /// SQLite's busy handler, which waits by sleeping.
    async fn write(&self) -> Result<Write<Sqlite>, StoreError> {
        let turn = self.write_turn.hold().await;
        Ok(Write {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _turn: Some(turn),
        })
    }

    async fn insert(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> Result<Vec<SendRow>, StoreError> {
        let mut tx = self.write().await?;
        let mut inserted = Vec::new();
        // Many rows a statement: each statement is a round trip to sqlx's SQLite thread.
        for chunk in sends.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO sends (contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
                 lease_until, lease_owner, message_id, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, s| {
                let pending = s.status == SendStatus::Pending;
                b.push_bind(&s.key.contact)
                    .push_bind(&s.key.cadence)
                    .push_bind(&s.key.occurrence)
                    .push_bind(s.channel.as_str())
                    .push_bind(s.status.as_str())
                    .push_bind(s.reason.as_deref())
                    .push_bind(s.event_id.as_deref())
                    .push_bind(s.due_at.as_second())
                    .push_bind(pending.then(|| lease_until.as_second()))
                    .push_bind(pending.then_some(owner))
                    .push_bind(&s.message_id)
                    .push_bind(now.as_second())
                    .push_bind(now.as_second());
            });
            q.push(format!(
                " ON CONFLICT (contact_id, cadence, occurrence) DO NOTHING RETURNING {SEND_COLUMNS}"
            ));
            let found = q.build().fetch_all(&mut *tx.tx).await?;
            inserted.extend(rows::<Sqlite, _>(&found, send_from_row::<Sqlite>)?);
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for chunk in outcomes.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "WITH v (id, attempted, status, reason, reply, next_attempt_at) AS (",
            );
            q.push_values(chunk, |mut b, o| {
                b.push_bind(o.id)
                    .push_bind(i64::from(o.attempted))
                    .push_bind(o.status.as_str())
                    .push_bind(o.reason.as_deref())
                    .push_bind(o.reply.as_deref())
                    .push_bind(o.next_attempt_at.map(|t| t.as_second()));
            });
            q.push(
                ") UPDATE sends SET status = v.status, reason = v.reason, \
                 reply = COALESCE(v.reply, sends.reply), next_attempt_at = v.next_attempt_at, \
                 attempts = attempts + v.attempted, lease_until = NULL, lease_owner = NULL, updated_at = ",
            )
            .push_bind(now.as_second())
            .push(" FROM v WHERE sends.id = v.id");
            q.build().execute(&mut *tx.tx).await?;
        }
        tx.commit().await
    }

    async fn mark(&self, ids: &[String], mark: i64, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let now = now.as_second();
        for chunk in ids.chunks(BATCH) {
            let mut events = QueryBuilder::<Sqlite>::new("UPDATE events SET armed_at = ");
            events.push_bind(now);
            events.push(" WHERE armed_at IS NULL AND contact_id IN (");
            let mut contacts = QueryBuilder::<Sqlite>::new("UPDATE contacts SET next_due_at = ");
            contacts.push_bind(mark);
            contacts
                .push(", armed_at = coalesce(armed_at, ")
                .push_bind(now);
            contacts.push(") WHERE id IN (");
            for q in [&mut events, &mut contacts] {
                push_list(q, chunk);
                q.build().execute(&mut *tx.tx).await?;
            }
        }
        tx.commit().await
    }

    async fn set_due(&self, updates: &[NextDue], mark: i64) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("WITH v (id, at) AS (");
            q.push_values(chunk, |mut b, (id, at)| {
                b.push_bind(id).push_bind(at.map(|t| t.as_second()));
            });
            // `+` keeps the guard off the due index, which SQLite would otherwise scan
            // once per contact of the mark.
            q.push(
                ") UPDATE contacts SET next_due_at = v.at FROM v \
                 WHERE contacts.id = v.id AND +contacts.next_due_at = ",
            )
            .push_bind(mark);
            q.build().execute(&mut *tx.tx).await?;
        }
        tx.commit().await
    }

    /// One SQLite file has one machine; its writes are serialized already, and a second
    /// sync of an unchanged file changes nothing.
    async fn try_lock(&self, _name: &str) -> Result<Option<Exclusive>, StoreError> {
        Ok(Some(Exclusive::SingleFile))
    }

    async fn writer(&self) -> Result<Box<dyn BulkWriter>, StoreError> {
        Ok(Box::new(
            SqliteWriter::begin(&self.write_turn, &self.path).await?,
        ))
    }

    async fn zones(&self, ids: &[String]) -> Result<HashMap<String, Option<String>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        zones(&mut conn, ids).await
    }

    async fn histories(&self, ids: &[String]) -> Result<Vec<History>, StoreError> {
        self.history.read(ids).await
    }

    async fn due_page(
        &self,
        now: i64,
        after: &DuePosition,
        limit: u32,
    ) -> Result<Vec<DuePosition>, StoreError> {
        let query = due_page_query::<Sqlite>(now, after, limit)
            .sql()
            .as_str()
            .to_owned();
        self.pages.due_page(query, now, after, limit).await
    }
}

/// The stored time zone of each id that exists: one row of JSON per list rather than
/// a row per contact, which sqlx would hand over one at a time.
async fn zones(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> Result<HashMap<String, Option<String>>, StoreError> {
    let mut zones = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        let row = in_list::<Sqlite>(
            "SELECT json_group_array(json_array(id, timezone)) AS zones FROM contacts WHERE id IN (",
            chunk,
        )
        .build()
        .fetch_one(&mut *conn)
        .await?;
        let found: Vec<(String, Option<String>)> = serde_json::from_str(row.try_get("zones")?)
            .map_err(|e| StoreError::Corrupt(format!("zones: {e}")))?;
        zones.extend(found);
    }
    Ok(zones)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DueQueue, SendFilter, SendLog};

    #[tokio::test]
    async fn a_stored_time_out_of_range_is_corrupt_not_the_epoch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        sqlx::query(
            "INSERT INTO sends (contact_id, cadence, occurrence, channel, status, due_at, \
             message_id, created_at, updated_at) \
             VALUES ('K-1', 'thank-you', 'P-1', 'email', 'sent', 9223372036854775807, '<m@x>', 1, 1)",
        )
        .execute(&store.pool)
        .await
        .expect("a row");
        let e = store.sends(&SendFilter::default()).await.unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        assert!(e.to_string().contains("due_at"), "{e}");
    }

    #[tokio::test]
    async fn a_pass_reads_each_due_contact_once_and_marks_below_its_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        sqlx::query(
            "INSERT INTO contacts (id, first_name, digest, next_due_at, created_at, updated_at) VALUES \
             ('A', 'a', 'd', -5000000000, 1, 1), ('B', 'b', 'd', 0, 1, 1), ('C', 'c', 'd', 50, 1, 1)",
        )
        .execute(&store.pool)
        .await
        .expect("contacts");
        let now = Timestamp::from_second(100).unwrap();
        let mut pass = store.begin_pass();
        let mut seen = Vec::new();
        loop {
            let page = store.next_due(&mut pass, now, 2).await.expect("page");
            if page.is_empty() {
                break;
            }
            store.mark_due(&page, &pass, now).await.expect("mark");
            seen.extend(page);
        }
        assert_eq!(seen, ["A", "B", "C"]);
        assert!(pass.mark < -5_000_000_000, "{}", pass.mark);
    }
}
