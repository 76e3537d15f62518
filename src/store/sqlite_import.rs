//! SQLite writes of an import: multi-row upserts inside one `BEGIN IMMEDIATE`
//! transaction, so that a million rows cost a few thousand statements instead of a
//! million, with a larger page cache while the transaction lasts.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::{ContactUpsert, ImportTx, runs};
use crate::domain::{EmailAddress, Event};

/// Contacts per statement: 19 values a row, and SQLite allows 32766.
const CONTACT_ROWS: usize = 500;
/// Events per statement: 6 values a row.
const EVENT_ROWS: usize = 1000;
/// Ids per `IN (...)` list.
const ID_ROWS: usize = 1000;
/// Page cache while importing, in KiB (SQLite's default is 2 MiB): the indexes of a
/// million contacts stay mostly in memory instead of being re-read from the OS.
const IMPORT_CACHE_KIB: i64 = 64 * 1024;

pub(super) struct SqliteImport {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteImport {
    pub(super) async fn begin(pool: &SqlitePool) -> anyhow::Result<SqliteImport> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA cache_size = -{IMPORT_CACHE_KIB}"
        )))
        .execute(&mut *tx)
        .await?;
        // A changed event makes its contact due. Done by triggers inside SQLite rather
        // than by returning the changed rows, which would cross to this thread one by
        // one; and only for the contacts of the batch that are not due already (listed
        // in `import_wake`), so that the usual case reads no contact row. Temporary, so
        // only this import's connection has them, and created in the transaction, so a
        // rollback removes them too.
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS import_wake (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID",
        )
        .execute(&mut *tx)
        .await?;
        for (name, event) in [("insert", "INSERT"), ("update", "UPDATE")] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS import_event_{name} AFTER {event} ON main.events \
                 WHEN NEW.contact_id IN (SELECT id FROM temp.import_wake) \
                 BEGIN UPDATE contacts SET next_due_at = 0 WHERE id = NEW.contact_id; END"
            )))
            .execute(&mut *tx)
            .await?;
        }
        Ok(SqliteImport { tx })
    }
}

#[async_trait]
impl ImportTx for SqliteImport {
    async fn upsert_contacts(
        &mut self,
        contacts: &[ContactUpsert],
        now: Timestamp,
    ) -> anyhow::Result<u64> {
        let mut changed = 0;
        for run in runs(contacts, CONTACT_ROWS, |c| c.contact.id.as_str()) {
            // An empty opt-out column keeps the stored flag: one statement per
            // combination of given flags, each with its own update clause.
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

    async fn contact_zones(
        &mut self,
        ids: &[String],
    ) -> anyhow::Result<HashMap<String, Option<String>>> {
        zones(&mut self.tx, ids).await
    }

    async fn upsert_events(&mut self, events: &[Event], now: Timestamp) -> anyhow::Result<u64> {
        let mut changed = 0;
        for run in runs(events, EVENT_ROWS, |e| {
            (e.contact_id.as_str(), e.id.as_str())
        }) {
            // In key order, so that neighbouring rows land on neighbouring pages.
            let mut run: Vec<&Event> = run.iter().collect();
            run.sort_unstable_by(|a, b| (&a.contact_id, &a.id).cmp(&(&b.contact_id, &b.id)));
            let mut ids: Vec<&str> = run.iter().map(|e| e.contact_id.as_str()).collect();
            ids.dedup();
            let wake = not_due(&mut self.tx, &ids).await?;
            if !wake.is_empty() {
                let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO temp.import_wake (id) ");
                q.push_values(&wake, |mut b, id| {
                    b.push_bind(id.as_str());
                });
                q.build().execute(&mut *self.tx).await?;
            }
            let mut fields = Vec::with_capacity(run.len());
            for e in &run {
                fields.push(serde_json::to_string(&e.fields)?);
            }
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (contact_id, id, kind, at, fields, created_at) ",
            );
            q.push_values(run.iter().zip(&fields), |mut b, (e, fields)| {
                b.push_bind(e.contact_id.as_str())
                    .push_bind(e.id.as_str())
                    .push_bind(e.kind.as_str())
                    .push_bind(e.at.as_second())
                    .push_bind(fields.as_str())
                    .push_bind(now.as_second());
            });
            q.push(
                " ON CONFLICT (contact_id, id) DO UPDATE SET kind = excluded.kind, at = excluded.at, \
                 fields = excluded.fields \
                 WHERE events.kind <> excluded.kind OR events.at <> excluded.at OR events.fields <> excluded.fields",
            );
            // Counts the events written, not the triggers' updates.
            changed += q.build().execute(&mut *self.tx).await?.rows_affected();
            if !wake.is_empty() {
                sqlx::query("DELETE FROM temp.import_wake")
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        Ok(changed)
    }

    async fn commit(mut self: Box<Self>) -> anyhow::Result<()> {
        for sql in [
            "DROP TRIGGER temp.import_event_insert",
            "DROP TRIGGER temp.import_event_update",
            "DROP TABLE temp.import_wake",
            "PRAGMA cache_size = -2000",
        ] {
            sqlx::query(sql).execute(&mut *self.tx).await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}

async fn upsert_contact_rows(
    conn: &mut SqliteConnection,
    rows: &[&ContactUpsert],
    (email_given, postcard_given): (bool, bool),
    now: Timestamp,
) -> anyhow::Result<u64> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO contacts (id, first_name, last_name, email, address_line1, address_line2, city, \
         region, postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, fields, \
         digest, next_due_at, created_at, updated_at) ",
    );
    let mut derived = Vec::with_capacity(rows.len());
    for row in rows {
        let c = &row.contact;
        derived.push((
            c.birthday.map(|b| b.to_string()),
            c.tags.join(";"),
            serde_json::to_string(&c.fields)?,
            super::digest(c),
        ));
    }
    q.push_values(rows.iter().zip(&derived), |mut b, (row, derived)| {
        let c = &row.contact;
        let (birthday, tags, fields, digest) = derived;
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

/// The update half of a contact upsert: only a row whose values or given flags differ
/// is written (and made due), so re-importing an unchanged file wakes nothing. Shared
/// with PostgreSQL, whose syntax is the same here.
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

/// Those of `ids` (sorted) whose contact exists and is not due already.
async fn not_due(conn: &mut SqliteConnection, ids: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(ID_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT json_group_array(id) AS ids FROM contacts WHERE next_due_at IS NOT 0 AND id IN (",
        );
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        let row = q.build().fetch_one(&mut *conn).await?;
        out.extend(serde_json::from_str::<Vec<String>>(row.get("ids"))?);
    }
    Ok(out)
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
