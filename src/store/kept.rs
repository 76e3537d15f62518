//! What the console keeps beside the send log: each sent email as it was rendered
//! (pruned by age), and the owner's test sends, which are never the customer's.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::Backend;
use super::sql::{Bind, Sql};

/// A test of a cadence sent to the business's own address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestSend {
    pub contact: String,
    pub cadence: String,
    pub sent_to: String,
    pub sent_at: Timestamp,
    /// The server's reply, or why it failed.
    pub outcome: String,
}

/// Test sends listed on a customer's page, newest first.
const TESTS_SHOWN: i64 = 20;

#[async_trait]
pub trait Kept: Send + Sync {
    /// Keeps each (send id, compressed message) as of `now`; a send already kept
    /// keeps its first.
    async fn keep(&self, messages: Vec<(i64, Vec<u8>)>, now: Timestamp) -> Result<(), StoreError>;
    /// The message kept for a send, and when.
    async fn kept(&self, send_id: i64) -> Result<Option<(Timestamp, Vec<u8>)>, StoreError>;
    /// Those of `ids` that have a kept message.
    async fn kept_among(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError>;
    /// Forgets the messages kept before `before`.
    async fn prune_kept(&self, before: Timestamp) -> Result<(), StoreError>;
    async fn record_test(&self, test: &TestSend) -> Result<(), StoreError>;
    /// A contact's latest test sends, newest first.
    async fn tests_of(&self, contact: &str) -> Result<Vec<TestSend>, StoreError>;
}

#[async_trait]
impl<B: Backend> Kept for B {
    async fn keep(&self, messages: Vec<(i64, Vec<u8>)>, now: Timestamp) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut q = QueryBuilder::new("INSERT INTO kept_messages (send_id, kept_at, body) VALUES ");
        for (i, (id, body)) in messages.into_iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.int(id).push(", ").int(now.as_second()).push(", ");
            q.bytes(body).push(")");
        }
        q.push(" ON CONFLICT (send_id) DO NOTHING");
        let mut tx = self.write().await?;
        B::Db::execute(&mut tx.tx, &mut q).await?;
        tx.commit().await
    }

    async fn kept(&self, send_id: i64) -> Result<Option<(Timestamp, Vec<u8>)>, StoreError> {
        let mut q = QueryBuilder::new("SELECT kept_at, body FROM kept_messages WHERE send_id = ");
        q.int(send_id);
        let mut conn = self.pool().acquire().await?;
        let Some(row) = B::Db::fetch_optional(&mut conn, &mut q).await? else {
            return Ok(None);
        };
        let at = super::ts("kept_at", B::Db::int(&row, "kept_at")?)?;
        Ok(Some((at, B::Db::bytes(&row, "body")?)))
    }

    async fn kept_among(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::new("SELECT send_id FROM kept_messages WHERE send_id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.int(*id);
        }
        q.push(")");
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        Ok(found
            .iter()
            .map(|r| B::Db::int(r, "send_id"))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn prune_kept(&self, before: Timestamp) -> Result<(), StoreError> {
        let mut q = QueryBuilder::new("DELETE FROM kept_messages WHERE kept_at < ");
        q.int(before.as_second());
        let mut tx = self.write().await?;
        B::Db::execute(&mut tx.tx, &mut q).await?;
        tx.commit().await
    }

    async fn record_test(&self, test: &TestSend) -> Result<(), StoreError> {
        let mut q = QueryBuilder::new(
            "INSERT INTO test_sends (contact_id, cadence, sent_to, sent_at, outcome) VALUES (",
        );
        q.text(&test.contact).push(", ").text(&test.cadence);
        q.push(", ").text(&test.sent_to);
        q.push(", ").int(test.sent_at.as_second());
        q.push(", ").text(&test.outcome).push(")");
        let mut tx = self.write().await?;
        B::Db::execute(&mut tx.tx, &mut q).await?;
        tx.commit().await
    }

    async fn tests_of(&self, contact: &str) -> Result<Vec<TestSend>, StoreError> {
        let mut q = QueryBuilder::new(
            "SELECT contact_id, cadence, sent_to, sent_at, outcome FROM test_sends WHERE contact_id = ",
        );
        q.text(contact);
        q.push(" ORDER BY id DESC LIMIT ").int(TESTS_SHOWN);
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        found
            .iter()
            .map(|r| {
                Ok(TestSend {
                    contact: B::Db::text(r, "contact_id")?.to_owned(),
                    cadence: B::Db::text(r, "cadence")?.to_owned(),
                    sent_to: B::Db::text(r, "sent_to")?.to_owned(),
                    sent_at: super::ts("sent_at", B::Db::int(r, "sent_at")?)?,
                    outcome: B::Db::text(r, "outcome")?.to_owned(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kept_messages_are_forgotten_by_age_and_tests_listed_newest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::open(&url).await.expect("store");
        let day = |d: i64| Timestamp::from_second(1_780_000_000 + d * 86_400).unwrap();
        store
            .keep(vec![(1, b"old".to_vec())], day(0))
            .await
            .unwrap();
        store
            .keep(vec![(2, b"new".to_vec())], day(10))
            .await
            .unwrap();
        // A second keep of the same send keeps the first message.
        store
            .keep(vec![(2, b"again".to_vec())], day(11))
            .await
            .unwrap();
        assert_eq!(
            store.kept(2).await.unwrap(),
            Some((day(10), b"new".to_vec()))
        );
        store.prune_kept(day(5)).await.unwrap();
        assert_eq!(store.kept(1).await.unwrap(), None);
        assert_eq!(store.kept_among(&[1, 2, 3]).await.unwrap(), vec![2]);

        for (n, cadence) in ["first", "second"].into_iter().enumerate() {
            let test = TestSend {
                contact: "K-1".into(),
                cadence: cadence.into(),
                sent_to: "owner@example.com".into(),
                sent_at: day(n as i64),
                outcome: "sent: ok".into(),
            };
            store.record_test(&test).await.unwrap();
        }
        let tests = store.tests_of("K-1").await.unwrap();
        let order: Vec<&str> = tests.iter().map(|t| t.cadence.as_str()).collect();
        assert_eq!(order, ["second", "first"]);
        assert!(store.tests_of("K-2").await.unwrap().is_empty());
    }
}
