//! How SQLite's bulk writer finds the contacts of its events: one lookup a contact on
//! a read connection of its own, or every contact read once into a compact table, for
//! a file with so many events that looking each up beside the writer (whose dirty pages
//! crowd the page cache that the process's connections share) would cost more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::sqlite_conn::{self, Access};
use super::{ContactLookup, KnownContact, StoreError};
use crate::keys::KeyTable;

/// Page cache of the connection that looks contacts up one by one, in KiB.
const LOOKUP_CACHE_KIB: i64 = 4 * 1024;
/// Set in a contact's value when it is due already (its zone's number is the rest).
const DUE: u32 = 1 << 31;
/// Set in a contact's value when no pass has looked at it yet.
const UNSEEN: u32 = 1 << 30;

/// Where SQLite's bulk writer finds its contacts.
pub(super) enum Lookup {
    /// One lookup a contact, on a read connection of its own (opened at the first),
    /// which sees what the writer's does: the writer holds the write lock, and an
    /// events import writes no contact before it has looked it up.
    Each {
        path: PathBuf,
        conn: Option<Connection>,
    },
    /// Every contact, read before the first lookup.
    All(AllContacts),
}

impl Lookup {
    /// Lookups on a connection of their own to the database at `path`.
    pub(super) fn each(path: &Path) -> Lookup {
        Lookup::Each {
            path: path.to_owned(),
            conn: None,
        }
    }
}

impl ContactLookup for Lookup {
    fn find(&mut self, ids: &[&str]) -> Result<Vec<(String, KnownContact)>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        match self {
            Lookup::Each { path, conn } => {
                let conn = match conn {
                    Some(conn) => conn,
                    None => {
                        let opened = sqlite_conn::open(path, Access::ReadOnly)?;
                        // One read transaction throughout, rather than a lock taken and
                        // the cache checked again for every lookup.
                        opened.execute_batch(&format!(
                            "PRAGMA cache_size = -{LOOKUP_CACHE_KIB}; BEGIN"
                        ))?;
                        conn.insert(opened)
                    }
                };
                let mut statement = conn.prepare_cached(
                    "SELECT timezone, next_due_at IS 0, armed_at IS NULL FROM contacts WHERE id = ?1",
                )?;
                for &id in ids {
                    let known = statement
                        .query_row([id], |row| {
                            Ok(KnownContact {
                                zone: row.get(0)?,
                                due: row.get(1)?,
                                unseen: row.get(2)?,
                            })
                        })
                        .optional()?;
                    if let Some(known) = known {
                        found.push((id.to_owned(), known));
                    }
                }
            }
            Lookup::All(all) => {
                for &id in ids {
                    if let Some(value) = all.ids.get(&[id]) {
                        let zone = match value & !(DUE | UNSEEN) {
                            0 => None,
                            n => Some(all.zones[n as usize].clone()),
                        };
                        let due = value & DUE != 0;
                        let unseen = value & UNSEEN != 0;
                        found.push((id.to_owned(), KnownContact { zone, due, unseen }));
                    }
                }
            }
        }
        Ok(found)
    }
}

/// Every contact's id, zone, and whether it is due and seen: about 30 bytes a contact.
pub(super) struct AllContacts {
    ids: KeyTable,
    /// Zone names by number; number 0 is "none given" (the business's).
    zones: Vec<String>,
}

impl AllContacts {
    /// Reads every contact on `conn`, in one pass over the table.
    pub(super) fn read(conn: &Connection) -> Result<AllContacts, StoreError> {
        let (count, id_len): (i64, f64) = conn.query_row(
            "SELECT count(*), coalesce(avg(length(id)), 0) FROM contacts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let mut all = AllContacts {
            ids: KeyTable::with_capacity(
                usize::try_from(count).unwrap_or(0),
                id_len.ceil() as usize,
            ),
            zones: vec![String::new()],
        };
        let mut numbers: HashMap<String, u32> = HashMap::new();
        let mut statement =
            conn.prepare("SELECT id, timezone, next_due_at IS 0, armed_at IS NULL FROM contacts")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id: &str = row.get_ref(0)?.as_str().map_err(corrupt)?;
            let zone = match row.get_ref(1)?.as_str_or_null().map_err(corrupt)? {
                None => 0,
                Some(name) => match numbers.get(name) {
                    Some(&n) => n,
                    None => {
                        let n = u32::try_from(all.zones.len()).map_err(anyhow::Error::from)?;
                        all.zones.push(name.to_owned());
                        numbers.insert(name.to_owned(), n);
                        n
                    }
                },
            };
            let due: bool = row.get(2)?;
            let unseen: bool = row.get(3)?;
            let flags = if due { DUE } else { 0 } | if unseen { UNSEEN } else { 0 };
            all.ids
                .insert(&[id], zone | flags)
                .map_err(anyhow::Error::msg)?;
        }
        Ok(all)
    }
}

fn corrupt(e: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!("contacts: {e}"))
}
