//! The SQLite backend: one file in WAL mode, writes in `BEGIN IMMEDIATE` transactions
//! (one writer at a time, no lock upgrades that deadlock), a busy timeout so that a CLI
//! command and the daemon can share the file. The writers of one process take turns
//! before they ask SQLite for the lock: SQLite's busy handler waits by sleeping (1 ms,
//! then 2, 5, 10...), which cost a pass that records outcomes while it plans the next
//! page seconds of sleep; a turn is handed over the moment the last writer commits.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use super::sqlite_conn;
use super::sqlite_writer::{SqliteWriter, Turn, WriteTurn};
use super::{
    BulkWriter, DuePosition, Gathering, History, NewSend, Outcome, SendFilter, SendRow, Store, ts,
};
use crate::domain::{Channel, Contact, EmailAddress, Event, MonthDay, SendStatus};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, ConnectOptions, QueryBuilder, Row, Sqlite, SqliteConnection};

pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's writers, one at a time.
    write_turn: WriteTurn,
    /// The database file, which a bulk writer opens a connection of its own to.
    path: PathBuf,
}

/// Prepared statements each connection keeps. A pass's multi-row statements differ
/// in text with their row counts, and a prepared one of 500 rows holds a few hundred
/// KB: sqlx's default of 100 a connection let a long pass grow the daemon by ~100 MB.
const STATEMENT_CACHE: usize = 24;

/// Rows per statement in batched inserts; SQLite allows 32766 bound values.
const BATCH: usize = 500;

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
            path,
        })
    }

    async fn write(&self) -> anyhow::Result<Write> {
        let turn = self.write_turn.hold().await;
        Ok(Write {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
        })
    }
}

/// A write transaction during this process's write turn (given back after the
/// transaction ends: fields drop in order).
struct Write {
    tx: sqlx::Transaction<'static, Sqlite>,
    _turn: Turn,
}

impl Write {
    async fn commit(self) -> anyhow::Result<()> {
        Ok(self.tx.commit().await?)
    }
}

impl Deref for Write {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

const CONTACT_COLUMNS: &str = "id, first_name, last_name, email, address_line1, address_line2, city, region, \
     postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, fields, armed_at";

/// Rows a multi-row statement of a pass (sends, due times, outcomes) carries: at most
/// 13 values a row, and SQLite allows 32766 in one statement.
const ROWS_PER_STATEMENT: usize = 500;

const SEND_COLUMNS: &str = "id, contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
     attempts, next_attempt_at, message_id, reply, created_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    async fn writer(&self) -> anyhow::Result<Box<dyn BulkWriter>> {
        Ok(Box::new(
            SqliteWriter::begin(&self.write_turn, &self.path).await?,
        ))
    }

    async fn contact_zones(
        &self,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, Option<String>>> {
        let mut conn = self.pool.acquire().await?;
        zones(&mut conn, ids).await
    }

    async fn set_opt_out(
        &self,
        contact: &str,
        channel: Channel,
        opted_out: bool,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let column = match channel {
            Channel::Email => "email_opt_out",
            Channel::Postcard => "postcard_opt_out",
        };
        let sql = format!(
            "UPDATE contacts SET {column} = ?1, updated_at = ?2, next_due_at = 0 WHERE id = ?3"
        );
        let mut tx = self.write().await?;
        let result = sqlx::query(AssertSqlSafe(sql))
            .bind(opted_out)
            .bind(now.as_second())
            .bind(contact)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    async fn due_contacts(
        &self,
        now: Timestamp,
        after: &DuePosition,
        limit: u32,
    ) -> anyhow::Result<Vec<DuePosition>> {
        let rows = sqlx::query(
            "SELECT next_due_at, id FROM contacts WHERE next_due_at <= ?1 \
             AND (next_due_at, id) > (?2, ?3) ORDER BY next_due_at, id LIMIT ?4",
        )
        .bind(now.as_second())
        .bind(after.next_due_at)
        .bind(&after.id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DuePosition {
                next_due_at: r.get("next_due_at"),
                id: r.get("id"),
            })
            .collect())
    }

    async fn contact_ids(&self, after: &str, limit: u32) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM contacts WHERE id > ?1 ORDER BY id LIMIT ?2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get("id")).collect())
    }

    async fn history(&self, ids: &[String]) -> anyhow::Result<Vec<History>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let contacts = in_list(
                &format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id IN ("),
                chunk,
            )
            .build()
            .fetch_all(&self.pool)
            .await?;
            let events = in_list(
                "SELECT contact_id, id, kind, at, fields, armed_at FROM events WHERE contact_id IN (",
                chunk,
            )
            .build()
            .fetch_all(&self.pool)
            .await?;
            let logged = in_list(
                "SELECT contact_id, cadence, occurrence, status, updated_at FROM sends WHERE contact_id IN (",
                chunk,
            )
            .build()
            .fetch_all(&self.pool)
            .await?;
            let mut gathering = Gathering::new(chunk);
            for row in &contacts {
                gathering.contact(contact_from_row(row)?);
            }
            for row in &events {
                gathering.event(event_from_row(row)?);
            }
            for row in &logged {
                gathering.logged(
                    row.get("contact_id"),
                    row.get("cadence"),
                    row.get("occurrence"),
                    row.get("status"),
                    ts(row.get("updated_at")),
                );
            }
            out.extend(gathering.finish());
        }
        Ok(out)
    }

    async fn insert_sends(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> anyhow::Result<Vec<SendRow>> {
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
            let rows = q.build().fetch_all(&mut *tx).await?;
            inserted.extend(rows.iter().map(send_from_row));
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn mark_due(&self, ids: &[String], mark: i64, now: Timestamp) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        // The two numbers are written into the text (integers cannot inject anything),
        // so these statements differ from pass to pass and are not kept prepared.
        let now = now.as_second();
        let events = format!(
            "UPDATE events SET armed_at = {now} WHERE armed_at IS NULL AND contact_id IN ("
        );
        let contacts = format!(
            "UPDATE contacts SET next_due_at = {mark}, armed_at = coalesce(armed_at, {now}) WHERE id IN ("
        );
        for chunk in ids.chunks(BATCH) {
            for head in [&events, &contacts] {
                in_list(head, chunk)
                    .build()
                    .persistent(false)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_next_due(
        &self,
        updates: &[(String, Option<Timestamp>)],
        mark: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("WITH v (id, at) AS (");
            q.push_values(chunk, |mut b, (id, at)| {
                b.push_bind(id).push_bind(at.map(|t| t.as_second()));
            });
            // `+` keeps the guard off the due index: given it, SQLite 3.51 scans the
            // page's values once per contact of the mark (500 x 500 comparisons, 12 ms
            // a page instead of 1.5 ms).
            q.push(
                ") UPDATE contacts SET next_due_at = v.at FROM v \
                 WHERE contacts.id = v.id AND +contacts.next_due_at = ",
            )
            .push_bind(mark);
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_retries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<SendRow>> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE sends SET status = 'pending', lease_until = ?1, lease_owner = ?2, updated_at = ?3 \
             WHERE id IN (SELECT id FROM sends WHERE (status = 'retrying' AND next_attempt_at <= ?3) \
             OR (status = 'pending' AND lease_until < ?3) ORDER BY due_at LIMIT ?4) \
             RETURNING {SEND_COLUMNS}"
        )))
        .bind(lease_until.as_second())
        .bind(owner)
        .bind(now.as_second())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(send_from_row).collect())
    }

    async fn lease_owners(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT lease_owner FROM sends WHERE status = 'pending' AND lease_owner IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get("lease_owner")).collect())
    }

    async fn release_leases(&self, owner: &str) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE sends SET lease_until = 0 WHERE status = 'pending' AND lease_owner = ?1",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(&self, outcomes: &[Outcome], now: Timestamp) -> anyhow::Result<()> {
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
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sends(&self, filter: &SendFilter) -> anyhow::Result<Vec<SendRow>> {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("SELECT {SEND_COLUMNS} FROM sends WHERE 1 = 1"));
        if let Some(since) = filter.since {
            q.push(" AND updated_at >= ").push_bind(since.as_second());
        }
        if let Some(until) = filter.until {
            q.push(" AND updated_at < ").push_bind(until.as_second());
        }
        if let Some(contact) = &filter.contact {
            q.push(" AND contact_id = ").push_bind(contact.clone());
        }
        if let Some(cadence) = &filter.cadence {
            q.push(" AND cadence = ").push_bind(cadence.clone());
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        q.push(" ORDER BY updated_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").push_bind(limit);
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(send_from_row).collect())
    }

    async fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("value")))
    }

    async fn set_meta(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn send_counts(&self) -> anyhow::Result<Vec<(String, String, String, i64)>> {
        let rows = sqlx::query("SELECT cadence, channel, status, COUNT(*) AS n FROM sends GROUP BY cadence, channel, status ORDER BY 1, 2, 3")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get("cadence"),
                    r.get("channel"),
                    r.get("status"),
                    r.get("n"),
                )
            })
            .collect())
    }

    async fn queue_depth(&self, now: Timestamp) -> anyhow::Result<i64> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sends WHERE status IN ('pending', 'retrying')) \
             + (SELECT COUNT(*) FROM contacts WHERE next_due_at <= ?1) AS n",
        )
        .bind(now.as_second())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get("n"))
    }

    async fn mark_all_due(&self) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("UPDATE contacts SET next_due_at = 0")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One SQLite file has one machine; its writes are serialized already, and a second
    /// sync of an unchanged file changes nothing.
    async fn exclusive(&self, _name: &str) -> anyhow::Result<Option<super::Exclusive>> {
        Ok(Some(Box::new(())))
    }
}

/// The stored time zone of each id that exists: one row of JSON per list rather than
/// a row per contact, which sqlx would hand over one at a time.
async fn zones(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Option<String>>> {
    let mut zones = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        let row = in_list(
            "SELECT json_group_array(json_array(id, timezone)) AS zones FROM contacts WHERE id IN (",
            chunk,
        )
        .build()
        .fetch_one(&mut *conn)
        .await?;
        let found: Vec<(String, Option<String>)> = serde_json::from_str(row.get("zones"))?;
        zones.extend(found);
    }
    Ok(zones)
}

fn in_list(head: &str, ids: &[String]) -> QueryBuilder<Sqlite> {
    let mut q = QueryBuilder::<Sqlite>::new(head);
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    q.push(")");
    q
}

fn contact_from_row(row: &SqliteRow) -> anyhow::Result<Contact> {
    let email: Option<String> = row.get("email");
    let birthday: Option<String> = row.get("birthday");
    let tags: String = row.get("tags");
    let fields: String = row.get("fields");
    Ok(Contact {
        id: row.get("id"),
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        email: email.and_then(|e| EmailAddress::parse(&e).ok()),
        address_line1: row.get("address_line1"),
        address_line2: row.get("address_line2"),
        city: row.get("city"),
        region: row.get("region"),
        postal_code: row.get("postal_code"),
        country: row.get("country"),
        birthday: birthday.and_then(|b| MonthDay::parse(&b).ok()),
        timezone: row.get("timezone"),
        tags: tags
            .split(';')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        email_opt_out: row.get("email_opt_out"),
        postcard_opt_out: row.get("postcard_opt_out"),
        fields: serde_json::from_str(&fields)?,
        armed_at: row.get::<Option<i64>, _>("armed_at").map(ts),
    })
}

fn event_from_row(row: &SqliteRow) -> anyhow::Result<Event> {
    let fields: String = row.get("fields");
    Ok(Event {
        contact_id: row.get("contact_id"),
        id: row.get("id"),
        kind: row.get("kind"),
        at: ts(row.get("at")),
        fields: serde_json::from_str(&fields)?,
        armed_at: row.get::<Option<i64>, _>("armed_at").map(ts),
    })
}

fn send_from_row(row: &SqliteRow) -> SendRow {
    SendRow {
        id: row.get("id"),
        contact: row.get("contact_id"),
        cadence: row.get("cadence"),
        occurrence: row.get("occurrence"),
        channel: row.get("channel"),
        status: row.get("status"),
        reason: row.get("reason"),
        due_at: ts(row.get("due_at")).to_string(),
        attempts: row.get("attempts"),
        message_id: row.get("message_id"),
        reply: row.get("reply"),
        next_attempt_at: row
            .get::<Option<i64>, _>("next_attempt_at")
            .map(|t| ts(t).to_string()),
        updated_at: ts(row.get("updated_at")).to_string(),
        created_at: ts(row.get("created_at")),
        event_id: row.get("event_id"),
    }
}
