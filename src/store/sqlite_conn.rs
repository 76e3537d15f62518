//! How a connection to the SQLite file is opened, by either driver: the sqlx pool and
//! the rusqlite connections of bulk writes get the same settings from here.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

/// The settings of every connection: commits durable at WAL checkpoints rather than
/// each commit, statement journals (multi-row upserts) in memory, no foreign-key checks.
const PRAGMAS: [(&str, &str); 3] = [
    ("synchronous", "NORMAL"),
    ("temp_store", "memory"),
    ("foreign_keys", "OFF"),
];

/// How long a write waits for another writer (a CLI command beside the daemon).
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows a connection's thread may hand over before the reader takes them: a pass reads
/// pages of a few thousand rows, and with sqlx's default of 50 the two threads wake each
/// other every few rows.
const ROW_BUFFER: usize = 4096;

/// The page size of a new database, in bytes.
const PAGE_SIZE: u32 = 8192;

/// WAL pages written before a commit copies them into the database file (SQLite's
/// default is 1,000). A pass over a large list rewrites the same pages page after page;
/// with a larger log each is copied once per checkpoint rather than once per write, and
/// the checkpoint's two syncs come fewer times. The file is cut back to this size after.
const CHECKPOINT_PAGES: u32 = 16_384;

/// Options of the sqlx pool's connections to the database at `url`, which is created
/// (in WAL mode, with 8 KiB pages) if missing.
pub(super) fn pool_options(url: &str) -> Result<SqliteConnectOptions, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // Only a new database takes it; an existing one keeps its own.
        .page_size(PAGE_SIZE)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT)
        .row_buffer_size(ROW_BUFFER)
        .pragma("wal_autocheckpoint", CHECKPOINT_PAGES.to_string())
        .pragma(
            "journal_size_limit",
            (CHECKPOINT_PAGES * PAGE_SIZE).to_string(),
        );
    Ok(PRAGMAS.iter().fold(options, |options, &(name, value)| {
        options.pragma(name, value)
    }))
}

/// Options of a read-only sqlx connection to the database at `path`.
pub(super) fn read_only_options(path: &str) -> SqliteConnectOptions {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    PRAGMAS.iter().fold(options, |options, &(name, value)| {
        options.pragma(name, value)
    })
}

/// Whether a rusqlite connection may write.
#[derive(Clone, Copy)]
pub(super) enum Access {
    ReadWrite,
    ReadOnly,
}

/// A rusqlite connection to the database file at `path` (which the pool has created),
/// used on one thread at a time.
pub(super) fn open(path: &Path, access: Access) -> rusqlite::Result<Connection> {
    let mode = match access {
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
    };
    let conn = Connection::open_with_flags(path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    for (name, value) in PRAGMAS {
        conn.execute_batch(&format!("PRAGMA {name} = {value}"))?;
    }
    Ok(conn)
}
