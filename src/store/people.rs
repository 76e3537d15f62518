//! Reads of contacts for people looking at the send log (the console): the contacts
//! behind a page of rows, and the contacts a search names.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::Backend;
use super::sql::{Bind, CONTACT_COLUMNS, Sql, contact_from_row, in_list, rows};
use crate::domain::Contact;

/// Longest search text taken; longer is cut (a name or an address is shorter).
const QUERY_CHARS: usize = 100;

#[async_trait]
pub trait People: Send + Sync {
    /// Those of `ids` that exist, in no order.
    async fn contacts(&self, ids: &[String]) -> Result<Vec<Contact>, StoreError>;
    /// Ids of at most `limit` contacts whose id or email is `text`, or whose name or
    /// email contains it (letter case aside), by id.
    async fn search(&self, text: &str, limit: u32) -> Result<Vec<String>, StoreError>;
    /// Ids of at most `limit` contacts that may need a decision by `until` (by the due
    /// index), after `after` (next_due_at, id) in that order: those a look ahead reads.
    async fn due_by(
        &self,
        until: Timestamp,
        after: (i64, &str),
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StoreError>;
}

#[async_trait]
impl<B: Backend> People for B {
    async fn contacts(&self, ids: &[String]) -> Result<Vec<Contact>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let head = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id IN (");
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut in_list(&head, ids)).await?;
        rows::<B::Db, _>(&found, contact_from_row::<B::Db>)
    }

    async fn search(&self, text: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let text: String = text.trim().chars().take(QUERY_CHARS).collect();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let pattern = format!("%{}%", like_escaped(&text.to_lowercase()));
        let mut q = QueryBuilder::new("SELECT id FROM contacts WHERE id = ");
        q.text(&text);
        q.push(" OR lower(coalesce(email, '')) LIKE ")
            .text(&pattern);
        q.push(" ESCAPE '\\' OR lower(first_name || ' ' || last_name) LIKE ")
            .text(&pattern);
        q.push(" ESCAPE '\\' ORDER BY id LIMIT ")
            .int(i64::from(limit));
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        Ok(found
            .iter()
            .map(|r| B::Db::text(r, "id").map(str::to_owned))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn due_by(
        &self,
        until: Timestamp,
        (after_due, after_id): (i64, &str),
        limit: u32,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut q = QueryBuilder::new("SELECT next_due_at, id FROM contacts WHERE next_due_at <= ");
        q.int(until.as_second());
        q.push(" AND (next_due_at, id) > (").int(after_due);
        q.push(", ").text(after_id);
        q.push(") ORDER BY next_due_at, id LIMIT ")
            .int(i64::from(limit));
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        Ok(found
            .iter()
            .map(|r| {
                Ok((
                    B::Db::int(r, "next_due_at")?,
                    B::Db::text(r, "id")?.to_owned(),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }
}

/// `text` with LIKE's wildcards taken literally.
fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
