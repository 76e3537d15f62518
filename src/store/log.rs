//! The send log: one row per (contact, cadence, occurrence), claimed before delivery
//! and given its outcome after, and the lists and counts people read from it.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::Backend;
use super::sql::{Bind, SEND_COLUMNS, Sql, rows, send_from_row};
use crate::domain::{Channel, SendKey, SendStatus};

/// A row to add to the send log.
#[derive(Clone, Debug)]
pub struct NewSend {
    pub key: SendKey,
    pub channel: Channel,
    pub status: SendStatus,
    pub reason: Option<String>,
    pub event_id: Option<String>,
    pub due_at: Timestamp,
    pub message_id: String,
}

/// A send-log row.
#[derive(Clone, Debug)]
pub struct SendRow {
    pub id: i64,
    pub contact: String,
    pub cadence: String,
    pub occurrence: String,
    pub channel: Channel,
    pub status: SendStatus,
    pub reason: Option<String>,
    pub due_at: Timestamp,
    pub attempts: i64,
    pub message_id: String,
    pub reply: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// When the row was added: for a send, its first attempt. The message's `Date:` and
    /// the start of its retry period, the same on every attempt.
    pub created_at: Timestamp,
    pub event_id: Option<String>,
}

impl SendRow {
    pub fn key(&self) -> SendKey {
        SendKey {
            contact: self.contact.clone(),
            cadence: self.cadence.clone(),
            occurrence: self.occurrence.clone(),
        }
    }
}

/// How a delivery attempt ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub id: i64,
    /// Whether this counts as an attempt: a pause because no connection to the server
    /// could be had is not the message's.
    pub attempted: bool,
    pub status: SendStatus,
    pub reason: Option<String>,
    pub reply: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default)]
pub struct SendFilter {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub contact: Option<String>,
    pub cadence: Option<String>,
    pub status: Option<SendStatus>,
    pub channel: Option<Channel>,
    /// Only the rows of these contacts (a search's result).
    pub contacts: Option<Vec<String>>,
    /// Only rows older than this (`updated_at`, id): the page after one that ended there.
    pub before: Option<(Timestamp, i64)>,
    pub limit: Option<u32>,
}

/// The send log's writes and reads. Every write is one transaction, whatever the
/// number of rows.
#[async_trait]
pub trait SendLog: Send + Sync {
    /// Adds rows that do not exist yet (the key is unique) and returns those added.
    /// Pending rows are leased to `owner` until `lease_until`.
    async fn insert_sends(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> Result<Vec<SendRow>, StoreError>;
    /// Claims retrying rows whose time has come and pending rows whose lease expired.
    async fn claim_retries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
        limit: u32,
    ) -> Result<Vec<SendRow>, StoreError>;
    /// Records delivery outcomes.
    async fn record(&self, outcomes: &[Outcome], now: Timestamp) -> Result<(), StoreError>;
    /// The processes that hold pending claims.
    async fn lease_holders(&self) -> Result<Vec<String>, StoreError>;
    /// Makes `owner`'s pending claims claimable at once.
    async fn release_leases_of(&self, owner: &str) -> Result<(), StoreError>;
    /// Rows newest first (by `updated_at`, then id).
    async fn sends(&self, filter: &SendFilter) -> Result<Vec<SendRow>, StoreError>;
    /// (cadence, channel, status, count) over the whole send log.
    async fn send_counts(&self) -> Result<Vec<(String, String, String, i64)>, StoreError>;
    /// Sends pending or retrying, plus contacts with work due at `now`.
    async fn queue_depth(&self, now: Timestamp) -> Result<i64, StoreError>;
    /// Makes a `failed` or `retrying` row claimable at once (an owner's "retry now");
    /// `false` when the row is in neither state.
    async fn retry_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError>;
    /// (cadence, status, count) of `cadences`' rows updated since `since` (all: `None`).
    /// Each count is a range of the (cadence, status, updated_at) index, so it costs the
    /// rows counted and never a pass over the log.
    async fn cadence_counts(
        &self,
        cadences: &[String],
        statuses: &[SendStatus],
        since: Option<Timestamp>,
    ) -> Result<Vec<(String, SendStatus, i64)>, StoreError>;
}

/// Cadences counted by one statement (at most five statuses each).
const COUNTED_CADENCES: usize = 50;

/// The send log's statements that read the same on every backend; inserting,
/// claiming and recording are the backend's own where they differ.
#[async_trait]
impl<B: Backend> SendLog for B {
    async fn insert_sends(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> Result<Vec<SendRow>, StoreError> {
        self.insert(sends, now, lease_until, owner).await
    }

    async fn claim_retries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
        limit: u32,
    ) -> Result<Vec<SendRow>, StoreError> {
        let now = now.as_second();
        let mut q = QueryBuilder::new("UPDATE sends SET status = 'pending', lease_until = ");
        q.int(lease_until.as_second());
        q.push(", lease_owner = ").text(owner);
        q.push(", updated_at = ").int(now);
        q.push(
            " WHERE id IN (SELECT id FROM sends WHERE (status = 'retrying' AND next_attempt_at <= ",
        );
        q.int(now)
            .push(") OR (status = 'pending' AND lease_until < ")
            .int(now);
        q.push(") ORDER BY due_at LIMIT ").int(i64::from(limit));
        q.push(B::CLAIM_LOCK);
        q.push(format!(") RETURNING {SEND_COLUMNS}"));
        let mut tx = self.write().await?;
        let claimed = B::Db::fetch_all(&mut tx.tx, &mut q).await?;
        tx.commit().await?;
        rows::<B::Db, _>(&claimed, send_from_row::<B::Db>)
    }

    async fn record(&self, outcomes: &[Outcome], now: Timestamp) -> Result<(), StoreError> {
        self.record_outcomes(outcomes, now).await
    }

    async fn lease_holders(&self) -> Result<Vec<String>, StoreError> {
        let mut q = QueryBuilder::new(
            "SELECT DISTINCT lease_owner FROM sends WHERE status = 'pending' AND lease_owner IS NOT NULL",
        );
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        Ok(found
            .iter()
            .map(|r| B::Db::text(r, "lease_owner").map(str::to_owned))
            .collect::<Result<_, _>>()?)
    }

    async fn release_leases_of(&self, owner: &str) -> Result<(), StoreError> {
        let mut q = QueryBuilder::new(
            "UPDATE sends SET lease_until = 0 WHERE status = 'pending' AND lease_owner = ",
        );
        q.text(owner);
        let mut tx = self.write().await?;
        B::Db::execute(&mut tx.tx, &mut q).await?;
        tx.commit().await
    }

    async fn sends(&self, filter: &SendFilter) -> Result<Vec<SendRow>, StoreError> {
        let mut q = QueryBuilder::new(format!("SELECT {SEND_COLUMNS} FROM sends WHERE 1 = 1"));
        if let Some(since) = filter.since {
            q.push(" AND updated_at >= ").int(since.as_second());
        }
        if let Some(until) = filter.until {
            q.push(" AND updated_at < ").int(until.as_second());
        }
        if let Some(contact) = &filter.contact {
            q.push(" AND contact_id = ").text(contact);
        }
        if let Some(cadence) = &filter.cadence {
            // With a status too, the (cadence, status, updated_at) index yields the rows
            // in order; a cadence alone is a quarter of the log, read in order by time.
            let column = if filter.status.is_some() {
                "cadence"
            } else {
                "cadence || ''"
            };
            q.push(format!(" AND {column} = ")).text(cadence);
        }
        if let Some(status) = filter.status {
            q.push(" AND status = ").text(status.as_str());
        }
        if let Some(channel) = filter.channel {
            q.push(" AND channel = ").text(channel.as_str());
        }
        if let Some(contacts) = &filter.contacts {
            if contacts.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND contact_id IN (");
            for (i, id) in contacts.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.text(id);
            }
            q.push(")");
        }
        if let Some((at, id)) = filter.before {
            q.push(" AND (updated_at < ").int(at.as_second());
            q.push(" OR (updated_at = ").int(at.as_second());
            q.push(" AND id < ").int(id).push("))");
        }
        q.push(" ORDER BY updated_at DESC, id DESC");
        if let Some(limit) = filter.limit {
            q.push(" LIMIT ").int(i64::from(limit));
        }
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        rows::<B::Db, _>(&found, send_from_row::<B::Db>)
    }

    async fn send_counts(&self) -> Result<Vec<(String, String, String, i64)>, StoreError> {
        let mut q = QueryBuilder::new(
            "SELECT cadence, channel, status, COUNT(*) AS n FROM sends GROUP BY cadence, channel, status ORDER BY 1, 2, 3",
        );
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        let text = |r, c| B::Db::text(r, c).map(str::to_owned);
        Ok(found
            .iter()
            .map(|r| {
                Ok((
                    text(r, "cadence")?,
                    text(r, "channel")?,
                    text(r, "status")?,
                    B::Db::int(r, "n")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn retry_now(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::new("UPDATE sends SET status = 'retrying', next_attempt_at = ");
        q.int(now.as_second());
        q.push(", updated_at = ").int(now.as_second());
        q.push(" WHERE id = ").int(id);
        q.push(" AND status IN ('failed', 'retrying') RETURNING id");
        super::backend::write_returning(self, &mut q).await
    }

    async fn cadence_counts(
        &self,
        cadences: &[String],
        statuses: &[SendStatus],
        since: Option<Timestamp>,
    ) -> Result<Vec<(String, SendStatus, i64)>, StoreError> {
        let since = since.map_or(i64::MIN, Timestamp::as_second);
        let mut counts = Vec::new();
        let mut conn = self.pool().acquire().await?;
        // One statement of `SELECT ... UNION ALL` per chunk: SQLite allows 500 terms.
        if statuses.is_empty() {
            return Ok(counts);
        }
        for chunk in cadences.chunks(COUNTED_CADENCES) {
            let mut q = QueryBuilder::new("");
            for (i, (cadence, status)) in chunk
                .iter()
                .flat_map(|c| statuses.iter().map(move |s| (c, s)))
                .enumerate()
            {
                if i > 0 {
                    q.push(" UNION ALL ");
                }
                q.push("SELECT ").int(i as i64);
                q.push(" AS k, COUNT(*) AS n FROM sends WHERE cadence = ")
                    .text(cadence);
                q.push(" AND status = ").text(status.as_str());
                q.push(" AND updated_at >= ").int(since);
            }
            let found = B::Db::fetch_all(&mut conn, &mut q).await?;
            let per = statuses.len().max(1);
            for r in &found {
                let (k, n) = (B::Db::int(r, "k")? as usize, B::Db::int(r, "n")?);
                if n > 0
                    && let Some(cadence) = chunk.get(k / per)
                {
                    counts.push((cadence.clone(), statuses[k % per], n));
                }
            }
        }
        Ok(counts)
    }

    async fn queue_depth(&self, now: Timestamp) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::new(
            "SELECT (SELECT COUNT(*) FROM sends WHERE status IN ('pending', 'retrying')) \
             + (SELECT COUNT(*) FROM contacts WHERE next_due_at <= ",
        );
        q.int(now.as_second()).push(") AS n");
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_optional(&mut conn, &mut q).await?;
        Ok(found.map(|r| B::Db::int(&r, "n")).transpose()?.unwrap_or(0))
    }
}
