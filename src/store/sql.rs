//! What the shared queries need of a sqlx database, said once: binding values, reading
//! columns, running a built statement, and turning rows into the store's types. Any
//! sqlx database whose driver has these types (SQLite, PostgreSQL) gets it.

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, QueryBuilder, Type};
use tokio::sync::OwnedMutexGuard;

use super::{SendRow, StoreError, ts};
use crate::domain::{
    Channel, Contact, EmailAddress, Event, Fields, MonthDay, PostalAddress, SendStatus,
};

pub(crate) type SqlResult<T> = Result<T, sqlx::Error>;

/// A sqlx database the shared queries run on. Written as methods (rather than bounds
/// on each query) so that `DB: Sql` is all a generic query has to say.
pub(crate) trait Sql: Database {
    fn bind_int(q: &mut QueryBuilder<Self>, value: i64);
    fn bind_text(q: &mut QueryBuilder<Self>, value: &str);
    fn bind_flag(q: &mut QueryBuilder<Self>, value: bool);
    fn bind_bytes(q: &mut QueryBuilder<Self>, value: Vec<u8>);
    fn int(row: &Self::Row, column: &str) -> SqlResult<i64>;
    fn opt_int(row: &Self::Row, column: &str) -> SqlResult<Option<i64>>;
    fn text<'r>(row: &'r Self::Row, column: &str) -> SqlResult<&'r str>;
    fn opt_text<'r>(row: &'r Self::Row, column: &str) -> SqlResult<Option<&'r str>>;
    fn flag(row: &Self::Row, column: &str) -> SqlResult<bool>;
    fn bytes(row: &Self::Row, column: &str) -> SqlResult<Vec<u8>>;
    fn opt_bytes(row: &Self::Row, column: &str) -> SqlResult<Option<Vec<u8>>>;
    fn fetch_all<'a>(
        conn: &'a mut Self::Connection,
        q: &'a mut QueryBuilder<Self>,
    ) -> BoxFuture<'a, SqlResult<Vec<Self::Row>>>;
    fn fetch_optional<'a>(
        conn: &'a mut Self::Connection,
        q: &'a mut QueryBuilder<Self>,
    ) -> BoxFuture<'a, SqlResult<Option<Self::Row>>>;
    fn execute<'a>(
        conn: &'a mut Self::Connection,
        q: &'a mut QueryBuilder<Self>,
    ) -> BoxFuture<'a, SqlResult<()>>;
}

impl<DB> Sql for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Decode<'q, DB> + Type<DB> + ColumnIndex<DB::Row>,
{
    fn bind_int(q: &mut QueryBuilder<DB>, value: i64) {
        q.push_bind(value);
    }
    fn bind_text(q: &mut QueryBuilder<DB>, value: &str) {
        q.push_bind(value);
    }
    fn bind_flag(q: &mut QueryBuilder<DB>, value: bool) {
        q.push_bind(value);
    }
    fn bind_bytes(q: &mut QueryBuilder<DB>, value: Vec<u8>) {
        q.push_bind(value);
    }
    fn int(row: &DB::Row, column: &str) -> SqlResult<i64> {
        sqlx::Row::try_get(row, column)
    }
    fn opt_int(row: &DB::Row, column: &str) -> SqlResult<Option<i64>> {
        sqlx::Row::try_get(row, column)
    }
    fn text<'r>(row: &'r DB::Row, column: &str) -> SqlResult<&'r str> {
        sqlx::Row::try_get(row, column)
    }
    fn opt_text<'r>(row: &'r DB::Row, column: &str) -> SqlResult<Option<&'r str>> {
        sqlx::Row::try_get(row, column)
    }
    fn flag(row: &DB::Row, column: &str) -> SqlResult<bool> {
        sqlx::Row::try_get(row, column)
    }
    fn bytes(row: &DB::Row, column: &str) -> SqlResult<Vec<u8>> {
        sqlx::Row::try_get(row, column)
    }
    fn opt_bytes(row: &DB::Row, column: &str) -> SqlResult<Option<Vec<u8>>> {
        sqlx::Row::try_get(row, column)
    }
    fn fetch_all<'a>(
        conn: &'a mut DB::Connection,
        q: &'a mut QueryBuilder<DB>,
    ) -> BoxFuture<'a, SqlResult<Vec<DB::Row>>> {
        Box::pin(q.build().fetch_all(conn))
    }
    fn fetch_optional<'a>(
        conn: &'a mut DB::Connection,
        q: &'a mut QueryBuilder<DB>,
    ) -> BoxFuture<'a, SqlResult<Option<DB::Row>>> {
        Box::pin(q.build().fetch_optional(conn))
    }
    fn execute<'a>(
        conn: &'a mut DB::Connection,
        q: &'a mut QueryBuilder<DB>,
    ) -> BoxFuture<'a, SqlResult<()>> {
        Box::pin(async move { q.build().execute(conn).await.map(drop) })
    }
}

/// `push_bind` by type, for statements built over any [`Sql`] database.
pub(crate) trait Bind {
    fn int(&mut self, value: i64) -> &mut Self;
    fn text(&mut self, value: &str) -> &mut Self;
    fn flag(&mut self, value: bool) -> &mut Self;
    fn bytes(&mut self, value: Vec<u8>) -> &mut Self;
}

impl<DB: Sql> Bind for QueryBuilder<DB> {
    fn int(&mut self, value: i64) -> &mut Self {
        DB::bind_int(self, value);
        self
    }
    fn text(&mut self, value: &str) -> &mut Self {
        DB::bind_text(self, value);
        self
    }
    fn flag(&mut self, value: bool) -> &mut Self {
        DB::bind_flag(self, value);
        self
    }
    fn bytes(&mut self, value: Vec<u8>) -> &mut Self {
        DB::bind_bytes(self, value);
        self
    }
}

/// A write transaction, and on SQLite this process's write turn, given back after the
/// transaction ends (fields drop in order).
pub(crate) struct Write<DB: Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) _turn: Option<OwnedMutexGuard<()>>,
}

impl<DB: Database> Write<DB> {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}

/// `head` followed by the ids as a bound list, and `)`.
pub(crate) fn in_list<DB: Sql>(head: &str, ids: &[String]) -> QueryBuilder<DB> {
    let mut q = QueryBuilder::<DB>::new(head);
    push_list(&mut q, ids);
    q
}

/// Binds `ids` as a comma-separated list and closes it with `)`: the end of an `IN`
/// list whose head binds values of its own.
pub(crate) fn push_list<DB: Sql>(q: &mut QueryBuilder<DB>, ids: &[String]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.text(id);
    }
    q.push(")");
}

pub(crate) const CONTACT_COLUMNS: &str = "id, first_name, last_name, email, address_line1, address_line2, city, region, \
     postal_code, country, birthday, timezone, tags, email_opt_out, postcard_opt_out, fields, armed_at";

pub(crate) const EVENT_COLUMNS: &str = "contact_id, id, kind, at, fields, armed_at";

pub(crate) const SEND_COLUMNS: &str = "id, contact_id, cadence, occurrence, channel, status, reason, event_id, due_at, \
     attempts, next_attempt_at, message_id, reply, created_at, updated_at";

/// A row's columns by name, whichever library fetched it: the contact and event rows
/// are read through sqlx, and a pass's histories on SQLite through rusqlite.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: &str) -> Result<&str, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<&str>, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;

    fn owned(&self, column: &str) -> Result<String, StoreError> {
        self.text(column).map(str::to_owned)
    }
    fn opt_owned(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.opt_text(column)?.map(str::to_owned))
    }
    fn time(&self, column: &str) -> Result<Timestamp, StoreError> {
        ts(column, self.int(column)?)
    }
    fn opt_time(&self, column: &str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_int(column)?.map(|t| ts(column, t)).transpose()
    }
    fn status(&self) -> Result<SendStatus, StoreError> {
        SendStatus::parse(self.text("status")?).map_err(StoreError::Corrupt)
    }
}

/// A row fetched through sqlx, read as [`Columns`].
pub(crate) struct SqlxRow<'r, DB: Sql>(pub(crate) &'r DB::Row);

impl<DB: Sql> Columns for SqlxRow<'_, DB> {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(DB::int(self.0, column)?)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(DB::opt_int(self.0, column)?)
    }
    fn text(&self, column: &str) -> Result<&str, StoreError> {
        Ok(DB::text(self.0, column)?)
    }
    fn opt_text(&self, column: &str) -> Result<Option<&str>, StoreError> {
        Ok(DB::opt_text(self.0, column)?)
    }
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        Ok(DB::flag(self.0, column)?)
    }
}

/// A row of [`CONTACT_COLUMNS`].
pub(crate) fn contact_from_row<DB: Sql>(row: &DB::Row) -> Result<Contact, StoreError> {
    contact_from(&SqlxRow::<DB>(row))
}

/// A row of [`EVENT_COLUMNS`].
pub(crate) fn event_from_row<DB: Sql>(row: &DB::Row) -> Result<Event, StoreError> {
    event_from(&SqlxRow::<DB>(row))
}

/// A row of [`CONTACT_COLUMNS`], however fetched.
pub(crate) fn contact_from(row: &impl Columns) -> Result<Contact, StoreError> {
    let tags = row.text("tags")?;
    Ok(Contact {
        id: row.owned("id")?,
        first_name: row.owned("first_name")?,
        last_name: row.owned("last_name")?,
        email: row
            .opt_text("email")?
            .and_then(|e| EmailAddress::parse(e).ok()),
        address: PostalAddress {
            line1: row.owned("address_line1")?,
            line2: row.owned("address_line2")?,
            city: row.owned("city")?,
            region: row.owned("region")?,
            postal_code: row.owned("postal_code")?,
            country: row.owned("country")?,
        },
        birthday: row
            .opt_text("birthday")?
            .and_then(|b| MonthDay::parse(b).ok()),
        timezone: row.opt_text("timezone")?.map(str::to_owned),
        tags: tags
            .split(';')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        email_opt_out: row.flag("email_opt_out")?,
        postcard_opt_out: row.flag("postcard_opt_out")?,
        fields: Fields::stored(row.owned("fields")?),
        armed_at: row.opt_time("armed_at")?,
    })
}

/// A row of [`EVENT_COLUMNS`], however fetched.
pub(crate) fn event_from(row: &impl Columns) -> Result<Event, StoreError> {
    Ok(Event {
        contact_id: row.owned("contact_id")?,
        id: row.owned("id")?,
        kind: row.owned("kind")?,
        at: row.time("at")?,
        fields: Fields::stored(row.owned("fields")?),
        armed_at: row.opt_time("armed_at")?,
    })
}

/// A row of [`SEND_COLUMNS`].
pub(crate) fn send_from_row<DB: Sql>(row: &DB::Row) -> Result<SendRow, StoreError> {
    let row = SqlxRow::<DB>(row);
    Ok(SendRow {
        id: row.int("id")?,
        contact: row.owned("contact_id")?,
        cadence: row.owned("cadence")?,
        occurrence: row.owned("occurrence")?,
        channel: Channel::parse(row.text("channel")?).map_err(StoreError::Corrupt)?,
        status: row.status()?,
        reason: row.opt_owned("reason")?,
        due_at: row.time("due_at")?,
        attempts: row.int("attempts")?,
        message_id: row.owned("message_id")?,
        reply: row.opt_owned("reply")?,
        next_attempt_at: row.opt_time("next_attempt_at")?,
        updated_at: row.time("updated_at")?,
        created_at: row.time("created_at")?,
        event_id: row.opt_owned("event_id")?,
    })
}

pub(crate) fn rows<DB: Sql, T>(
    rows: &[DB::Row],
    from_row: fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(from_row).collect()
}
