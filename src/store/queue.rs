//! The due queue: each contact's `next_due_at`, which lets a pass read only the
//! contacts with work due, and the histories the planner needs about them.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::{BATCH, Backend};
use super::sql::{
    Bind, CONTACT_COLUMNS, Columns, EVENT_COLUMNS, Sql, SqlxRow, contact_from, event_from_row,
    in_list, rows,
};
use crate::domain::{Choices, Contact, Event, History, SendStatus};

/// A contact and when a pass should look at it again (`None`: never).
pub type NextDue = (String, Option<Timestamp>);

/// One pass through the due contacts, as the store hands it out: how far the pass has
/// read, and the mark it leaves on the contacts it is looking at.
///
/// The mark is a negative `next_due_at` of the pass's own, below every due time the
/// pass has met, so the contacts it marks stay due but sort before the pages still to
/// come. Anything that changes a contact meanwhile (an import, an opt-out) replaces the
/// mark, and `set_next_due` then leaves that contact due for the next pass.
#[derive(Clone, Debug)]
pub struct PassToken {
    pub(crate) after: DuePosition,
    pub(crate) mark: i64,
}

impl PassToken {
    fn new() -> PassToken {
        PassToken {
            after: DuePosition::default(),
            mark: -1 - i64::from(fastrand::u32(..)),
        }
    }

    /// Moves past `page` (in due order), keeping the mark below all of it.
    pub(crate) fn advance(&mut self, page: &[DuePosition]) {
        if let Some(first) = page.first() {
            self.mark = self.mark.min(first.next_due_at.saturating_sub(1));
        }
        if let Some(last) = page.last() {
            self.after = last.clone();
        }
    }
}

/// A due contact and its place in a pass through the due contacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DuePosition {
    pub(crate) next_due_at: i64,
    pub(crate) id: String,
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

/// What a pass asks of the store: which contacts are due, their histories, and when
/// to look at each again.
#[async_trait]
pub trait DueQueue: Send + Sync {
    /// Starts a pass through the due contacts.
    fn begin_pass(&self) -> PassToken {
        PassToken::new()
    }
    /// The next contacts whose `next_due_at` has come, in (next_due_at, id) order after
    /// those `pass` has read: a range of an index, however many contacts are not due.
    async fn next_due(
        &self,
        pass: &mut PassToken,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Marks the contacts `pass` is about to look at. Those contacts and their events
    /// not seen before are first seen at `now` (a contact that is new or has new events
    /// is due, so this is where a pass meets them).
    async fn mark_due(
        &self,
        ids: &[String],
        pass: &PassToken,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Sets each contact's next due time, where the contact still carries the mark of
    /// `pass`: a contact changed since the pass read it is looked at again, not put to
    /// sleep.
    async fn set_next_due(&self, updates: &[NextDue], pass: &PassToken) -> Result<(), StoreError>;
    /// Makes the next pass look at every contact (after the cadences changed).
    async fn mark_all_due(&self) -> Result<(), StoreError>;
    /// Every contact in id order after `after`, for looking far ahead.
    async fn contact_ids(&self, after: &str, limit: u32) -> Result<Vec<String>, StoreError>;
    /// The histories of the contacts of `ids` that exist, in that order.
    async fn history(&self, ids: &[String]) -> Result<Vec<History>, StoreError>;
}

/// The due queue's statements that read the same on every backend; marking and
/// setting due times are the backend's own.
#[async_trait]
impl<B: Backend> DueQueue for B {
    async fn next_due(
        &self,
        pass: &mut PassToken,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let page = self.due_page(now.as_second(), &pass.after, limit).await?;
        pass.advance(&page);
        Ok(page.into_iter().map(|d| d.id).collect())
    }

    async fn mark_due(
        &self,
        ids: &[String],
        pass: &PassToken,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.mark(ids, pass.mark, now).await
    }

    async fn set_next_due(&self, updates: &[NextDue], pass: &PassToken) -> Result<(), StoreError> {
        self.set_due(updates, pass.mark).await
    }

    async fn mark_all_due(&self) -> Result<(), StoreError> {
        // Rows already due are left as they are (after an import, every row is):
        // rewriting them, and their entries in the due index, would change nothing.
        let mut q = QueryBuilder::new(
            "UPDATE contacts SET next_due_at = 0 WHERE next_due_at IS NULL OR next_due_at <> 0",
        );
        let mut tx = self.write().await?;
        B::Db::execute(&mut tx.tx, &mut q).await?;
        tx.commit().await
    }

    async fn contact_ids(&self, after: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let mut q = QueryBuilder::new("SELECT id FROM contacts WHERE id > ");
        q.text(after)
            .push(" ORDER BY id LIMIT ")
            .int(i64::from(limit));
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        Ok(found
            .iter()
            .map(|r| B::Db::text(r, "id").map(str::to_owned))
            .collect::<Result<_, _>>()?)
    }

    async fn history(&self, ids: &[String]) -> Result<Vec<History>, StoreError> {
        self.histories(ids).await
    }
}

/// The heads of a history read's statements; an `IN` list of ids completes each.
/// The next `limit` due contacts after `after`, in (next_due_at, id) order: a range of
/// the due index. Its binds are `now`, `after` and `limit`, in that order.
pub(crate) fn due_page_query<DB: Sql>(
    now: i64,
    after: &DuePosition,
    limit: u32,
) -> QueryBuilder<DB> {
    let mut q = QueryBuilder::new("SELECT next_due_at, id FROM contacts WHERE next_due_at <= ");
    q.int(now);
    q.push(" AND (next_due_at, id) > (").int(after.next_due_at);
    q.push(", ").text(&after.id);
    q.push(") ORDER BY next_due_at, id LIMIT ")
        .int(i64::from(limit));
    q
}

/// [`due_page_query`] through sqlx.
pub(crate) async fn read_due_page<B: Backend>(
    store: &B,
    now: i64,
    after: &DuePosition,
    limit: u32,
) -> Result<Vec<DuePosition>, StoreError> {
    let mut q = due_page_query::<B::Db>(now, after, limit);
    let mut conn = store.pool().acquire().await?;
    let found = B::Db::fetch_all(&mut conn, &mut q).await?;
    rows::<B::Db, _>(&found, due_from_row::<B::Db>)
}

pub(crate) fn history_heads() -> [String; 3] {
    [
        format!("SELECT {CONTACT_COLUMNS}, declined, paused_until FROM contacts WHERE id IN ("),
        format!("SELECT {EVENT_COLUMNS} FROM events WHERE contact_id IN ("),
        "SELECT contact_id, cadence, occurrence, status, updated_at FROM sends WHERE contact_id IN ("
            .to_owned(),
    ]
}

/// `events.armed_at` of an event written before any pass had seen its contact: it is
/// first seen with the contact, and takes the contact's `armed_at` when read. So the
/// first pass after a large import need not rewrite every event to arm it.
pub(crate) const WITH_CONTACT: i64 = 0;

/// Whether any address is suppressed: an empty list (a new user's first pass) costs
/// one probe, not one lookup per chunk.
pub(crate) const ANY_SUPPRESSED: &str = "SELECT 1 AS one FROM suppressions LIMIT 1";
/// The head of the suppressions of a list of addresses.
pub(crate) const SUPPRESSED_HEAD: &str =
    "SELECT address, reason FROM suppressions WHERE address IN (";

/// The histories of the contacts of `ids` that exist, in that order, read through sqlx.
pub(crate) async fn read_histories<B: Backend>(
    backend: &B,
    ids: &[String],
) -> Result<Vec<History>, StoreError> {
    let [contacts, events, logged] = history_heads();
    let mut out = Vec::with_capacity(ids.len());
    let mut conn = backend.pool().acquire().await?;
    let mut q = QueryBuilder::new(ANY_SUPPRESSED);
    let any_suppressed = B::Db::fetch_optional(&mut conn, &mut q).await?.is_some();
    for chunk in ids.chunks(BATCH) {
        let mut gathering = Gathering::new(chunk);
        for row in B::Db::fetch_all(&mut conn, &mut in_list(&contacts, chunk)).await? {
            gathering.contact_row(&SqlxRow::<B::Db>(&row))?;
        }
        for row in B::Db::fetch_all(&mut conn, &mut in_list(&events, chunk)).await? {
            gathering.event(event_from_row::<B::Db>(&row)?);
        }
        for row in B::Db::fetch_all(&mut conn, &mut in_list(&logged, chunk)).await? {
            gathering.logged_row(&SqlxRow::<B::Db>(&row))?;
        }
        let addresses = if any_suppressed {
            gathering.addresses()
        } else {
            Vec::new()
        };
        if !addresses.is_empty() {
            for row in
                B::Db::fetch_all(&mut conn, &mut in_list(SUPPRESSED_HEAD, &addresses)).await?
            {
                gathering.suppressed(B::Db::text(&row, "address")?, B::Db::text(&row, "reason")?);
            }
        }
        out.extend(gathering.finish());
    }
    Ok(out)
}

/// The histories of a chunk of contacts as a backend reads them (contacts, then events
/// and send-log rows in any order), filled in place and kept in the chunk's order.
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

    pub(crate) fn contact(&mut self, contact: Contact, choices: Choices) {
        if let Some(&i) = self.place.get(contact.id.as_str()) {
            self.found[i] = Some(History {
                contact,
                events: Vec::new(),
                logged: HashSet::new(),
                delivered: Vec::new(),
                suppressed: None,
                choices,
            });
        }
    }

    /// A row of the contacts head of [`history_heads`].
    pub(crate) fn contact_row(&mut self, row: &impl Columns) -> Result<(), StoreError> {
        let choices = Choices::from_stored(row.text("declined")?, row.opt_time("paused_until")?);
        self.contact(contact_from(row)?, choices);
        Ok(())
    }

    /// A row of the send-log head of [`history_heads`].
    pub(crate) fn logged_row(&mut self, row: &impl Columns) -> Result<(), StoreError> {
        let status = SendStatus::parse(row.text("status")?).map_err(StoreError::Corrupt)?;
        let updated_at = row.time("updated_at")?;
        let (cadence, occurrence) = (row.owned("cadence")?, row.owned("occurrence")?);
        self.logged(
            row.text("contact_id")?,
            cadence,
            occurrence,
            status,
            updated_at,
        );
        Ok(())
    }

    pub(crate) fn event(&mut self, mut event: Event) {
        if let Some(h) = self.get(&event.contact_id) {
            if event.armed_at.map(Timestamp::as_second) == Some(WITH_CONTACT) {
                event.armed_at = h.contact.armed_at;
            }
            h.events.push(event);
        }
    }

    /// A send-log row of `contact`.
    pub(crate) fn logged(
        &mut self,
        contact: &str,
        cadence: String,
        occurrence: String,
        status: SendStatus,
        updated_at: Timestamp,
    ) {
        if let Some(h) = self.get(contact) {
            if matches!(status, SendStatus::Sent | SendStatus::Pending) {
                h.delivered.push((cadence.clone(), updated_at));
            }
            h.logged.insert((cadence, occurrence));
        }
    }

    /// The suppression keys of the found contacts' email addresses.
    pub(crate) fn addresses(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .found
            .iter()
            .flatten()
            .filter_map(|h| h.contact.email.as_ref().map(|e| e.suppression_key()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// `address` is suppressed for `reason`: so are the contacts that have it.
    pub(crate) fn suppressed(&mut self, address: &str, reason: &str) {
        for h in self.found.iter_mut().flatten() {
            if h.contact
                .email
                .as_ref()
                .is_some_and(|e| e.suppression_key() == address)
            {
                h.suppressed = Some(reason.to_owned());
            }
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

/// A row of `next_due_at, id`.
fn due_from_row<DB: Sql>(row: &DB::Row) -> Result<DuePosition, StoreError> {
    Ok(DuePosition {
        next_due_at: DB::int(row, "next_due_at")?,
        id: SqlxRow::<DB>(row).owned("id")?,
    })
}
