//! The suppression list and what feeds it: entries by address, transient failures
//! counted per address, reports already acted on, and the send a bounce answers.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::{BATCH, Backend, write_returning};
use super::sql::{Bind, Sql, in_list};
use crate::domain::Suppression;

#[async_trait]
pub trait Suppressions: Send + Sync {
    /// Adds the entries whose address is not on the list yet (an address keeps its
    /// first reason); how many were added.
    async fn suppress(&self, entries: &[Suppression]) -> Result<u64, StoreError>;
    /// Takes `address` (normalised) off the list; `false` when it was not on it.
    async fn unsuppress(&self, address: &str) -> Result<bool, StoreError>;
    /// Takes `address` off the list only if it is there for `reason`.
    async fn unsuppress_if(&self, address: &str, reason: &str) -> Result<bool, StoreError>;
    /// The newest `limit` entries, without their reports.
    async fn suppressions(&self, limit: i64) -> Result<Vec<Suppression>, StoreError>;
    /// One entry with its report.
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError>;
    /// The reason of each of `addresses` (normalised) that is on the list.
    async fn suppressed(&self, addresses: &[String])
    -> Result<HashMap<String, String>, StoreError>;
    async fn count_suppressions(&self) -> Result<i64, StoreError>;
    /// Notes a transient failure for `address` at `at`; how many it has had since
    /// `since` (this one included).
    async fn soft_bounce(
        &self,
        address: &str,
        at: Timestamp,
        since: Timestamp,
        detail: &str,
    ) -> Result<i64, StoreError>;
    /// Notes that the report `message_id` was acted on; `false` when it already was.
    async fn first_sight_of_report(
        &self,
        message_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Moves the sent email `send_id` to `bounced` with `reason`; `false` when no sent
    /// row has that id.
    async fn mark_bounced(
        &self,
        send_id: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// The email address of the contact that send `send_id` went to.
    async fn send_recipient(&self, send_id: i64) -> Result<Option<String>, StoreError>;
    /// The id of the send whose Message-ID is `message_id`, among the sends of the
    /// contacts whose email is `address` (found through the email index).
    async fn send_with_message_id(
        &self,
        address: &str,
        message_id: &str,
    ) -> Result<Option<i64>, StoreError>;
}

const COLUMNS: &str = "address, reason, detail, added_at";

fn entry<DB: Sql>(row: &DB::Row, report: bool) -> Result<Suppression, StoreError> {
    Ok(Suppression {
        address: DB::text(row, "address")?.to_owned(),
        reason: DB::text(row, "reason")?.to_owned(),
        detail: DB::text(row, "detail")?.to_owned(),
        added_at: super::ts("added_at", DB::int(row, "added_at")?)?,
        report: if report {
            DB::opt_bytes(row, "report")?
        } else {
            None
        },
    })
}

#[async_trait]
impl<B: Backend> Suppressions for B {
    async fn suppress(&self, entries: &[Suppression]) -> Result<u64, StoreError> {
        let mut added = 0;
        let mut tx = self.write().await?;
        for entry in entries {
            let mut q = QueryBuilder::new(
                "INSERT INTO suppressions (address, reason, detail, added_at, report) VALUES (",
            );
            q.text(&entry.address).push(", ").text(&entry.reason);
            q.push(", ").text(&entry.detail);
            q.push(", ").int(entry.added_at.as_second()).push(", ");
            match &entry.report {
                Some(report) => q.bytes(report.clone()),
                None => q.push("NULL"),
            };
            q.push(") ON CONFLICT (address) DO NOTHING RETURNING address");
            if B::Db::fetch_optional(&mut tx.tx, &mut q).await?.is_some() {
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn unsuppress(&self, address: &str) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::new("DELETE FROM suppressions WHERE address = ");
        q.text(address).push(" RETURNING address");
        write_returning(self, &mut q).await
    }

    async fn unsuppress_if(&self, address: &str, reason: &str) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::new("DELETE FROM suppressions WHERE address = ");
        q.text(address).push(" AND reason = ").text(reason);
        q.push(" RETURNING address");
        write_returning(self, &mut q).await
    }

    async fn suppressions(&self, limit: i64) -> Result<Vec<Suppression>, StoreError> {
        let mut q = QueryBuilder::new(format!(
            "SELECT {COLUMNS} FROM suppressions ORDER BY added_at DESC, address LIMIT "
        ));
        q.int(limit);
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        found.iter().map(|r| entry::<B::Db>(r, false)).collect()
    }

    async fn suppression(&self, address: &str) -> Result<Option<Suppression>, StoreError> {
        let mut q = QueryBuilder::new(format!(
            "SELECT {COLUMNS}, report FROM suppressions WHERE address = "
        ));
        q.text(address);
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_optional(&mut conn, &mut q).await?;
        found.map(|r| entry::<B::Db>(&r, true)).transpose()
    }

    async fn suppressed(
        &self,
        addresses: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        let mut conn = self.pool().acquire().await?;
        for chunk in addresses.chunks(BATCH) {
            let head = "SELECT address, reason FROM suppressions WHERE address IN (";
            for row in B::Db::fetch_all(&mut conn, &mut in_list(head, chunk)).await? {
                out.insert(
                    B::Db::text(&row, "address")?.to_owned(),
                    B::Db::text(&row, "reason")?.to_owned(),
                );
            }
        }
        Ok(out)
    }

    async fn count_suppressions(&self) -> Result<i64, StoreError> {
        let mut q = QueryBuilder::new("SELECT count(*) AS n FROM suppressions");
        let mut conn = self.pool().acquire().await?;
        let row = B::Db::fetch_optional(&mut conn, &mut q).await?;
        Ok(row.map(|r| B::Db::int(&r, "n")).transpose()?.unwrap_or(0))
    }

    async fn soft_bounce(
        &self,
        address: &str,
        at: Timestamp,
        since: Timestamp,
        detail: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        // Failures older than the window no longer count: the address's rows stay few.
        let mut q = QueryBuilder::new("DELETE FROM soft_bounces WHERE address = ");
        q.text(address).push(" AND at < ").int(since.as_second());
        B::Db::execute(&mut tx.tx, &mut q).await?;
        let mut q = QueryBuilder::new("INSERT INTO soft_bounces (address, at, detail) VALUES (");
        q.text(address).push(", ").int(at.as_second());
        q.push(", ").text(detail).push(")");
        B::Db::execute(&mut tx.tx, &mut q).await?;
        let mut q = QueryBuilder::new("SELECT count(*) AS n FROM soft_bounces WHERE address = ");
        q.text(address).push(" AND at >= ").int(since.as_second());
        let row = B::Db::fetch_optional(&mut tx.tx, &mut q).await?;
        tx.commit().await?;
        Ok(row.map(|r| B::Db::int(&r, "n")).transpose()?.unwrap_or(0))
    }

    async fn first_sight_of_report(
        &self,
        message_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::new("INSERT INTO reports_seen (message_id, seen_at) VALUES (");
        q.text(message_id).push(", ").int(now.as_second());
        q.push(") ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
        write_returning(self, &mut q).await
    }

    async fn mark_bounced(
        &self,
        send_id: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut q = QueryBuilder::new("UPDATE sends SET status = 'bounced', reason = ");
        q.text(reason).push(", updated_at = ").int(now.as_second());
        q.push(" WHERE id = ").int(send_id);
        q.push(" AND channel = 'email' AND status IN ('sent', 'bounced') RETURNING id");
        write_returning(self, &mut q).await
    }

    async fn send_recipient(&self, send_id: i64) -> Result<Option<String>, StoreError> {
        let mut q = QueryBuilder::new(
            "SELECT c.email FROM sends s JOIN contacts c ON c.id = s.contact_id WHERE s.id = ",
        );
        q.int(send_id);
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_optional(&mut conn, &mut q).await?;
        Ok(found
            .map(|r| B::Db::opt_text(&r, "email").map(|e| e.map(str::to_owned)))
            .transpose()?
            .flatten())
    }

    async fn send_with_message_id(
        &self,
        address: &str,
        message_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut q = QueryBuilder::new(format!(
            "SELECT s.id FROM contacts c JOIN sends s ON s.contact_id = c.id \
             WHERE lower(c.email){} = ",
            B::TEXT_ORDER
        ));
        q.text(&address.to_lowercase());
        q.push(" AND s.message_id = ").text(message_id);
        q.push(" LIMIT 1");
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_optional(&mut conn, &mut q).await?;
        Ok(found.map(|r| B::Db::int(&r, "id")).transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::domain::EmailAddress;

    #[tokio::test]
    async fn an_address_keeps_its_first_reason_and_old_failures_stop_counting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::open(&url).await.expect("store");
        let day = |d: i64| Timestamp::from_second(1_780_000_000 + d * 86_400).unwrap();
        let address = EmailAddress::parse("Ana@Example.org").unwrap();
        let entry = |reason: &str| Suppression::new(&address, reason, "", day(0)).unwrap();
        assert_eq!(store.suppress(&[entry("bounced")]).await.unwrap(), 1);
        assert_eq!(store.suppress(&[entry("manual")]).await.unwrap(), 0);
        let found = store
            .suppressed(&["Ana@example.org".into(), "bob@example.org".into()])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found["Ana@example.org"], "bounced");
        assert!(
            !store
                .unsuppress_if("Ana@example.org", "unsubscribed")
                .await
                .unwrap()
        );
        assert!(store.unsuppress("Ana@example.org").await.unwrap());
        assert_eq!(store.count_suppressions().await.unwrap(), 0);

        // Two failures a month apart are one each; two in the window are two.
        let window = |d: i64| day(d) - SignedDuration::from_hours(7 * 24);
        let key = "Ana@example.org";
        assert_eq!(
            store
                .soft_bounce(key, day(0), window(0), "4.2.2")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .soft_bounce(key, day(30), window(30), "4.2.2")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .soft_bounce(key, day(32), window(32), "4.2.2")
                .await
                .unwrap(),
            2
        );
        assert!(
            store
                .first_sight_of_report("<r1@mx>", day(0))
                .await
                .unwrap()
        );
        assert!(
            !store
                .first_sight_of_report("<r1@mx>", day(1))
                .await
                .unwrap()
        );
    }
}
