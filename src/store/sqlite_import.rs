//! SQLite writes of an import: one `BEGIN IMMEDIATE` transaction on a connection of the
//! import's own, one prepared statement a row through SQLite's C interface (rusqlite).
//! sqlx copies every bound value and carries each statement to its SQLite thread and
//! back; at a million rows that was most of an import's time, whereas a prepared insert
//! costs SQLite a few microseconds.
//!
//! An events import stages its rows (`staging`) and writes them once the file is read,
//! sorted by contact: the staged rows are merged, their contacts looked up (on a second
//! connection, which sees what the import's does: the import holds the write lock, and
//! an events import writes no contact before it has looked it up) and resolved on a
//! thread of their own while the import's connection writes them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, params};

use super::blocking;
use super::sqlite_contacts::{self, Contacts};
use super::staging::{Sorted, Staging};
use super::{ContactUpsert, EventUpsert, ImportTx, PendingEvent, ResolveEvents};
use crate::domain::EmailAddress;

/// Page cache while importing, in KiB (SQLite's default is 2 MiB); also the memory
/// SQLite's sorter fills before it writes a sorted run to its temporary file.
const IMPORT_CACHE_KIB: i64 = 32 * 1024;
/// Staged event rows resolved together (more when a contact's rows go on past it).
const RESOLVE_ROWS: usize = 4096;
/// Staged event rows from which an events import reads every contact (if there are at
/// least an eighth as many as contacts) rather than looking each one up.
const READ_ALL_FROM: usize = 16_384;
/// How long a write waits for another writer, as the store's own connections do.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct SqliteImport {
    /// `None` while a thread reads every contact on it.
    conn: Option<Connection>,
    path: PathBuf,
    /// The staged event rows, once there are any.
    staging: Option<Staging>,
    staged: usize,
    /// Every contact, once an events file has enough rows to want them all; read
    /// while the rest of the file is staged.
    all_contacts: AllContacts,
}

/// The contacts of an events import.
enum AllContacts {
    NotWanted,
    Reading(std::thread::JoinHandle<anyhow::Result<(Connection, sqlite_contacts::AllContacts)>>),
    Read(sqlite_contacts::AllContacts),
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
                conn: Some(conn),
                path: path.to_owned(),
                staging: None,
                staged: 0,
                all_contacts: AllContacts::NotWanted,
            })
        })
    }

    /// The import's connection, once any reading of every contact is over.
    fn conn(&mut self) -> anyhow::Result<&Connection> {
        if let AllContacts::Reading(_) = self.all_contacts {
            let AllContacts::Reading(reading) =
                std::mem::replace(&mut self.all_contacts, AllContacts::NotWanted)
            else {
                unreachable!("matched above");
            };
            let (conn, all) = reading
                .join()
                .map_err(|_| anyhow::anyhow!("the reader of every contact stopped"))??;
            self.conn = Some(conn);
            self.all_contacts = AllContacts::Read(all);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the import's connection was lost"))
    }

    /// Starts reading every contact once the staged rows are enough to want them all.
    fn read_all_contacts_if_wanted(&mut self) -> anyhow::Result<()> {
        if self.staged < READ_ALL_FROM || !matches!(self.all_contacts, AllContacts::NotWanted) {
            return Ok(());
        }
        // Contacts are never deleted: the highest rowid is about their number.
        let contacts: i64 =
            self.conn()?
                .query_row("SELECT coalesce(max(rowid), 0) FROM contacts", [], |row| {
                    row.get(0)
                })?;
        if (self.staged as i64).saturating_mul(8) < contacts {
            return Ok(());
        }
        let conn = self.conn.take().expect("present: conn() succeeded");
        self.all_contacts = AllContacts::Reading(std::thread::spawn(move || {
            let all = sqlite_contacts::AllContacts::read(&conn)?;
            Ok((conn, all))
        }));
        Ok(())
    }
}

#[async_trait]
impl ImportTx for SqliteImport {
    async fn upsert_contacts(
        &mut self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        blocking(|| {
            let conn = self.conn()?;
            let mut changed = 0;
            // Looked up in the statement cache once a call, not once a row (the key is
            // the whole statement's text).
            let mut statements: [Option<rusqlite::CachedStatement>; 4] = [None, None, None, None];
            for row in contacts {
                let c = &row.contact;
                let columns = &row.columns;
                let shape = usize::from(row.email_opt_out.is_some()) * 2
                    + usize::from(row.postcard_opt_out.is_some());
                if statements[shape].is_none() {
                    statements[shape] = Some(conn.prepare_cached(&CONTACT_UPSERTS[shape])?);
                }
                let statement = statements[shape].as_mut().expect("prepared above");
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

    async fn upsert_events(
        &mut self,
        events: &[EventUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        blocking(|| write_events(self.conn()?, events, &mut Vec::new(), now))
    }

    async fn stage_events(&mut self, rows: Vec<(u64, PendingEvent)>) -> anyhow::Result<()> {
        blocking(|| {
            self.staged += rows.len();
            Staging::add_to(&mut self.staging, rows)?;
            self.read_all_contacts_if_wanted()
        })
    }

    async fn write_staged_events(
        &mut self,
        resolve: &mut ResolveEvents<'_>,
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let Some(staging) = self.staging.take() else {
            return Ok(0);
        };
        blocking(|| {
            // Waits for the reading of every contact, if one is under way.
            self.conn()?;
            let contacts = match std::mem::replace(&mut self.all_contacts, AllContacts::NotWanted) {
                AllContacts::Read(all) => Contacts::All(all),
                _ => Contacts::each(&self.path)?,
            };
            let conn = self.conn()?;
            let sorted = staging.sorted()?;
            std::thread::scope(|scope| {
                let (chunks, resolved) = std::sync::mpsc::sync_channel(2);
                let reader =
                    scope.spawn(move || resolve_sorted(sorted, contacts, resolve, &chunks));
                let mut changed = 0;
                // A failed write drops `resolved`, which stops the reader.
                for (events, mut due) in resolved {
                    changed += write_events(conn, &events, &mut due, now)?;
                }
                reader
                    .join()
                    .map_err(|_| anyhow::anyhow!("the reader of staged events stopped"))??;
                Ok(changed)
            })
        })
    }

    async fn commit(self: Box<Self>) -> anyhow::Result<()> {
        let mut import = self;
        blocking(|| Ok(import.conn()?.execute_batch("COMMIT")?))
    }
}

/// Events resolved from the staged rows of some contacts, and those contacts that
/// exist, in id order, each with whether it is due already.
type Resolved = (Vec<EventUpsert>, Vec<(String, bool)>);

/// Looks up the contacts of the sorted staged rows and resolves them, sending them on
/// in chunks of whole contacts; stops early when the writer has gone.
fn resolve_sorted(
    mut sorted: Sorted,
    mut contacts: Contacts,
    resolve: &mut ResolveEvents<'_>,
    resolved: &std::sync::mpsc::SyncSender<Resolved>,
) -> anyhow::Result<()> {
    while let Some(chunk) = sorted.next_chunk(RESOLVE_ROWS)? {
        let mut zones = HashMap::new();
        let mut due: Vec<(String, bool)> = Vec::new();
        let mut last: Option<&str> = None;
        for (_, e) in &chunk {
            if last == Some(e.contact_id.as_str()) {
                continue;
            }
            last = Some(e.contact_id.as_str());
            if let Some(found) = contacts.get(&e.contact_id)? {
                zones.insert(e.contact_id.clone(), found.zone);
                due.push((e.contact_id.clone(), found.due));
            }
        }
        let events = resolve(chunk, &zones);
        if resolved.send((events, due)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Upserts `events` (in key order) and wakes the contact of each changed one, unless
/// `due` (the contacts looked up, in id order) says it is due already. Returns how
/// many rows changed.
fn write_events(
    conn: &Connection,
    events: &[EventUpsert],
    due: &mut [(String, bool)],
    now: Timestamp,
) -> anyhow::Result<u64> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO events (contact_id, id, kind, at, fields, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (contact_id, id) DO UPDATE SET kind = excluded.kind, \
         at = excluded.at, fields = excluded.fields \
         WHERE events.kind <> excluded.kind OR events.at <> excluded.at \
         OR events.fields <> excluded.fields",
    )?;
    let mut wake = conn.prepare_cached(
        "UPDATE contacts SET next_due_at = 0 WHERE id = ?1 AND next_due_at IS NOT 0",
    )?;
    let mut changed = 0;
    let mut next = 0;
    for e in events {
        let written = upsert.execute(params![
            e.contact_id,
            e.id,
            e.kind,
            e.at.as_second(),
            e.fields,
            now.as_second()
        ])?;
        if written == 0 {
            continue;
        }
        changed += 1;
        while next < due.len() && due[next].0 < e.contact_id {
            next += 1;
        }
        match due.get_mut(next) {
            Some((id, is_due)) if *id == e.contact_id => {
                if !*is_due {
                    *is_due = true;
                    wake.execute([&e.contact_id])?;
                }
            }
            _ => {
                wake.execute([&e.contact_id])?;
            }
        }
    }
    Ok(changed)
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
