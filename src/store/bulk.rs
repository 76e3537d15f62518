//! The writer that every write of contacts and events goes through (an import, an API
//! call), and the rows it takes. A backend gives a thin writer of chunks; how a file's
//! rows are staged, sorted and resolved into those chunks is `sync`'s business.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::domain::Contact;

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

/// An event to write: resolved, its custom columns already JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventUpsert {
    pub contact_id: String,
    pub id: String,
    pub kind: String,
    pub at: Timestamp,
    pub fields: String,
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
        let fields = c.fields.as_json().to_owned();
        let mut hash = Sha256::new();
        let email = c.email.as_ref().map(|e| e.as_str()).unwrap_or_default();
        for part in [
            c.first_name.as_str(),
            &c.last_name,
            email,
            &c.address.line1,
            &c.address.line2,
            &c.address.city,
            &c.address.region,
            &c.address.postal_code,
            &c.address.country,
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

/// What a writer's lookup knows of a contact that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownContact {
    /// Its stored time zone; `None`: the business's.
    pub zone: Option<String>,
    /// Whether it is due already, so that a changed event need not wake it.
    pub due: bool,
    /// Whether no pass has looked at it yet: an event written now is first seen with it
    /// (stored as [`WITH_CONTACT`](super::queue::WITH_CONTACT)) rather than armed by the
    /// pass on its own.
    pub unseen: bool,
}

/// Finds each event's contact in `known` (in id order), given events in contact order.
pub(crate) struct KnownWalk<'a> {
    known: &'a mut [(String, KnownContact)],
    next: usize,
}

impl<'a> KnownWalk<'a> {
    pub(crate) fn new(known: &'a mut [(String, KnownContact)]) -> KnownWalk<'a> {
        KnownWalk { known, next: 0 }
    }

    /// The contact `id`, if known; ids asked for must not go down.
    pub(crate) fn find(&mut self, id: &str) -> Option<&mut KnownContact> {
        while self.next < self.known.len() && self.known[self.next].0.as_str() < id {
            self.next += 1;
        }
        match self.known.get_mut(self.next) {
            Some((known, contact)) if known == id => Some(contact),
            _ => None,
        }
    }
}

impl KnownContact {
    /// The `armed_at` a new event of this contact is stored with: first seen with the
    /// contact if no pass has seen it, else none (the next pass that reads it arms it).
    pub(crate) fn armed_with(contact: Option<&KnownContact>) -> Option<i64> {
        contact
            .filter(|c| c.unseen)
            .map(|_| super::queue::WITH_CONTACT)
    }
}

/// Finds the contacts that events name. It runs on a thread of its own (it may block)
/// beside the writer that gave it, and sees the contacts as that writer does.
pub trait ContactLookup: Send {
    /// Those of `ids` (distinct, in order) that exist, in that order.
    fn find(&mut self, ids: &[&str]) -> Result<Vec<(String, KnownContact)>, StoreError>;
}

/// Writes of contacts and events in one transaction: nothing is visible before
/// `commit`, and nothing stays if the writer is dropped uncommitted. A changed contact,
/// and the contact of a changed event, is looked at by the next tick.
#[async_trait]
pub trait BulkWriter: Send {
    /// Upserts contacts; returns how many rows changed.
    async fn contacts(
        &mut self,
        rows: Vec<ContactUpsert>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Upserts events, given in (contact, id) order; returns how many rows changed.
    /// `known` holds their contacts as this writer's lookup found them, in id order (or
    /// nothing, when they were not looked up).
    async fn events(
        &mut self,
        events: Vec<EventUpsert>,
        known: Vec<(String, KnownContact)>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Says that `rows` event rows of an import will be looked up: a backend for which
    /// reading every contact then costs less than finding each may start reading now.
    async fn expect_lookups(&mut self, rows: usize) -> Result<(), StoreError> {
        let _ = rows;
        Ok(())
    }
    /// Where the contacts of this writer's events are found.
    async fn lookup(&mut self) -> Result<Box<dyn ContactLookup>, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
