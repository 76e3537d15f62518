//! How an SQLite events import finds the contacts of its events: each contact's stored
//! zone (a plain date is the start of that day there) and whether it is due already
//! (then a changed event need not wake it).
//!
//! A small file looks each contact up. A file with many events reads every contact
//! once instead, into a compact table, while the file is still being read. Looking up
//! hundreds of thousands of contacts during the write would cost more than reading
//! them: SQLite's page caches of one process share one list of pages to recycle
//! (libsqlite3-sys builds it with SQLITE_ENABLE_MEMORY_MANAGEMENT), and the import's
//! writer, its dirty pages pinned, takes the pages a lookup connection has just read,
//! so that each lookup read its tree's root from disk again.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::keys::KeyTable;

/// Page cache of the connection that looks contacts up one by one, in KiB.
const LOOKUP_CACHE_KIB: i64 = 4 * 1024;
/// Set in a contact's value when it is due already (its zone's number is the rest).
const DUE: u32 = 1 << 31;

/// A contact as an events import needs it.
pub(super) struct Found {
    /// `None`: the business's.
    pub(super) zone: Option<String>,
    pub(super) due: bool,
}

/// Where an events import finds its contacts.
pub(super) enum Contacts {
    /// One lookup a contact, on a read connection of its own, which sees what the
    /// import's does: the import holds the write lock, and an events import writes no
    /// contact before it has looked it up.
    Each(Connection),
    /// Every contact, read before the first lookup.
    All(AllContacts),
}

impl Contacts {
    /// Lookups on a connection of their own to the database at `path`.
    pub(super) fn each(path: &Path) -> anyhow::Result<Contacts> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // One read transaction throughout, rather than a lock taken and the cache
        // checked again for every lookup.
        conn.execute_batch(&format!("PRAGMA cache_size = -{LOOKUP_CACHE_KIB}; BEGIN"))?;
        Ok(Contacts::Each(conn))
    }

    pub(super) fn get(&mut self, id: &str) -> anyhow::Result<Option<Found>> {
        match self {
            Contacts::Each(conn) => Ok(conn
                .prepare_cached("SELECT timezone, next_due_at IS 0 FROM contacts WHERE id = ?1")?
                .query_row([id], |row| {
                    Ok(Found {
                        zone: row.get(0)?,
                        due: row.get(1)?,
                    })
                })
                .optional()?),
            Contacts::All(all) => Ok(all.ids.get(&[id]).map(|value| Found {
                zone: match value & !DUE {
                    0 => None,
                    n => Some(all.zones[n as usize].clone()),
                },
                due: value & DUE != 0,
            })),
        }
    }
}

/// Every contact's id, zone and whether it is due: about 30 bytes a contact.
pub(super) struct AllContacts {
    ids: KeyTable,
    /// Zone names by number; number 0 is "none given" (the business's).
    zones: Vec<String>,
}

impl AllContacts {
    /// Reads every contact on `conn`, in one pass over the table.
    pub(super) fn read(conn: &Connection) -> anyhow::Result<AllContacts> {
        let (count, id_len): (i64, f64) = conn.query_row(
            "SELECT count(*), coalesce(avg(length(id)), 0) FROM contacts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let mut all = AllContacts {
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
                        let n = u32::try_from(all.zones.len())?;
                        all.zones.push(name.to_owned());
                        numbers.insert(name.to_owned(), n);
                        n
                    }
                },
            };
            let due: bool = row.get(2)?;
            all.ids
                .insert(&[id], zone | if due { DUE } else { 0 })
                .map_err(anyhow::Error::msg)?;
        }
        Ok(all)
    }
}
