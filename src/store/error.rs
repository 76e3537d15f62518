//! What can go wrong in the store, sorted by what a caller does about it: try again
//! later (`Conflict`, `Unavailable`), stop and look at the data (`Corrupt`), or report
//! it (`Other`). The database's own message is kept as it is, for logs and people.

use jiff::Timestamp;

/// A driver's error (sqlx's or rusqlite's), or a message of the store's own.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: a unique key, a serialization failure or a
    /// deadlock between instances. The same work may succeed at the next pass.
    #[error(transparent)]
    Conflict(Cause),
    /// The database did not answer: locked past the busy timeout (or this process's
    /// own write turn not free in that time), the connection refused or lost, no
    /// connection free in time.
    #[error(transparent)]
    Unavailable(Cause),
    /// A stored value that does not parse as what its column holds.
    #[error("a stored value does not parse: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        use sqlx::Error as E;
        match &e {
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLSTATE (PostgreSQL): 40001 serialization failure, 40P01 deadlock,
                // class 08 connection, 53 resources, 57P0x shutdown. SQLite's primary
                // code is the low byte of its extended one: 5 busy, 6 locked.
                let sqlite = code.parse::<u32>().ok().map(|c| c & 0xff);
                if db.is_unique_violation() || code == "40001" || code == "40P01" {
                    StoreError::Conflict(e.into())
                } else if matches!(sqlite, Some(5 | 6))
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P0")
                {
                    StoreError::Unavailable(e.into())
                } else {
                    StoreError::Other(e.into())
                }
            }
            E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                StoreError::Unavailable(e.into())
            }
            E::ColumnDecode { .. } | E::Decode(_) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Other(e.into()),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked | C::CannotOpen) => {
                StoreError::Unavailable(e.into())
            }
            Some(C::ConstraintViolation) => StoreError::Conflict(e.into()),
            _ => match e {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => {
                    StoreError::Corrupt(e.to_string())
                }
                e => StoreError::Other(e.into()),
            },
        }
    }
}

/// A stored time (seconds since the epoch) of `column`.
pub(crate) fn ts(column: &str, seconds: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_second(seconds)
        .map_err(|_| StoreError::Corrupt(format!("{column} = {seconds} is not a time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_out_of_range_is_corrupt_not_the_epoch() {
        assert_eq!(ts("due_at", 90).unwrap().as_second(), 90);
        let e = ts("due_at", i64::MAX).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "a stored value does not parse: due_at = {} is not a time",
                i64::MAX
            )
        );
    }

    #[test]
    fn a_locked_sqlite_file_is_unavailable_and_a_repeated_key_a_conflict() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('a')")
            .unwrap();
        let repeated = conn.execute("INSERT INTO t VALUES ('a')", []).unwrap_err();
        let e = StoreError::from(repeated);
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains("UNIQUE constraint failed"), "{e}");
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some("database is locked".into()),
        );
        assert!(matches!(StoreError::from(busy), StoreError::Unavailable(_)));
    }

    #[test]
    fn a_refused_connection_is_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = StoreError::from(sqlx::Error::Io(refused));
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
    }
}
