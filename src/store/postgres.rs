//! The PostgreSQL backend, for a database that several `tickler run` instances share.
//! The send log's unique key keeps them from sending one occurrence twice; retries and
//! expired claims are taken with `FOR UPDATE SKIP LOCKED`, so instances split that
//! work instead of waiting on each other. Multi-row statements pass their rows as
//! arrays (`UNNEST`): one statement, and so one round trip, a batch.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Pool, Postgres};

use super::backend::{Backend, Exclusive};
use super::postgres_writer::{PostgresWriter, zones};
use super::sql::{SEND_COLUMNS, Write, rows, send_from_row};
use super::{BulkWriter, NewSend, NextDue, Outcome, SendRow, StoreError};
use crate::domain::SendStatus;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str) -> anyhow::Result<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Each statement planned for its own arguments: a plan the server keeps
                    // for a prepared statement fits the table sizes of its first runs, and a
                    // send log that grows during a pass outgrows it. Set once connected, as
                    // connection poolers refuse startup options; a server before 12 lacks
                    // the setting and plans as usual.
                    if let Err(e) = conn.execute("SET plan_cache_mode = force_custom_plan").await {
                        tracing::debug!(error = %e, "statements keep the server's default planning");
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait]
impl Backend for PostgresStore {
    type Db = Postgres;
    const TEXT_ORDER: &'static str = " COLLATE \"C\"";
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";

    fn pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    async fn write(&self) -> Result<Write<Postgres>, StoreError> {
        Ok(Write {
            tx: self.pool.begin().await?,
            _turn: None,
        })
    }

    async fn insert(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> Result<Vec<SendRow>, StoreError> {
        let pending: Vec<bool> = sends
            .iter()
            .map(|s| s.status == SendStatus::Pending)
            .collect();
        let column = |f: fn(&NewSend) -> String| sends.iter().map(f).collect::<Vec<String>>();
        // One statement, atomic on its own: no transaction's round trips around it.
        let found = sqlx::query(AssertSqlSafe(format!(
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
        .fetch_all(&self.pool)
        .await?;
        rows::<Postgres, _>(&found, send_from_row::<Postgres>)
    }

    async fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Result<(), StoreError> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark(&self, ids: &[String], mark: i64, now: Timestamp) -> Result<(), StoreError> {
        // One statement, one round trip. The events are armed (and locked) first, the
        // order an import locks them in: the scalar subquery over `armed` runs before
        // the contacts are scanned.
        sqlx::query(
            "WITH armed AS (UPDATE events SET armed_at = $1 WHERE armed_at IS NULL AND contact_id = ANY($3) \
             RETURNING 1) \
             UPDATE contacts SET next_due_at = $2, armed_at = coalesce(armed_at, $1) \
             WHERE id = ANY($3) AND (SELECT count(*) FROM armed) >= 0",
        )
        .bind(now.as_second())
        .bind(mark)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_due(&self, updates: &[NextDue], mark: i64) -> Result<(), StoreError> {
        // In id order, the order other writers lock contacts in, and in one statement.
        let mut updates: Vec<&NextDue> = updates.iter().collect();
        updates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A session advisory lock, held by a connection of its own (see [`Exclusive`]).
    async fn try_lock(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
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
        Ok(got.then_some(Exclusive::AdvisoryLock(conn)))
    }

    async fn writer(&self) -> Result<Box<dyn BulkWriter>, StoreError> {
        Ok(Box::new(PostgresWriter::begin(&self.pool).await?))
    }

    async fn zones(&self, ids: &[String]) -> Result<HashMap<String, Option<String>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(zones(&mut conn, ids).await?)
    }
}
