//! Storage: contacts, events, the send log, and the per-contact `next_due_at` that
//! lets a tick touch only contacts with work due. Callers see traits by who uses them
//! ([`SendLog`], [`DueQueue`], [`Contacts`], [`Suppressions`]..., bundled in [`Store`]); SQLite (embedded)
//! and PostgreSQL (shared) implement them with one set of queries over [`sqlx`], each
//! adding only the statements it writes its own way (`backend::Backend`).

mod backend;
mod bulk;
pub mod copy;
mod error;
mod kept;
mod log;
mod people;
mod postgres;
mod postgres_writer;
mod queue;
mod sql;
mod sqlite;
mod sqlite_conn;
mod sqlite_contacts;
mod sqlite_history;
mod sqlite_writer;
mod suppress;
mod upsert_sql;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use jiff::Timestamp;

use crate::domain::{Channel, Choices};

pub use backend::Exclusive;
pub use bulk::{
    BulkWriter, ContactColumns, ContactLookup, ContactUpsert, EventUpsert, KnownContact,
};
pub use error::StoreError;
pub(crate) use error::ts;
pub use kept::{Kept, TestSend};
pub use log::{NewSend, Outcome, SendFilter, SendLog, SendRow};
pub use people::People;
use postgres::PostgresStore;
pub use queue::{DueQueue, NextDue, PassToken};
use sqlite::SqliteStore;
pub use suppress::Suppressions;

/// Writes contacts and events, and reads what an import needs to know of them.
#[async_trait]
pub trait Contacts: Send + Sync {
    /// This process's writer of contacts and events: one transaction, committed by
    /// `commit`, in which an import or an API call writes its rows chunk by chunk.
    async fn writer(&self) -> Result<Box<dyn BulkWriter>, StoreError>;
    /// The stored time zone (`None`: the business's) of each id that exists.
    async fn contact_zones(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>, StoreError>;
    /// Keeps a customer's choices from their preferences page; `false` when the contact
    /// does not exist.
    async fn set_choices(
        &self,
        contact: &str,
        choices: &Choices,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Sets an opt-out flag; `false` when the contact does not exist. An email opt-out
    /// also lists the address as `unsubscribed`; opting back in takes that entry off.
    async fn set_opt_out(
        &self,
        contact: &str,
        channel: Channel,
        opted_out: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// The whole store, for the daemon, the CLI and the HTTP endpoint that hold one
/// `Arc<dyn Store>`: the send log, the due queue and the contacts, plus a few settings
/// and the group lock.
#[async_trait]
pub trait Store: SendLog + DueQueue + Contacts + People + Kept + Suppressions {
    async fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Work that one process of the group does at a time (a CSV sync): `None` when
    /// another process holds `name` now; else a guard that holds it until dropped.
    async fn exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError>;
}

/// Opens the database named by `url`, applying pending migrations.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(url)
            .await
            .with_context(|| format!("cannot open database {url}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::open(url)
            .await
            .with_context(|| format!("cannot open database {}", redact(url)))?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!("database {url}: use sqlite://PATH or postgres://...")
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
