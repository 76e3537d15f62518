//! The PostgreSQL backend: the same behaviour as SQLite, for a database that several
//! `tickler run` instances share. The send log's unique key keeps them from sending
//! one occurrence twice; retries and expired claims are taken with
//! `FOR UPDATE SKIP LOCKED`, so instances split that work instead of waiting on
//! each other.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};

use super::postgres_writer::{PostgresWriter, zones};
use super::{
    BulkWriter, DuePosition, Gathering, History, NewSend, Outcome, SendFilter, SendRow, Store, ts,
};
use crate::domain::{Channel, Contact, EmailAddress, Event, MonthDay, SendStatus};

pub struct PostgresStore {
    pool: PgPool,
}

/// Rows per statement in batched inserts; SQLite allows 32766 bound values.
const BATCH: usize = 500;

impl PostgresStore {
    pub async fn open(url: &str) -> anyhow::Result<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    async fn write(&self) -> anyhow::Result<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

const CONTACT_COLUMNS: &str = "id, first_name, last_name, email, address_line1, address_line2, city, region, \
     postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, fields, armed_at";

const SEND_COLUMNS: &str = "id, contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
     attempts, next_attempt_at, message_id, reply, created_at, updated_at";

#[async_trait]
impl Store for PostgresStore {
    async fn writer(&self) -> anyhow::Result<Box<dyn BulkWriter>> {
        Ok(Box::new(PostgresWriter::begin(&self.pool).await?))
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
            "UPDATE contacts SET {column} = $1, updated_at = $2, next_due_at = 0 WHERE id = $3"
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
            "SELECT next_due_at, id FROM contacts WHERE next_due_at <= $1 \
             AND (next_due_at, id) > ($2, $3) ORDER BY next_due_at, id LIMIT $4",
        )
        .bind(now.as_second())
        .bind(after.next_due_at)
        .bind(&after.id)
        .bind(i64::from(limit))
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
        let rows = sqlx::query("SELECT id FROM contacts WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
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
        // One statement for the page, the rows passed as arrays: a statement a row was a
        // network round trip a row.
        let pending: Vec<bool> = sends
            .iter()
            .map(|s| s.status == SendStatus::Pending)
            .collect();
        let column = |f: fn(&NewSend) -> String| sends.iter().map(f).collect::<Vec<String>>();
        let mut tx = self.write().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO sends (contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
             lease_until, lease_owner, message_id, created_at, updated_at) \
             SELECT contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
             lease_until, lease_owner, message_id, $12, $12 \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[]) \
             AS v (contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
             lease_until, lease_owner, message_id) \
             ON CONFLICT (contact_id, cadence, occurrence) DO NOTHING RETURNING {SEND_COLUMNS}"
        )))
        .bind(column(|s| s.key.contact.clone()))
        .bind(column(|s| s.key.cadence.clone()))
        .bind(column(|s| s.key.occurrence.clone()))
        .bind(column(|s| s.channel.as_str().to_owned()))
        .bind(column(|s| s.status.as_str().to_owned()))
        .bind(sends.iter().map(|s| s.reason.clone()).collect::<Vec<_>>())
        .bind(sends.iter().map(|s| s.event_id.clone()).collect::<Vec<_>>())
        .bind(sends.iter().map(|s| s.due_at.as_second()).collect::<Vec<_>>())
        .bind(
            pending
                .iter()
                .map(|p| p.then(|| lease_until.as_second()))
                .collect::<Vec<_>>(),
        )
        .bind(
            pending
                .iter()
                .map(|p| p.then(|| owner.to_owned()))
                .collect::<Vec<_>>(),
        )
        .bind(column(|s| s.message_id.clone()))
        .bind(now.as_second())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(send_from_row).collect())
    }

    async fn mark_due(&self, ids: &[String], mark: i64, now: Timestamp) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        // Events before contacts: the order an import locks them in.
        sqlx::query(
            "UPDATE events SET armed_at = $1 WHERE armed_at IS NULL AND contact_id = ANY($2)",
        )
        .bind(now.as_second())
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE contacts SET next_due_at = $1, armed_at = coalesce(armed_at, $2) WHERE id = ANY($3)",
        )
        .bind(mark)
        .bind(now.as_second())
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_next_due(
        &self,
        updates: &[(String, Option<Timestamp>)],
        mark: i64,
    ) -> anyhow::Result<()> {
        // In id order, the order other writers lock contacts in, and in one statement.
        let mut updates: Vec<&(String, Option<Timestamp>)> = updates.iter().collect();
        updates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE contacts SET next_due_at = v.at \
             FROM UNNEST($1::text[], $2::bigint[]) AS v (id, at) \
             WHERE contacts.id = v.id AND contacts.next_due_at = $3",
        )
        .bind(updates.iter().map(|u| u.0.clone()).collect::<Vec<_>>())
        .bind(
            updates
                .iter()
                .map(|u| u.1.map(|t| t.as_second()))
                .collect::<Vec<_>>(),
        )
        .bind(mark)
        .execute(&mut *tx)
        .await?;
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
            "UPDATE sends SET status = 'pending', lease_until = $1, lease_owner = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM sends WHERE (status = 'retrying' AND next_attempt_at <= $3) \
             OR (status = 'pending' AND lease_until < $3) ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING {SEND_COLUMNS}"
        )))
        .bind(lease_until.as_second())
        .bind(owner)
        .bind(now.as_second())
        .bind(i64::from(limit))
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
            "UPDATE sends SET lease_until = 0 WHERE status = 'pending' AND lease_owner = $1",
        )
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(&self, outcomes: &[Outcome], now: Timestamp) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE sends SET status = v.status, reason = v.reason, \
             reply = COALESCE(v.reply, sends.reply), next_attempt_at = v.next_attempt_at, \
             attempts = sends.attempts + v.attempted, lease_until = NULL, lease_owner = NULL, updated_at = $6 \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $7::bigint[]) \
             AS v (id, status, reason, reply, next_attempt_at, attempted) WHERE sends.id = v.id",
        )
        .bind(outcomes.iter().map(|o| o.id).collect::<Vec<_>>())
        .bind(
            outcomes
                .iter()
                .map(|o| o.status.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(outcomes.iter().map(|o| o.reason.clone()).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|o| o.reply.clone()).collect::<Vec<_>>())
        .bind(
            outcomes
                .iter()
                .map(|o| o.next_attempt_at.map(|t| t.as_second()))
                .collect::<Vec<_>>(),
        )
        .bind(now.as_second())
        .bind(
            outcomes
                .iter()
                .map(|o| i64::from(o.attempted))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sends(&self, filter: &SendFilter) -> anyhow::Result<Vec<SendRow>> {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT {SEND_COLUMNS} FROM sends WHERE 1 = 1"));
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
            q.push(" LIMIT ").push_bind(i64::from(limit));
        }
        let rows = q.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(send_from_row).collect())
    }

    async fn meta(&self, key: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("value")))
    }

    async fn set_meta(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
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
             + (SELECT COUNT(*) FROM contacts WHERE next_due_at <= $1) AS n",
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

    /// A session advisory lock, held by a connection of its own. The connection is
    /// closed (not returned to the pool) when the guard drops, which releases the lock,
    /// as does the death of the process.
    async fn exclusive(&self, name: &str) -> anyhow::Result<Option<super::Exclusive>> {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!("tickler:{name}").as_bytes());
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        let mut conn = self.pool.acquire().await?;
        conn.close_on_drop();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(i64::from_be_bytes(key))
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then(|| Box::new(conn) as super::Exclusive))
    }
}

fn in_list(head: &str, ids: &[String]) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(head);
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    q.push(")");
    q
}

fn contact_from_row(row: &PgRow) -> anyhow::Result<Contact> {
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

fn event_from_row(row: &PgRow) -> anyhow::Result<Event> {
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

fn send_from_row(row: &PgRow) -> SendRow {
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
