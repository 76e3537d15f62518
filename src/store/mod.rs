//! Storage: contacts, events, the send log, and the per-contact `next_due_at` that
//! lets a tick touch only contacts with work due. Callers see traits by who uses them
//! ([`SendLog`], [`DueQueue`], [`Contacts`], bundled in [`Store`]); SQLite (embedded)
//! and PostgreSQL (shared) implement them with one set of queries over [`sqlx`], each
//! adding only the statements it writes its own way (`backend::Backend`).

mod backend;
pub mod copy;
mod error;
mod log;
mod postgres;
mod postgres_import;
mod queue;
mod sql;
mod sqlite;
mod sqlite_contacts;
mod sqlite_import;
mod staging;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use jiff::Timestamp;

use crate::domain::{Channel, Contact, Event};

pub use backend::Exclusive;
pub use error::StoreError;
pub(crate) use error::ts;
pub use log::{NewSend, Outcome, SendFilter, SendLog, SendRow};
use postgres::PostgresStore;
pub use queue::{DueQueue, History, NextDue, PassToken};
use sqlite::SqliteStore;

/// A contact as a CSV row or an API call gives it: empty opt-out columns leave the
/// stored value unchanged.
#[derive(Clone, Debug)]
pub struct ContactUpsert {
    pub contact: Contact,
    pub email_opt_out: Option<bool>,
    pub postcard_opt_out: Option<bool>,
    /// Derived from `contact` when it was checked (on an import's reader thread).
    pub columns: ContactColumns,
}

impl ContactUpsert {
    pub fn new(
        contact: Contact,
        email_opt_out: Option<bool>,
        postcard_opt_out: Option<bool>,
    ) -> Result<ContactUpsert, String> {
        let columns = ContactColumns::of(&contact).map_err(|e| e.to_string())?;
        Ok(ContactUpsert {
            contact,
            email_opt_out,
            postcard_opt_out,
            columns,
        })
    }
}

/// An event row as a file or an API call gives it, checked on its own: its time (a
/// plain date is the start of that day in the contact's zone) and so its id (derived
/// from kind and time when none is given) wait until its contact is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    pub contact_id: String,
    pub id: Option<String>,
    pub kind: String,
    pub at: String,
    /// The custom columns as a JSON object, as they are stored.
    pub fields: String,
}

impl PendingEvent {
    /// The event as stored, its time placed in its contact's `zone`.
    pub fn resolve(self, zone: &jiff::tz::TimeZone) -> Result<EventUpsert, String> {
        let at = crate::domain::contact::parse_instant(&self.at, zone)
            .map_err(|m| format!("at: {m}"))?;
        Ok(EventUpsert {
            id: self.id.unwrap_or_else(|| Event::derived_id(&self.kind, at)),
            contact_id: self.contact_id,
            kind: self.kind,
            at,
            fields: self.fields,
        })
    }
}

/// An event to write: resolved, its custom columns already JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventUpsert {
    pub contact_id: String,
    pub id: String,
    pub kind: String,
    pub at: Timestamp,
    pub fields: String,
}

/// Resolves a chunk of staged event rows (every row of each of its contacts, in line
/// order) given the stored zone of each contact that exists (`None`: the business's),
/// and returns the events to write, in (contact, id) order.
pub type ResolveEvents<'a> = dyn FnMut(Vec<(u64, PendingEvent)>, &HashMap<String, Option<String>>) -> Vec<EventUpsert>
    + Send
    + 'a;

/// The writes of one import, in one transaction: valid rows go in batch by batch as
/// the file is read, nothing is visible before `commit`, and nothing stays if the
/// import is dropped uncommitted.
#[async_trait]
pub trait ImportTx: Send {
    /// Upserts contacts; returns how many rows changed. A changed contact is looked
    /// at by the next tick.
    async fn upsert_contacts(
        &mut self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64>;
    /// Upserts events; returns how many rows changed. The contact of a changed event
    /// is looked at by the next tick.
    async fn upsert_events(
        &mut self,
        events: &[EventUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64>;
    /// Holds event rows of a file, with their lines, until `write_staged_events`. A
    /// large file's events come in no useful order; written as they come, each would
    /// land at a random place of the events index, and at millions of rows that index
    /// no longer fits in memory.
    async fn stage_events(&mut self, rows: Vec<(u64, PendingEvent)>) -> anyhow::Result<()>;
    /// Writes every staged event, contact by contact in id order: `resolve` gets the
    /// rows of a few thousand contacts at a time and says what to write. Returns how
    /// many rows changed; a contact of a changed event is looked at by the next tick.
    async fn write_staged_events(
        &mut self,
        resolve: &mut ResolveEvents<'_>,
        now: Timestamp,
    ) -> anyhow::Result<u64>;
    async fn commit(self: Box<Self>) -> anyhow::Result<()>;
}

/// Writes contacts and events, and reads what an import needs to know of them.
#[async_trait]
pub trait Contacts: Send + Sync {
    /// Starts an import: one write transaction for many batches.
    async fn begin_import(&self) -> Result<Box<dyn ImportTx>, StoreError>;
    /// Upserts contacts in one transaction; returns how many rows changed.
    async fn upsert_contacts(
        &self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_import().await?;
        let changed = tx.upsert_contacts(contacts, now).await?;
        tx.commit().await?;
        Ok(changed)
    }
    /// The stored time zone (`None`: the business's) of each id that exists.
    async fn contact_zones(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Option<String>>, StoreError>;
    /// Upserts events in one transaction; returns how many rows changed.
    async fn upsert_events(
        &self,
        events: &[EventUpsert],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_import().await?;
        let changed = tx.upsert_events(events, now).await?;
        tx.commit().await?;
        Ok(changed)
    }
    /// Sets an opt-out flag; `false` when the contact does not exist.
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
pub trait Store: SendLog + DueQueue + Contacts {
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

/// Runs SQLite work that may wait on disk or on another writer's lock without holding
/// up the runtime's other tasks (where the runtime can spare the thread).
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The stored form of a contact's structured columns, and a fingerprint of its imported
/// values, so that re-importing an unchanged row writes nothing and wakes nothing.
#[derive(Clone, Debug)]
pub struct ContactColumns {
    pub birthday: Option<String>,
    /// `;`-separated.
    pub tags: String,
    /// JSON object of the custom columns.
    pub fields: String,
    pub digest: String,
}

impl ContactColumns {
    pub fn of(c: &Contact) -> anyhow::Result<ContactColumns> {
        use sha2::{Digest, Sha256};
        let birthday = c.birthday.map(|b| b.to_string());
        let tags = c.tags.join(";");
        let fields = serde_json::to_string(&c.fields)?;
        let mut hash = Sha256::new();
        let email = c.email.as_ref().map(|e| e.as_str()).unwrap_or_default();
        for part in [
            c.first_name.as_str(),
            &c.last_name,
            email,
            &c.address_line1,
            &c.address_line2,
            &c.city,
            &c.region,
            &c.postal_code,
            &c.country,
            birthday.as_deref().unwrap_or_default(),
            c.timezone.as_deref().unwrap_or_default(),
            &tags,
            &fields,
        ] {
            hash.update(part.as_bytes());
            hash.update([0u8]);
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = hash.finalize()[..12]
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            .map(char::from)
            .collect();
        Ok(ContactColumns {
            birthday,
            tags,
            fields,
            digest,
        })
    }
}

/// Splits `rows` into runs in which no key repeats, in order: one multi-row upsert per
/// run then does what one statement per row would (a later row with the same key
/// updates the earlier one), and PostgreSQL never meets a key twice in one statement.
pub(crate) fn runs<'a, T, K: Eq + std::hash::Hash>(
    rows: &'a [T],
    max: usize,
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a [T]> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut start = 0;
    for (i, row) in rows.iter().enumerate() {
        if i - start == max || !seen.insert(key(row)) {
            out.push(&rows[start..i]);
            start = i;
            seen.clear();
            seen.insert(key(row));
        }
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}
