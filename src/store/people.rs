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
    /// Ids of at most `limit` contacts (any of them when more match), by id: the one whose id is `text`, and those
    /// whose first name, last name or email starts with it (letter case aside), or, for
    /// two words, whose first and last names start with them (in either order).
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
        let words: Vec<String> = text
            .to_lowercase()
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect();
        // Each branch is a range of one index, so SQLite and PostgreSQL answer it by
        // index lookups: an exact id, or the start of a name or an email.
        let starts = |q: &mut QueryBuilder<B::Db>, column: &str, word: &str| {
            let column = format!("lower({column}){}", B::TEXT_ORDER);
            q.push(format!("({column} >= ")).text(word);
            q.push(format!(" AND {column} < "))
                .text(&format!("{word}\u{10FFFF}"));
            q.push(")");
        };
        let mut q = QueryBuilder::new("SELECT id FROM contacts WHERE id = ");
        q.text(&text);
        match words.as_slice() {
            [one] => {
                for column in ["first_name", "last_name", "email"] {
                    q.push(" OR ");
                    starts(&mut q, column, one);
                }
            }
            [first, second] => {
                for (a, b) in [(first, second), (second, first)] {
                    q.push(" OR (");
                    starts(&mut q, "first_name", a);
                    q.push(" AND ");
                    starts(&mut q, "last_name", b);
                    q.push(")");
                }
            }
            _ => {}
        }
        // No ORDER BY: sorting every match of a common name would read them all.
        q.push(" LIMIT ").int(i64::from(limit));
        let mut conn = self.pool().acquire().await?;
        let found = B::Db::fetch_all(&mut conn, &mut q).await?;
        let mut ids: Vec<String> = found
            .iter()
            .map(|r| B::Db::text(r, "id").map(str::to_owned))
            .collect::<Result<_, sqlx::Error>>()?;
        ids.sort_unstable();
        Ok(ids)
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
