//! Moving from SQLite to PostgreSQL: copies contacts, events, the send log, the
//! suppression list and the bookkeeping (`meta`) into an empty PostgreSQL database in one transaction, so that
//! the send log keeps its promise across the move (nothing already sent goes out again)
//! and a failed copy leaves the target as empty as it was.

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};

/// How a column is read from SQLite and bound for PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    OptText,
    Int,
    OptInt,
    Bool,
    OptBytes,
}

use Kind::{Bool, Int, OptBytes, OptInt, OptText, Text};

/// A table, its key (to read it in an order that every schema version has) and its
/// columns.
type Table = (&'static str, &'static str, &'static [(&'static str, Kind)]);

/// The tables in an order that keeps references valid.
const TABLES: [Table; 6] = [
    (
        "contacts",
        "id",
        &[
            ("id", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("email", OptText),
            ("address_line1", Text),
            ("address_line2", Text),
            ("city", Text),
            ("region", Text),
            ("postal_code", Text),
            ("country", Text),
            ("birthday", OptText),
            ("timezone", OptText),
            ("tags", Text),
            ("email_opt_out", Bool),
            ("postcard_opt_out", Bool),
            ("fields", Text),
            ("digest", Text),
            ("declined", Text),
            ("paused_until", OptInt),
            ("armed_at", OptInt),
            ("next_due_at", OptInt),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "events",
        "contact_id, id",
        &[
            ("contact_id", Text),
            ("id", Text),
            ("kind", Text),
            ("at", Int),
            ("fields", Text),
            ("armed_at", OptInt),
            ("created_at", Int),
        ],
    ),
    (
        "sends",
        "id",
        &[
            ("id", Int),
            ("contact_id", Text),
            ("cadence", Text),
            ("occurrence", Text),
            ("channel", Text),
            ("status", Text),
            ("reason", OptText),
            ("event_id", OptText),
            ("due_at", Int),
            ("attempts", Int),
            ("next_attempt_at", OptInt),
            ("lease_until", OptInt),
            ("lease_owner", OptText),
            ("message_id", Text),
            ("reply", OptText),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    ),
    ("meta", "key", &[("key", Text), ("value", Text)]),
    (
        "suppressions",
        "address",
        &[
            ("address", Text),
            ("reason", Text),
            ("detail", Text),
            ("added_at", Int),
            ("report", OptBytes),
        ],
    ),
    (
        "soft_bounces",
        "address, at",
        &[("address", Text), ("at", Int), ("detail", Text)],
    ),
];

/// Rows per statement: PostgreSQL takes at most 65,535 parameters in one.
const CHUNK: i64 = 2000;

/// Rows copied, per table.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies the SQLite database at `from` into the PostgreSQL database at `to` (which
/// must hold no contacts, events or sends; its schema is created or brought up to date).
pub async fn sqlite_to_postgres(from: &str, to: &str) -> anyhow::Result<Copied> {
    let path = from
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let source = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(super::sqlite_conn::read_only_options(path))
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {from}: {e}"))?;
    // Opening the store applies the migrations.
    drop(super::open(to).await?);
    let target = PgPoolOptions::new().max_connections(1).connect(to).await?;
    let mut tx = target.begin().await?;
    for table in ["contacts", "events", "sends", "suppressions"] {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            anyhow::bail!(
                "{}: the target database already has {n} rows in `{table}`; copy into an empty database",
                super::redact(to)
            );
        }
    }
    // The target's own bookkeeping (the cadence fingerprint) gives way to the source's.
    sqlx::query("DELETE FROM meta").execute(&mut *tx).await?;
    let mut copied = Vec::new();
    for (table, key, columns) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let list = names.join(", ");
        let mut count = 0u64;
        loop {
            let rows: Vec<SqliteRow> = sqlx::query(AssertSqlSafe(format!(
                "SELECT {list} FROM {table} ORDER BY {key} LIMIT {CHUNK} OFFSET {count}"
            )))
            .fetch_all(&source)
            .await?;
            if rows.is_empty() {
                break;
            }
            let overriding = if table == "sends" {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            };
            let mut q =
                QueryBuilder::<Postgres>::new(format!("INSERT INTO {table} ({list}){overriding} "));
            q.push_values(&rows, |mut b, row| {
                for (i, (_, kind)) in columns.iter().enumerate() {
                    match kind {
                        Text => b.push_bind(row.get::<String, _>(i)),
                        OptText => b.push_bind(row.get::<Option<String>, _>(i)),
                        Int => b.push_bind(row.get::<i64, _>(i)),
                        OptInt => b.push_bind(row.get::<Option<i64>, _>(i)),
                        Bool => b.push_bind(row.get::<i64, _>(i) != 0),
                        OptBytes => b.push_bind(row.get::<Option<Vec<u8>>, _>(i)),
                    };
                }
            });
            q.build().execute(&mut *tx).await?;
            count += rows.len() as u64;
        }
        copied.push((table, count));
    }
    // New sends continue after the copied ids.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('sends', 'id'), GREATEST((SELECT max(id) FROM sends), 0) + 1, false)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(copied)
}
