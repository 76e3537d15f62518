//! SQLite writes of an import: one `BEGIN IMMEDIATE` transaction on a connection of the
//! import's own, one prepared statement a row through SQLite's C interface (rusqlite).
//! sqlx copies every bound value and carries each statement to its SQLite thread and
//! back; at a million rows that was most of an import's time, whereas a prepared insert
//! costs SQLite a few microseconds.
//!
//! An events import looks up the contact of every event (it must exist, and its zone
//! places plain dates). A large one reads every contact's zone once, in key order, into
//! a compact table instead: two million lookups at random places of a million contacts
//! would read most of the contacts table from disk again and again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::{ContactUpsert, ImportTx};
use crate::domain::{EmailAddress, Event};
use crate::keys::KeyTable;

/// Ids per `IN (...)` list.
const ID_ROWS: usize = 1000;
/// Page cache while importing, in KiB (SQLite's default is 2 MiB): the key index of two
/// million events stays in memory while events arrive in random contact order.
const IMPORT_CACHE_KIB: i64 = 32 * 1024;
/// Contacts looked up one by one, in all, after which an events import reads every
/// contact's zone at once instead (an events file this long is a bulk load).
const LOAD_ALL_FROM: usize = 16_384;
/// How long a write waits for another writer, as the store's own connections do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct SqliteImport {
    conn: Connection,
    /// Every contact, once an events import is large enough to want them all.
    contacts: Option<Contacts>,
    /// The contacts of the last `contact_zones` call, sorted by id, each with `DUE` set
    /// if it is due already: the events that follow are theirs, in the same order.
    looked_up: Vec<(String, u32)>,
    /// Contacts looked up so far.
    lookups: usize,
}

impl SqliteImport {
    /// Opens the import's connection to the database file at `path` and takes the
    /// write lock.
    pub(super) async fn begin(path: &Path) -> anyhow::Result<SqliteImport> {
        blocking(|| {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.execute_batch(&format!(
                "PRAGMA synchronous = NORMAL; PRAGMA temp_store = memory; \
                 PRAGMA cache_size = -{IMPORT_CACHE_KIB}; BEGIN IMMEDIATE"
            ))?;
            Ok(SqliteImport {
                conn,
                contacts: None,
                looked_up: Vec::new(),
                lookups: 0,
            })
        })
    }
}

#[async_trait]
impl ImportTx for SqliteImport {
    async fn upsert_contacts(
        &mut self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        self.contacts = None;
        blocking(|| {
            let mut changed = 0;
            for row in contacts {
                let c = &row.contact;
                let columns = &row.columns;
                let shape = usize::from(row.email_opt_out.is_some()) * 2
                    + usize::from(row.postcard_opt_out.is_some());
                let mut statement = self.conn.prepare_cached(&CONTACT_UPSERTS[shape])?;
                changed += statement.execute(params![
                    c.id,
                    c.first_name,
                    c.last_name,
                    c.email.as_ref().map(EmailAddress::as_str),
                    c.address_line1,
                    c.address_line2,
                    c.city,
                    c.region,
                    c.postal_code,
                    c.country,
                    columns.birthday,
                    c.timezone,
                    columns.tags,
                    row.email_opt_out.unwrap_or(false),
                    row.postcard_opt_out.unwrap_or(false),
                    columns.fields,
                    columns.digest,
                    now.as_second(),
                ])? as u64;
            }
            Ok(changed)
        })
    }

    async fn contact_zones(
        &mut self,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, Option<String>>> {
        let mut zones = HashMap::with_capacity(ids.len());
        blocking(|| {
            self.lookups += ids.len();
            if self.contacts.is_none() && self.lookups >= LOAD_ALL_FROM {
                self.contacts = Some(Contacts::load(&self.conn)?);
            }
            self.looked_up.clear();
            if let Some(contacts) = &mut self.contacts {
                for id in ids {
                    if let Some(contact) = contacts.get(id) {
                        self.looked_up.push((id.clone(), contact));
                    }
                }
            } else {
                let mut statement = self.conn.prepare_cached(
                    "SELECT timezone, next_due_at IS 0 FROM contacts WHERE id = ?1",
                )?;
                for id in ids {
                    let found: Option<(Option<String>, bool)> = statement
                        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()?;
                    if let Some((zone, due)) = found {
                        zones.insert(id.clone(), zone);
                        self.looked_up.push((id.clone(), if due { DUE } else { 0 }));
                    }
                }
            }
            if let Some(contacts) = &self.contacts {
                for (id, contact) in &self.looked_up {
                    zones.insert(id.clone(), contacts.zone(*contact).map(str::to_owned));
                }
            }
            if !self.looked_up.is_sorted_by(|a, b| a.0 <= b.0) {
                self.looked_up.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            }
            Ok(zones)
        })
    }

    async fn upsert_events(&mut self, events: &[Event], now: Timestamp) -> anyhow::Result<u64> {
        blocking(|| {
            // An import hands them over in key order, so that neighbouring rows land on
            // neighbouring pages.
            let mut changed = 0;
            let mut next = 0;
            for e in events {
                let fields = serde_json::to_string(&e.fields)?;
                let written = self
                    .conn
                    .prepare_cached(
                        "INSERT INTO events (contact_id, id, kind, at, fields, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT (contact_id, id) DO UPDATE SET kind = excluded.kind, \
                         at = excluded.at, fields = excluded.fields \
                         WHERE events.kind <> excluded.kind OR events.at <> excluded.at \
                         OR events.fields <> excluded.fields",
                    )?
                    .execute(params![
                        e.contact_id,
                        e.id,
                        e.kind,
                        e.at.as_second(),
                        fields,
                        now.as_second()
                    ])?;
                if written > 0 {
                    changed += 1;
                    // Where the contact was looked up, its place in `looked_up` (both
                    // in id order); else the wake's own condition decides.
                    while next < self.looked_up.len() && self.looked_up[next].0 < e.contact_id {
                        next += 1;
                    }
                    match self.looked_up.get_mut(next) {
                        Some((id, contact)) if *id == e.contact_id => {
                            if *contact & DUE == 0 {
                                *contact |= DUE;
                                wake(&self.conn, &mut self.contacts, id)?;
                            }
                        }
                        _ => wake(&self.conn, &mut self.contacts, &e.contact_id)?,
                    }
                }
            }
            Ok(changed)
        })
    }

    async fn commit(self: Box<Self>) -> anyhow::Result<()> {
        blocking(|| Ok(self.conn.execute_batch("COMMIT")?))
    }
}

/// Makes the contact of a changed event due (unless it is already).
fn wake(conn: &Connection, contacts: &mut Option<Contacts>, id: &str) -> anyhow::Result<()> {
    if let Some(contacts) = contacts {
        contacts.set_due(id);
    }
    conn.prepare_cached(
        "UPDATE contacts SET next_due_at = 0 WHERE id = ?1 AND next_due_at IS NOT 0",
    )?
    .execute([id])?;
    Ok(())
}

/// The contact upsert for each combination of given opt-out flags (email given: bit
/// 1, postcard given: bit 0).
static CONTACT_UPSERTS: LazyLock<[String; 4]> = LazyLock::new(|| {
    [(false, false), (false, true), (true, false), (true, true)].map(|(email, postcard)| {
        format!(
            "INSERT INTO contacts (id, first_name, last_name, email, address_line1, address_line2, city, \
             region, postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, \
             fields, digest, next_due_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 0, ?18, ?18){}",
            contact_conflict_clause(email, postcard)
        )
    })
});

/// The update half of a contact upsert: only a row whose values or given flags differ
/// is written (and made due), so re-importing an unchanged file wakes nothing. Shared
/// with PostgreSQL, whose syntax is the same here. An empty opt-out column keeps the
/// stored flag.
pub(super) fn contact_conflict_clause(email_given: bool, postcard_given: bool) -> String {
    let flag = |given: bool, column: &str| {
        if given {
            (
                format!("excluded.{column}"),
                format!(" OR contacts.{column} <> excluded.{column}"),
            )
        } else {
            (format!("contacts.{column}"), String::new())
        }
    };
    let (email_value, email_differs) = flag(email_given, "email_opt_out");
    let (postcard_value, postcard_differs) = flag(postcard_given, "postcard_opt_out");
    format!(
        " ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name, \
         email = excluded.email, address_line1 = excluded.address_line1, address_line2 = excluded.address_line2, \
         city = excluded.city, region = excluded.region, postal_code = excluded.postal_code, \
         country = excluded.country, birthday = excluded.birthday, timezone = excluded.timezone, \
         tags = excluded.tags, fields = excluded.fields, digest = excluded.digest, \
         email_opt_out = {email_value}, postcard_opt_out = {postcard_value}, \
         next_due_at = 0, updated_at = excluded.updated_at \
         WHERE contacts.digest <> excluded.digest{email_differs}{postcard_differs}"
    )
}

/// Set in a contact's value when it is due already (its zone's number is the rest).
const DUE: u32 = 1 << 31;

/// Every contact's id, zone and whether it is due: about 25 bytes a contact.
struct Contacts {
    ids: KeyTable,
    /// Zone names by number; number 0 is "none given" (the business's).
    zones: Vec<String>,
}

impl Contacts {
    fn load(conn: &Connection) -> anyhow::Result<Contacts> {
        let (count, id_len): (i64, f64) = conn.query_row(
            "SELECT count(*), coalesce(avg(length(id)), 0) FROM contacts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let mut contacts = Contacts {
            ids: KeyTable::with_capacity(usize::try_from(count)?, id_len.ceil() as usize),
            zones: vec![String::new()],
        };
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut statement = conn.prepare("SELECT id, timezone, next_due_at IS 0 FROM contacts")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id: &str = row.get_ref(0)?.as_str()?;
            let zone = match row.get_ref(1)?.as_str_or_null()? {
                None => 0,
                Some(name) => match numbers.get(name) {
                    Some(&n) => n,
                    None => {
                        let n = u32::try_from(contacts.zones.len())?;
                        contacts.zones.push(name.to_owned());
                        numbers.insert(name.to_owned(), n);
                        n
                    }
                },
            };
            let due: bool = row.get(2)?;
            let value = zone | if due { DUE } else { 0 };
            contacts
                .ids
                .insert(&[id], value)
                .map_err(anyhow::Error::msg)?;
        }
        Ok(contacts)
    }

    fn get(&mut self, id: &str) -> Option<u32> {
        self.ids.get(&[id])
    }

    fn set_due(&mut self, id: &str) {
        self.ids.update(&[id], |value| value | DUE);
    }

    fn zone(&self, value: u32) -> Option<&str> {
        match value & !DUE {
            0 => None,
            n => Some(self.zones[n as usize].as_str()),
        }
    }
}

/// Runs SQLite work that may wait on disk or on another writer's lock without holding
/// up the runtime's other tasks (where the runtime can spare the thread).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The stored time zone of each id that exists: one row of JSON per list rather than
/// a row per contact, which sqlx would hand over one at a time.
pub(super) async fn zones(
    conn: &mut SqliteConnection,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Option<String>>> {
    let mut zones = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ID_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT json_group_array(json_array(id, timezone)) AS zones FROM contacts WHERE id IN (",
        );
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.as_str());
        }
        q.push(")");
        let row = q.build().fetch_one(&mut *conn).await?;
        let found: Vec<(String, Option<String>)> = serde_json::from_str(row.get("zones"))?;
        zones.extend(found);
    }
    Ok(zones)
}
