//! Storage: contacts, events, the send log, and the per-contact `next_due_at` that
//! lets a tick touch only contacts with work due. Behind the [`Store`] trait so that
//! SQLite (embedded) and PostgreSQL (shared) backends are interchangeable.

pub mod copy;
mod postgres;
mod postgres_import;
mod sqlite;
mod sqlite_contacts;
mod sqlite_import;
mod staging;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use jiff::Timestamp;

use crate::domain::{Channel, Contact, Event, SendKey, SendStatus};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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

#[async_trait]
pub trait Store: Send + Sync {
    /// Starts an import: one write transaction for many batches.
    async fn begin_import(&self) -> anyhow::Result<Box<dyn ImportTx>>;
    /// Upserts contacts in one transaction; returns how many rows changed.
    async fn upsert_contacts(
        &self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let mut tx = self.begin_import().await?;
        let changed = tx.upsert_contacts(contacts, now).await?;
        tx.commit().await?;
        Ok(changed)
    }
    /// The stored time zone (`None`: the business's) of each id that exists.
    async fn contact_zones(
        &self,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, Option<String>>>;
    /// Upserts events in one transaction; returns how many rows changed.
    async fn upsert_events(&self, events: &[EventUpsert], now: Timestamp) -> anyhow::Result<u64> {
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

pub(crate) fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
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
