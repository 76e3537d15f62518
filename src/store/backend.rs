//! What a backend writes its own way, as one trait: the statements whose SQL differs
//! (multi-row `VALUES` or `UNNEST` arrays, row locks), how a write transaction starts,
//! the group lock and the bulk writer. Every other statement is written once, over
//! [`Sql`], and the store's traits are implemented for every `Backend`.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{Pool, Postgres, QueryBuilder};

use super::queue::DuePosition;
use super::sql::{Bind, Sql, Write};
use super::{BulkWriter, Contacts, NewSend, NextDue, Outcome, SendRow, Store, StoreError};
use crate::domain::{Channel, Choices, EmailAddress, History};

/// Ids bound in one `IN (...)` list; SQLite allows 32766 bound values a statement.
pub(crate) const BATCH: usize = 500;

#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Sql;
    /// What follows the claim's row selection: PostgreSQL skips rows another instance
    /// is claiming instead of waiting for them.
    const CLAIM_LOCK: &'static str;
    /// Follows a text expression to compare it in byte order (as the search indexes
    /// are built), where that is not the database's default.
    const TEXT_ORDER: &'static str;
    fn pool(&self) -> &Pool<Self::Db>;
    /// Starts a write transaction.
    async fn write(&self) -> Result<Write<Self::Db>, StoreError>;
    /// [`SendLog::insert_sends`](super::SendLog::insert_sends).
    async fn insert(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> Result<Vec<SendRow>, StoreError>;
    /// [`SendLog::record`](super::SendLog::record).
    async fn record_outcomes(&self, outcomes: &[Outcome], now: Timestamp)
    -> Result<(), StoreError>;
    /// Sets `next_due_at` of `ids` (not empty) to `mark`, and arms them and their events.
    async fn mark(&self, ids: &[String], mark: i64, now: Timestamp) -> Result<(), StoreError>;
    /// Sets the due times where a contact still carries `mark`.
    async fn set_due(&self, updates: &[NextDue], mark: i64) -> Result<(), StoreError>;
    /// [`Store::exclusive`].
    async fn try_lock(&self, name: &str) -> Result<Option<Exclusive>, StoreError>;
    /// [`Contacts::writer`].
    async fn writer(&self) -> Result<Box<dyn BulkWriter>, StoreError>;
    /// [`Contacts::contact_zones`].
    async fn zones(&self, ids: &[String]) -> Result<HashMap<String, Option<String>>, StoreError>;
    /// A page of [`DueQueue::next_due`](super::DueQueue::next_due): through sqlx,
    /// unless the backend reads it its own way.
    async fn due_page(
        &self,
        now: i64,
        after: &DuePosition,
        limit: u32,
    ) -> Result<Vec<DuePosition>, StoreError>
    where
        Self: Sized,
    {
        super::queue::read_due_page(self, now, after, limit).await
    }
    /// [`DueQueue::history`](super::DueQueue::history): through sqlx, unless the
    /// backend reads them its own way.
    async fn histories(&self, ids: &[String]) -> Result<Vec<History>, StoreError>
    where
        Self: Sized,
    {
        super::queue::read_histories(self, ids).await
    }
}

/// Runs `q`, a statement ending in `RETURNING ...`, in a write transaction of its own;
/// whether it touched a row.
pub(crate) async fn write_returning<B: Backend>(
    store: &B,
    q: &mut QueryBuilder<B::Db>,
) -> Result<bool, StoreError> {
    let mut tx = store.write().await?;
    let found = B::Db::fetch_optional(&mut tx.tx, q).await?;
    tx.commit().await?;
    Ok(found.is_some())
}

/// Held while one process of the group does a job (a CSV sync); let go when dropped.
#[must_use = "the job is exclusive only while the guard lives"]
pub enum Exclusive {
    /// SQLite: one file on one machine, whose writes take turns already.
    SingleFile,
    /// A PostgreSQL session advisory lock, held by a connection of its own. Dropping
    /// the guard closes that connection, which releases the lock, as does the death of
    /// the process.
    AdvisoryLock(sqlx::pool::PoolConnection<Postgres>),
}

#[async_trait]
impl<B: Backend> Contacts for B {
    async fn writer(&self) -> Result<Box<dyn BulkWriter>, StoreError> {
        Backend::writer(self).await
    }

    async fn contact_zones(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>, StoreError> {
        self.zones(ids).await
    }

    async fn set_choices(
        &self,
        contact: &str,
        choices: &Choices,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::new("UPDATE contacts SET declined = ");
        q.text(&choices.declined_text()).push(", paused_until = ");
        match choices.paused_until {
            Some(until) => q.int(until.as_second()),
            None => q.push("NULL"),
        };
        q.push(", updated_at = ").int(now.as_second());
        q.push(", next_due_at = 0 WHERE id = ").text(contact);
        q.push(" RETURNING id");
        write_returning(self, &mut q).await
    }

    async fn set_opt_out(
        &self,
        contact: &str,
        channel: Channel,
        opted_out: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let column = match channel {
            Channel::Email => "email_opt_out",
            Channel::Postcard => "postcard_opt_out",
        };
        let mut q = QueryBuilder::new(format!("UPDATE contacts SET {column} = "));
        q.flag(opted_out);
        q.push(", updated_at = ").int(now.as_second());
        q.push(", next_due_at = 0 WHERE id = ").text(contact);
        q.push(" RETURNING email");
        let mut tx = self.write().await?;
        let Some(found) = B::Db::fetch_optional(&mut tx.tx, &mut q).await? else {
            return Ok(false);
        };
        // An email unsubscribe also lists the address, so that another contact with
        // it, or this one imported again, gets nothing; a resubscribe takes back only
        // that entry, never a bounce's or a complaint's.
        let address = B::Db::opt_text(&found, "email")?.and_then(|e| EmailAddress::parse(e).ok());
        if let (Channel::Email, Some(address)) = (channel, address) {
            let key = address.suppression_key();
            let mut q = QueryBuilder::new(if opted_out {
                "INSERT INTO suppressions (address, reason, detail, added_at) VALUES ("
            } else {
                "DELETE FROM suppressions WHERE reason = 'unsubscribed' AND address = "
            });
            q.text(&key);
            if opted_out {
                q.push(", 'unsubscribed', ")
                    .text(&format!("contact {contact}"));
                q.push(", ").int(now.as_second());
                q.push(") ON CONFLICT (address) DO NOTHING");
            }
            B::Db::execute(&mut tx.tx, &mut q).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut q = QueryBuilder::new("SELECT value FROM meta WHERE key = ");
        q.text(key);
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_optional(&mut conn, &mut q).await?;
        Ok(found
            .map(|r| B::Db::text(&r, "value").map(str::to_owned))
            .transpose()?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut q = QueryBuilder::new("INSERT INTO meta (key, value) VALUES (");
        q.text(key).push(", ").text(value);
        q.push(") ON CONFLICT (key) DO UPDATE SET value = excluded.value");
        let mut tx = self.write().await?;
        B::Db::execute(&mut tx.tx, &mut q).await?;
        tx.commit().await
    }

    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        self.try_lock(name).await
    }
}
