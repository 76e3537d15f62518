//! The console's pages and actions: each reads the store through the engine in use,
//! shapes plain JSON for its view, and shows times in the business's zone.

use std::collections::{HashMap, HashSet};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::SignedIn;
use super::view;
pub(super) use crate::domain::time::minute as when;
use crate::domain::time::rfc3339;
use crate::domain::{Channel, Contact, SendStatus};
use crate::http::AppState;
use crate::store::{SendFilter, SendRow, Store};
use crate::tick::Engine;
use crate::timeline::reason_in_words;

/// Rows on a page of the send log.
const PAGE: u32 = 50;
/// Rows a CSV export holds at most.
const CSV_ROWS: u32 = 100_000;
/// Contacts a search may match; their rows are what the page lists.
const SEARCH_CONTACTS: u32 = 500;

/// What an id in a path keeps as it is: letters, digits and `-._~` (RFC 3986's unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(super) fn link(id: &str) -> String {
    utf8_percent_encode(id, PATH_SEGMENT).to_string()
}

/// What every page's layout needs.
pub(super) fn frame(
    engine: &Engine,
    title: &str,
    nav: &str,
    csrf: &str,
) -> serde_json::Map<String, Value> {
    frame_at(engine, title, nav, csrf, "/console/")
}

/// The layout's data for a page at `here` (where its forms come back to).
pub(super) fn frame_at(
    engine: &Engine,
    title: &str,
    nav: &str,
    csrf: &str,
    here: &str,
) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("title".into(), title.into());
    m.insert(
        "business".into(),
        engine.config.business.name.clone().into(),
    );
    m.insert(
        "zone".into(),
        zone_name(&engine.config.business.zone).into(),
    );
    m.insert("nav".into(), nav.into());
    m.insert("csrf".into(), csrf.into());
    m.insert("here".into(), here.into());
    m
}

pub(super) fn zone_name(zone: &TimeZone) -> String {
    zone.iana_name().unwrap_or("UTC").to_owned()
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console: the database did not answer");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The database did not answer; try again in a moment.\n",
    )
        .into_response()
}

/// Send-log rows as the views show them, with each contact's name and town.
pub(super) async fn shaped_rows(
    store: &dyn Store,
    rows: &[SendRow],
    zone: &TimeZone,
) -> Result<Vec<Value>, Response> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.contact.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let contacts: HashMap<String, Contact> = store
        .contacts(&ids)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let sent: Vec<i64> = rows
        .iter()
        .filter(|r| r.status == SendStatus::Sent && r.channel == Channel::Email)
        .map(|r| r.id)
        .collect();
    let kept: HashSet<i64> = store
        .kept_among(&sent)
        .await
        .map_err(unavailable)?
        .into_iter()
        .collect();
    Ok(rows
        .iter()
        .map(|r| {
            let c = contacts.get(&r.contact);
            json!({
                "contact": r.contact,
                "contact_link": link(&r.contact),
                "contact_name": c.map_or_else(|| "(no longer a contact)".to_owned(), Contact::full_name),
                "contact_where": c.map(place).unwrap_or_default(),
                "cadence": r.cadence,
                "occurrence": r.occurrence,
                "channel": r.channel.to_string(),
                "status": r.status.as_str(),
                "reason": r.reason.as_deref().map(reason_in_words),
                "reply": r.reply,
                "attempts": r.attempts,
                "id": r.id,
                "retry": matches!(r.status, SendStatus::Failed | SendStatus::Retrying),
                "kept": kept.contains(&r.id),
                "due": when(r.due_at, zone),
                "updated": when(r.updated_at, zone),
            })
        })
        .collect())
}

/// Where a contact is, shortly: the email, else the town.
fn place(c: &Contact) -> String {
    match &c.email {
        Some(email) => email.as_str().to_owned(),
        None => [c.address.city.as_str(), c.address.region.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
    }
}

pub async fn summary(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
) -> Response {
    let engine = state.status.engine();
    let report = state.status.report();
    let zone = &engine.config.business.zone;
    let now = Timestamp::now();
    let today = now.to_zoned(zone.clone()).date();
    let week = today.saturating_sub(jiff::Span::new().days(6));
    let start = |d: jiff::civil::Date| d.to_zoned(zone.clone()).map(|z| z.timestamp()).ok();
    let store = engine.store.as_ref();
    let ids = engine.config.cadence_ids();
    let counted = |statuses, since| store.cadence_counts(&ids, statuses, since);
    let (Ok(today_counts), Ok(week_counts), Ok(all_counts)) = (
        counted(&[SendStatus::Sent], start(today)).await,
        counted(&[SendStatus::Sent], start(week)).await,
        // All-time counts only of what is rare or owed attention, never of `sent`.
        counted(
            &[
                SendStatus::Failed,
                SendStatus::Retrying,
                SendStatus::Skipped,
                SendStatus::Bounced,
            ],
            None,
        )
        .await,
    ) else {
        return unavailable("status counts");
    };
    // Summed over the cadences.
    let n = |counts: &[(String, SendStatus, i64)], s: SendStatus| -> i64 {
        counts.iter().filter(|c| c.1 == s).map(|c| c.2).sum()
    };
    let failed = match store
        .sends(&SendFilter {
            status: Some(SendStatus::Failed),
            limit: Some(10),
            ..SendFilter::default()
        })
        .await
    {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let failures = match shaped_rows(store, &failed, zone).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let mut data = frame(&engine, "Summary", "summary", &me.csrf);
    data.insert("today".into(), today.to_string().into());
    data.insert("week".into(), week.to_string().into());
    data.insert(
        "sent_today".into(),
        n(&today_counts, SendStatus::Sent).into(),
    );
    data.insert("sent_week".into(), n(&week_counts, SendStatus::Sent).into());
    data.insert("failed".into(), n(&all_counts, SendStatus::Failed).into());
    data.insert(
        "retrying".into(),
        n(&all_counts, SendStatus::Retrying).into(),
    );
    data.insert("skipped".into(), n(&all_counts, SendStatus::Skipped).into());
    data.insert("bounced".into(), n(&all_counts, SendStatus::Bounced).into());
    match store.count_suppressions().await {
        Ok(count) => data.insert("suppressed".into(), count.into()),
        Err(e) => return unavailable(e),
    };
    data.insert("paused".into(), report.paused.unwrap_or_default().into());
    data.insert(
        "reload_error".into(),
        report.reload_error.unwrap_or_default().into(),
    );
    data.insert(
        "last_tick".into(),
        report
            .last_tick_at
            .map_or_else(|| "not yet".to_owned(), |t| when(t, zone))
            .into(),
    );
    data.insert("failures".into(), failures.into());
    view::page("summary", &Value::Object(data))
}

/// The send log's filters, as the query string carries them.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cadence: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    since: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    until: String,
    /// `UPDATED.ID` of the last row of the page before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    before: String,
}

impl Filters {
    /// The store's filter, or what is wrong with one of them.
    async fn to_filter(
        &self,
        store: &dyn Store,
        zone: &TimeZone,
        limit: u32,
    ) -> Result<SendFilter, String> {
        let day = |name: &str, text: &str, next: bool| -> Result<Option<Timestamp>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            let date: jiff::civil::Date = text
                .parse()
                .map_err(|_| format!("{name}: `{text}` is not a date (YYYY-MM-DD)"))?;
            let date = if next {
                date.tomorrow().map_err(|e| e.to_string())?
            } else {
                date
            };
            date.to_zoned(zone.clone())
                .map(|z| Some(z.timestamp()))
                .map_err(|e| e.to_string())
        };
        let mut filter = SendFilter {
            since: day("since", &self.since, false)?,
            until: day("until", &self.until, true)?,
            limit: Some(limit),
            ..SendFilter::default()
        };
        if !self.status.is_empty() {
            filter.status = Some(SendStatus::parse(&self.status)?);
        }
        if !self.channel.is_empty() {
            filter.channel = Some(Channel::parse(&self.channel)?);
        }
        if !self.cadence.is_empty() {
            filter.cadence = Some(self.cadence.clone());
        }
        if !self.before.is_empty() {
            let (at, id) = self
                .before
                .split_once('.')
                .ok_or("before: not a page mark")?;
            let at = at.parse().ok().and_then(|s| Timestamp::from_second(s).ok());
            let id = id.parse().ok();
            let (Some(at), Some(id)) = (at, id) else {
                return Err("before: not a page mark".into());
            };
            filter.before = Some((at, id));
        }
        if !self.q.trim().is_empty() {
            let found = store
                .search(&self.q, SEARCH_CONTACTS)
                .await
                .map_err(|e| e.to_string())?;
            filter.contacts = Some(found);
        }
        Ok(filter)
    }

    fn query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

/// `(value, label, selected)` options of a select, "any" first.
fn options(values: impl IntoIterator<Item = String>, chosen: &str) -> Value {
    let mut out = vec![json!({"value": "", "label": "any", "selected": chosen.is_empty()})];
    out.extend(
        values
            .into_iter()
            .map(|v| json!({"selected": v == chosen, "label": v, "value": v})),
    );
    Value::Array(out)
}

pub async fn sends(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Query(f): Query<Filters>,
) -> Response {
    let engine = state.status.engine();
    let zone = &engine.config.business.zone;
    let store = engine.store.as_ref();
    let here = format!("/console/sends?{}", f.query());
    let mut data = frame_at(&engine, "Send log", "sends", &me.csrf, &here);
    let (rows, error) = match f.to_filter(store, zone, PAGE + 1).await {
        Ok(filter) => match store.sends(&filter).await {
            Ok(rows) => (rows, String::new()),
            Err(e) => return unavailable(e),
        },
        Err(e) => (Vec::new(), e),
    };
    let more = rows.len() > PAGE as usize;
    let page = &rows[..rows.len().min(PAGE as usize)];
    let older = match (more, page.last()) {
        (true, Some(last)) => Filters {
            before: format!("{}.{}", last.updated_at.as_second(), last.id),
            ..f.clone()
        }
        .query(),
        _ => String::new(),
    };
    let first = if f.before.is_empty() {
        String::new()
    } else {
        let q = Filters {
            before: String::new(),
            ..f.clone()
        }
        .query();
        if q.is_empty() { "all".to_owned() } else { q }
    };
    let shaped = match shaped_rows(store, page, zone).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let statuses = ["sent", "failed", "retrying", "skipped", "pending"].map(str::to_owned);
    data.insert("rows".into(), shaped.into());
    data.insert("older".into(), older.into());
    data.insert("first".into(), first.into());
    data.insert(
        "csv".into(),
        Filters {
            before: String::new(),
            ..f.clone()
        }
        .query()
        .into(),
    );
    data.insert("error".into(), error.into());
    data.insert("statuses".into(), options(statuses, &f.status));
    data.insert(
        "channels".into(),
        options(["email", "postcard"].map(str::to_owned), &f.channel),
    );
    data.insert(
        "cadences".into(),
        options(
            engine.config.cadences.iter().map(|c| c.id.clone()),
            &f.cadence,
        ),
    );
    data.insert("f".into(), serde_json::to_value(&f).unwrap_or_default());
    let mut object = Value::Object(data);
    // The form shows every field, filled or not.
    for key in ["q", "since", "until"] {
        if object["f"].get(key).is_none() {
            object["f"][key] = "".into();
        }
    }
    view::page("sends", &object)
}

pub async fn sends_csv(State(state): State<AppState>, Query(f): Query<Filters>) -> Response {
    let engine = state.status.engine();
    let zone = &engine.config.business.zone;
    let store = engine.store.as_ref();
    let filter = match f.to_filter(store, zone, CSV_ROWS).await {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let rows = match store.sends(&filter).await {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let mut out = crate::csv_safe::Writer::new(Vec::new());
    let head = [
        "updated_at",
        "contact",
        "cadence",
        "occurrence",
        "channel",
        "status",
        "reason",
        "reply",
        "attempts",
        "due_at",
    ];
    let mut ok = out.write_record(head).is_ok();
    for r in &rows {
        let cells = [
            rfc3339(r.updated_at, zone),
            r.contact.clone(),
            r.cadence.clone(),
            r.occurrence.clone(),
            r.channel.to_string(),
            r.status.as_str().to_owned(),
            r.reason.clone().unwrap_or_default(),
            r.reply.clone().unwrap_or_default(),
            r.attempts.to_string(),
            rfc3339(r.due_at, zone),
        ];
        ok &= out.write_record(cells.iter().map(String::as_str)).is_ok();
    }
    let (true, Ok(body)) = (ok, out.into_inner()) else {
        return unavailable("csv");
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sends.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}
