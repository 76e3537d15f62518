//! PostgreSQL's bulk writer: multi-row upserts inside one transaction. Its lookup reads
//! contacts on a connection of its own, which sees what the writer's does: an events
//! import writes no contact.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::bulk::KnownWalk;
use super::upsert_sql::{CONTACT_INSERT, EVENT_CONFLICT, EVENT_INSERT, SHAPES, contact_conflict};
use super::{BulkWriter, ContactLookup, ContactUpsert, EventUpsert, KnownContact, StoreError};
use crate::domain::EmailAddress;

/// Contacts per statement: 20 values a row, and PostgreSQL allows 65535.
const CONTACT_ROWS: usize = 1000;
/// Events per statement: 6 values a row.
const EVENT_ROWS: usize = 2000;

pub(super) struct PostgresWriter {
    tx: Transaction<'static, Postgres>,
    pool: PgPool,
}

impl PostgresWriter {
    pub(super) async fn begin(pool: &PgPool) -> Result<PostgresWriter, StoreError> {
        Ok(PostgresWriter {
            tx: pool.begin().await?,
            pool: pool.clone(),
        })
    }
}

#[async_trait]
impl BulkWriter for PostgresWriter {
    async fn contacts(
        &mut self,
        rows: Vec<ContactUpsert>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut changed = 0;
        for run in runs(&rows, CONTACT_ROWS, |c| c.contact.id.as_str()) {
            for shape in SHAPES {
                let rows: Vec<&ContactUpsert> = run
                    .iter()
                    .filter(|r| (r.email_opt_out.is_some(), r.postcard_opt_out.is_some()) == shape)
                    .collect();
                if !rows.is_empty() {
                    changed += upsert_contact_rows(&mut self.tx, &rows, shape, now).await?;
                }
            }
        }
        Ok(changed)
    }

    /// Wakes every contact of a changed event, even one already due: the row lock is
    /// what makes a pass that marks the contact meanwhile wait for this writer's
    /// events, or have its mark replaced. `known` says which contacts no pass has seen.
    async fn events(
        &mut self,
        events: Vec<EventUpsert>,
        mut known: Vec<(String, KnownContact)>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut changed = 0;
        let mut touched: Vec<String> = Vec::new();
        let mut known = KnownWalk::new(&mut known);
        for run in runs(&events, EVENT_ROWS, |e| {
            (e.contact_id.as_str(), e.id.as_str())
        }) {
            let mut q = QueryBuilder::<Postgres>::new(EVENT_INSERT);
            q.push_values(run, |mut b, e| {
                let armed = KnownContact::armed_with(known.find(&e.contact_id).as_deref());
                b.push_bind(e.contact_id.as_str())
                    .push_bind(e.id.as_str())
                    .push_bind(e.kind.as_str())
                    .push_bind(e.at.as_second())
                    .push_bind(e.fields.as_str())
                    .push_bind(now.as_second())
                    .push_bind(armed);
            });
            q.push(EVENT_CONFLICT).push(" RETURNING contact_id");
            for row in q.build().fetch_all(&mut *self.tx).await? {
                changed += 1;
                touched.push(row.get("contact_id"));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        if !touched.is_empty() {
            sqlx::query("UPDATE contacts SET next_due_at = 0 WHERE id = ANY($1)")
                .bind(&touched)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(changed)
    }

    async fn lookup(&mut self) -> Result<Box<dyn ContactLookup>, StoreError> {
        Ok(Box::new(Lookup {
            pool: self.pool.clone(),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Looks contacts up a chunk at a time, from the lookup's own thread through the
/// runtime that the writer runs on.
struct Lookup {
    pool: PgPool,
    runtime: tokio::runtime::Handle,
}

impl ContactLookup for Lookup {
    fn find(&mut self, ids: &[&str]) -> Result<Vec<(String, KnownContact)>, StoreError> {
        let ids: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
        let mut found: HashMap<String, KnownContact> = self.runtime.block_on(async {
            let rows = sqlx::query(
                "SELECT id, timezone, armed_at IS NULL AS unseen FROM contacts WHERE id = ANY($1)",
            )
            .bind(&ids)
            .fetch_all(&self.pool)
            .await?;
            let known = |row: &sqlx::postgres::PgRow| KnownContact {
                zone: row.get("timezone"),
                due: false,
                unseen: row.get("unseen"),
            };
            Ok::<_, StoreError>(rows.iter().map(|row| (row.get("id"), known(row))).collect())
        })?;
        Ok(ids
            .into_iter()
            .filter_map(|id| {
                let known = found.remove(&id)?;
                Some((id, known))
            })
            .collect())
    }
}

async fn upsert_contact_rows(
    conn: &mut PgConnection,
    rows: &[&ContactUpsert],
    (email_given, postcard_given): (bool, bool),
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new(CONTACT_INSERT);
    q.push_values(rows, |mut b, row| {
        let c = &row.contact;
        let super::ContactColumns {
            birthday,
            tags,
            fields,
            digest,
        } = &row.columns;
        b.push_bind(c.id.as_str())
            .push_bind(c.first_name.as_str())
            .push_bind(c.last_name.as_str())
            .push_bind(c.email.as_ref().map(EmailAddress::as_str))
            .push_bind(c.address.line1.as_str())
            .push_bind(c.address.line2.as_str())
            .push_bind(c.address.city.as_str())
            .push_bind(c.address.region.as_str())
            .push_bind(c.address.postal_code.as_str())
            .push_bind(c.address.country.as_str())
            .push_bind(birthday.as_deref())
            .push_bind(c.timezone.as_deref())
            .push_bind(tags.as_str())
            .push_bind(row.email_opt_out.unwrap_or(false))
            .push_bind(row.postcard_opt_out.unwrap_or(false))
            .push_bind(fields.as_str())
            .push_bind(digest.as_str())
            .push_bind(0i64)
            .push_bind(now.as_second())
            .push_bind(now.as_second());
    });
    q.push(contact_conflict(email_given, postcard_given));
    Ok(q.build().execute(&mut *conn).await?.rows_affected())
}

/// The stored time zone of each id that exists.
pub(super) async fn zones(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<HashMap<String, Option<String>>, StoreError> {
    let rows = sqlx::query("SELECT id, timezone FROM contacts WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get("id"), row.get("timezone")))
        .collect())
}

/// Splits `rows` into runs in which no key repeats, in order: one multi-row upsert per
/// run then does what one statement per row would (a later row with the same key
/// updates the earlier one), and PostgreSQL never meets a key twice in one statement.
fn runs<'a, T, K: Eq + std::hash::Hash>(
    rows: &'a [T],
    max: usize,
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a [T]> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
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
