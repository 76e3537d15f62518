//! PostgreSQL writes of an import: multi-row upserts inside one transaction. Event rows
//! are staged on this machine (`staging`) and written contact by contact.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::blocking;
use super::sqlite_import::contact_conflict_clause;
use super::staging::Staging;
use super::{ContactUpsert, EventUpsert, ImportTx, PendingEvent, ResolveEvents, runs};
use crate::domain::EmailAddress;

/// Contacts per statement: 20 values a row, and PostgreSQL allows 65535.
const CONTACT_ROWS: usize = 1000;
/// Events per statement: 6 values a row.
const EVENT_ROWS: usize = 2000;
/// Staged event rows resolved together.
const RESOLVE_ROWS: usize = 4096;

pub(super) struct PostgresImport {
    tx: Transaction<'static, Postgres>,
    /// The staged event rows, once there are any.
    staging: Option<Staging>,
}

impl PostgresImport {
    pub(super) async fn begin(pool: &PgPool) -> anyhow::Result<PostgresImport> {
        Ok(PostgresImport {
            tx: pool.begin().await?,
            staging: None,
        })
    }
}

#[async_trait]
impl ImportTx for PostgresImport {
    async fn upsert_contacts(
        &mut self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let mut changed = 0;
        for run in runs(contacts, CONTACT_ROWS, |c| c.contact.id.as_str()) {
            for shape in [(false, false), (false, true), (true, false), (true, true)] {
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

    async fn upsert_events(
        &mut self,
        events: &[EventUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let mut changed = 0;
        let mut touched: Vec<String> = Vec::new();
        for run in runs(events, EVENT_ROWS, |e| {
            (e.contact_id.as_str(), e.id.as_str())
        }) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO events (contact_id, id, kind, at, fields, created_at) ",
            );
            q.push_values(run, |mut b, e| {
                b.push_bind(e.contact_id.as_str())
                    .push_bind(e.id.as_str())
                    .push_bind(e.kind.as_str())
                    .push_bind(e.at.as_second())
                    .push_bind(e.fields.as_str())
                    .push_bind(now.as_second());
            });
            q.push(
                " ON CONFLICT (contact_id, id) DO UPDATE SET kind = excluded.kind, at = excluded.at, \
                 fields = excluded.fields \
                 WHERE events.kind <> excluded.kind OR events.at <> excluded.at OR events.fields <> excluded.fields \
                 RETURNING contact_id",
            );
            for row in q.build().fetch_all(&mut *self.tx).await? {
                changed += 1;
                touched.push(row.get("contact_id"));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        if !touched.is_empty() {
            // Every touched contact, even one already due: the row lock is what makes a
            // pass that marks the contact meanwhile wait for this import's events (or have
            // its mark replaced). Skipping contacts already at 0 let a pass read the
            // contact without them and put it to sleep (three-instance test, 1 run in 8).
            sqlx::query("UPDATE contacts SET next_due_at = 0 WHERE id = ANY($1)")
                .bind(&touched)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(changed)
    }

    async fn stage_events(&mut self, rows: Vec<(u64, PendingEvent)>) -> anyhow::Result<()> {
        blocking(|| Staging::add_to(&mut self.staging, rows))
    }

    async fn write_staged_events(
        &mut self,
        resolve: &mut ResolveEvents<'_>,
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let Some(staging) = self.staging.take() else {
            return Ok(0);
        };
        let mut sorted = blocking(|| staging.sorted())?;
        let mut changed = 0;
        while let Some(chunk) = blocking(|| sorted.next_chunk(RESOLVE_ROWS))? {
            let mut ids: Vec<String> = chunk.iter().map(|(_, e)| e.contact_id.clone()).collect();
            ids.dedup();
            let zones = zones(&mut self.tx, &ids).await?;
            let events = resolve(chunk, &zones);
            changed += self.upsert_events(&events, now).await?;
        }
        Ok(changed)
    }

    async fn commit(self: Box<Self>) -> anyhow::Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

async fn upsert_contact_rows(
    conn: &mut PgConnection,
    rows: &[&ContactUpsert],
    (email_given, postcard_given): (bool, bool),
    now: Timestamp,
) -> anyhow::Result<u64> {
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO contacts (id, first_name, last_name, email, address_line1, address_line2, city, \
         region, postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, fields, \
         digest, next_due_at, created_at, updated_at) ",
    );
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
            .push_bind(c.address_line1.as_str())
            .push_bind(c.address_line2.as_str())
            .push_bind(c.city.as_str())
            .push_bind(c.region.as_str())
            .push_bind(c.postal_code.as_str())
            .push_bind(c.country.as_str())
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
    q.push(contact_conflict_clause(email_given, postcard_given));
    Ok(q.build().execute(&mut *conn).await?.rows_affected())
}

/// The stored time zone of each id that exists.
pub(super) async fn zones(
    conn: &mut PgConnection,
    ids: &[String],
) -> anyhow::Result<HashMap<String, Option<String>>> {
    let rows = sqlx::query("SELECT id, timezone FROM contacts WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get("id"), row.get("timezone")))
        .collect())
}
