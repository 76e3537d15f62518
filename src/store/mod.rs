//! Storage: contacts, events, the send log, and the per-contact `next_due_at` that
//! lets a tick touch only contacts with work due. Behind the [`Store`] trait so that
//! SQLite (embedded) and PostgreSQL (shared) backends are interchangeable.

mod bulk;
pub mod copy;
mod postgres;
mod postgres_writer;
mod sqlite;
mod sqlite_conn;
mod sqlite_contacts;
mod sqlite_writer;
mod upsert_sql;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use jiff::Timestamp;

use crate::domain::{Channel, Contact, Event, SendKey, SendStatus};

pub use bulk::{
    BulkWriter, ContactColumns, ContactLookup, ContactUpsert, EventUpsert, KnownContact,
};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A contact with everything the planner needs to know about it.
#[derive(Clone, Debug)]
pub struct History {
    pub contact: Contact,
    pub events: Vec<Event>,
    /// (cadence, occurrence) of every send-log row of the contact.
    pub logged: HashSet<(String, String)>,
    /// (cadence, when) of each send sent or being sent, for the frequency cap.
    pub delivered: Vec<(String, Timestamp)>,
}

/// The histories of a chunk of contacts as a backend reads them (contacts, then events
/// and send-log rows in any order), kept in the chunk's order. They stay in place while
/// filled in: a map of whole histories grew by copying a few hundred kilobytes of fresh
/// memory a page.
pub(crate) struct Gathering<'a> {
    place: HashMap<&'a str, usize>,
    found: Vec<Option<History>>,
}

impl<'a> Gathering<'a> {
    pub(crate) fn new(ids: &'a [String]) -> Gathering<'a> {
        Gathering {
            place: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect(),
            found: ids.iter().map(|_| None).collect(),
        }
    }

    pub(crate) fn contact(&mut self, contact: Contact) {
        if let Some(&i) = self.place.get(contact.id.as_str()) {
            self.found[i] = Some(History {
                contact,
                events: Vec::new(),
                logged: HashSet::new(),
                delivered: Vec::new(),
            });
        }
    }

    pub(crate) fn event(&mut self, event: Event) {
        if let Some(h) = self.get(&event.contact_id) {
            h.events.push(event);
        }
    }

    /// A send-log row of `contact`.
    pub(crate) fn logged(
        &mut self,
        contact: &str,
        cadence: String,
        occurrence: String,
        status: &str,
        updated_at: Timestamp,
    ) {
        if let Some(h) = self.get(contact) {
            if status == SendStatus::Sent.as_str() || status == SendStatus::Pending.as_str() {
                h.delivered.push((cadence.clone(), updated_at));
            }
            h.logged.insert((cadence, occurrence));
        }
    }

    fn get(&mut self, contact: &str) -> Option<&mut History> {
        let i = *self.place.get(contact)?;
        self.found[i].as_mut()
    }

    /// The histories of the contacts found, in the chunk's order.
    pub(crate) fn finish(self) -> impl Iterator<Item = History> {
        self.found.into_iter().flatten()
    }
}

/// A due contact and its place in a pass through the due contacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuePosition {
    pub next_due_at: i64,
    pub id: String,
}

impl Default for DuePosition {
    /// Before every contact.
    fn default() -> DuePosition {
        DuePosition {
            next_due_at: i64::MIN,
            id: String::new(),
        }
    }
}

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
#[derive(Clone, Debug, serde::Serialize)]
pub struct SendRow {
    #[serde(skip)]
    pub id: i64,
    pub contact: String,
    pub cadence: String,
    pub occurrence: String,
    pub channel: String,
    pub status: String,
    pub reason: Option<String>,
    pub due_at: String,
    pub attempts: i64,
    pub message_id: String,
    pub reply: Option<String>,
    pub next_attempt_at: Option<String>,
    pub updated_at: String,
    /// When the row was added: for a send, its first attempt. The message's `Date:` and
    /// the start of its retry period, the same on every attempt.
    #[serde(skip)]
    pub created_at: Timestamp,
    #[serde(skip)]
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
    pub limit: Option<u32>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// This process's writer of contacts and events: one transaction, committed by
    /// `commit`, in which an import or an API call writes its rows chunk by chunk.
    async fn writer(&self) -> anyhow::Result<Box<dyn BulkWriter>>;
    /// The stored time zone (`None`: the business's) of each id that exists.
    async fn contact_zones(
        &self,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, Option<String>>>;
    /// Sets an opt-out flag; `false` when the contact does not exist.
    async fn set_opt_out(
        &self,
        contact: &str,
        channel: Channel,
        opted_out: bool,
        now: Timestamp,
    ) -> anyhow::Result<bool>;
    /// Contacts whose `next_due_at` has come, in (next_due_at, id) order after
    /// `after`: a range of an index, however many contacts are not due.
    async fn due_contacts(
        &self,
        now: Timestamp,
        after: &DuePosition,
        limit: u32,
    ) -> anyhow::Result<Vec<DuePosition>>;
    /// Every contact in id order after `after`, for looking far ahead.
    async fn contact_ids(&self, after: &str, limit: u32) -> anyhow::Result<Vec<String>>;
    async fn history(&self, ids: &[String]) -> anyhow::Result<Vec<History>>;
    /// Adds rows that do not exist yet (the key is unique) and returns those added.
    /// Pending rows are leased to `owner` until `lease_until`.
    async fn insert_sends(
        &self,
        sends: &[NewSend],
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
    ) -> anyhow::Result<Vec<SendRow>>;
    /// Marks the contacts a pass is about to look at with `mark` (a negative number of
    /// its own, so they stay due). Anything that changes a contact afterwards (an
    /// import, an opt-out) replaces the mark, and `set_next_due` then leaves it due.
    /// Those contacts and their events not seen before are first seen at `now` (a
    /// contact that is new or has new events is due, so this is where a pass meets
    /// them).
    async fn mark_due(&self, ids: &[String], mark: i64, now: Timestamp) -> anyhow::Result<()>;
    /// Sets each contact's next due time, where the contact still carries `mark`: a
    /// contact changed since the pass read it is looked at again, not put to sleep.
    async fn set_next_due(
        &self,
        updates: &[(String, Option<Timestamp>)],
        mark: i64,
    ) -> anyhow::Result<()>;
    /// Claims retrying rows whose time has come and pending rows whose lease expired.
    async fn claim_retries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        owner: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<SendRow>>;
    /// Owners of pending claims.
    async fn lease_owners(&self) -> anyhow::Result<Vec<String>>;
    /// Makes `owner`'s pending claims claimable at once.
    async fn release_leases(&self, owner: &str) -> anyhow::Result<()>;
    /// Records delivery outcomes in one transaction.
    async fn record(&self, outcomes: &[Outcome], now: Timestamp) -> anyhow::Result<()>;
    async fn sends(&self, filter: &SendFilter) -> anyhow::Result<Vec<SendRow>>;
    async fn meta(&self, key: &str) -> anyhow::Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> anyhow::Result<()>;
    /// (cadence, channel, status, count) over the whole send log.
    async fn send_counts(&self) -> anyhow::Result<Vec<(String, String, String, i64)>>;
    /// Sends pending or retrying, plus contacts with work due at `now`.
    async fn queue_depth(&self, now: Timestamp) -> anyhow::Result<i64>;
    /// Makes the next tick look at every contact (after the cadences changed).
    async fn mark_all_due(&self) -> anyhow::Result<()>;
    /// Work that one process of the group does at a time (a CSV sync): `None` when
    /// another process holds `name` now; else a guard that holds it until dropped.
    async fn exclusive(&self, name: &str) -> anyhow::Result<Option<Exclusive>>;
}

/// Holds an `exclusive` lock until dropped.
pub type Exclusive = Box<dyn Send + Sync>;

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

pub(crate) fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
}
