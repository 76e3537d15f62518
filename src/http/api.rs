//! `POST /api/v1/contacts`, `POST /api/v1/events` (the CSV columns as JSON) and
//! `POST /api/v1/suppressions`: one object or an array of at most 1,000. `Authorization: Bearer TOKEN` is required (401),
//! and checked before any of the body is read. A request is all or nothing: any invalid
//! record gets 422 with each field at fault (the first hundred, and how many more), and
//! nothing is stored.

use std::time::Duration;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::AppState;
pub use super::field_errors::{FieldError, FieldErrors};
pub use super::records::records;
use crate::domain::{EmailAddress, Suppression};
use crate::store::{ContactUpsert, EventUpsert, Store, StoreError};
use crate::sync::{self, Record};

/// How long a request's body may take to arrive, once its headers have (SPEC section 10).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A field name or message longer than this is cut in a response: both may echo the
/// client's own text, and a response stays small.
const ECHO_LIMIT: usize = 200;

fn unprocessable(errors: FieldErrors) -> Response {
    let more = errors.more();
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "index": e.index, "field": cut(&e.field), "message": cut(&e.message) }))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "errors": errors, "more": more })),
    )
        .into_response()
}

fn cut(text: &str) -> String {
    if text.len() <= ECHO_LIMIT {
        return text.to_owned();
    }
    let end = (0..=ECHO_LIMIT)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..end])
}

/// Constant-time comparison of the presented token with ours.
fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.api_token else {
        return false;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware in front of the API routes: a request without the token gets 401 before
/// a byte of its body is read: a client without it makes the daemon hold its headers
/// and nothing more.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(&state, request.headers()) {
        return next.run(request).await;
    }
    let message = if state.api_token.is_some() {
        "a valid bearer token is required\n"
    } else {
        "the API is off: set http.api_token_file\n"
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        message,
    )
        .into_response()
}

/// The request's records: its body, read within [`BODY_TIMEOUT`] (408 and the connection
/// closed otherwise) and within the body limit (413), as JSON records (422).
async fn body_records(request: Request) -> Result<Vec<Record>, Response> {
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::Bytes::from_request(request, &()))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(rejection)) => return Err(rejection.into_response()),
            Err(_) => {
                return Err((
                    StatusCode::REQUEST_TIMEOUT,
                    [(header::CONNECTION, "close")],
                    "the body did not arrive within 30 s\n",
                )
                    .into_response());
            }
        };
    records(&body).map_err(unprocessable)
}

pub async fn contacts(State(state): State<AppState>, request: Request) -> Response {
    let records = match body_records(request).await {
        Ok(records) => records,
        Err(response) => return response,
    };
    let mut contacts = Vec::new();
    let mut errors = FieldErrors::default();
    for (index, record) in records.iter().enumerate() {
        match sync::contact_from_record(record) {
            Ok(contact) => contacts.push(contact),
            Err(reason) => errors.push(FieldError::new(index, &reason)),
        }
    }
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let engine = state.status.engine();
    let accepted = contacts.len();
    match upsert_contacts(engine.store.as_ref(), contacts).await {
        Ok(changed) => {
            axum::Json(json!({ "accepted": accepted, "changed": changed })).into_response()
        }
        Err(e) => store_error(e),
    }
}

pub async fn events(State(state): State<AppState>, request: Request) -> Response {
    let records = match body_records(request).await {
        Ok(records) => records,
        Err(response) => return response,
    };
    let mut pending = Vec::new();
    let mut errors = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match sync::event_from_record(record) {
            Ok(event) => pending.push((index, event)),
            Err(reason) => errors.push(FieldError::new(index, &reason)),
        }
    }
    let engine = state.status.engine();
    let ids: Vec<String> = pending.iter().map(|(_, e)| e.contact_id.clone()).collect();
    let zones = match engine.store.contact_zones(&ids).await {
        Ok(zones) => zones,
        Err(e) => return store_error(e),
    };
    let mut events = Vec::new();
    for (index, event) in pending {
        let Some(zone) = zones.get(&event.contact_id) else {
            errors.push(FieldError::new(
                index,
                &format!("contact_id: no contact `{}`", event.contact_id),
            ));
            continue;
        };
        let zone = zone
            .as_deref()
            .and_then(|z| TimeZone::get(z).ok())
            .unwrap_or_else(|| engine.config.business.zone.clone());
        match event.resolve(&zone) {
            Ok(event) => events.push(event),
            Err(reason) => errors.push(FieldError::new(index, &reason)),
        }
    }
    if !errors.is_empty() {
        // One error a record at most (1,000), from two passes: sorted, then capped.
        errors.sort_by_key(|e| e.index);
        return unprocessable(errors.into_iter().collect());
    }
    let accepted = events.len();
    match upsert_events(engine.store.as_ref(), events).await {
        Ok(changed) => {
            axum::Json(json!({ "accepted": accepted, "changed": changed })).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Writes a request's contacts in one transaction; returns how many rows changed.
async fn upsert_contacts(
    store: &dyn Store,
    contacts: Vec<ContactUpsert>,
) -> Result<u64, StoreError> {
    let mut writer = store.writer().await?;
    let changed = writer.contacts(contacts, jiff::Timestamp::now()).await?;
    writer.commit().await?;
    Ok(changed)
}

/// Writes a request's events in one transaction; returns how many rows changed.
async fn upsert_events(store: &dyn Store, events: Vec<EventUpsert>) -> Result<u64, StoreError> {
    let mut writer = store.writer().await?;
    let changed = writer
        .events(events, Vec::new(), jiff::Timestamp::now())
        .await?;
    writer.commit().await?;
    Ok(changed)
}

fn store_error(e: StoreError) -> Response {
    tracing::error!(error = format!("{e:#}"), "API request could not be stored");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable; try again\n",
    )
        .into_response()
}

/// `POST /api/v1/suppressions`: `{"address", "reason", "detail"}` records (one object or
/// an array), for a provider's webhook or a script; an address already listed keeps its
/// first reason.
pub async fn suppressions(State(state): State<AppState>, request: Request) -> Response {
    let records = match body_records(request).await {
        Ok(records) => records,
        Err(response) => return response,
    };
    let now = jiff::Timestamp::now();
    let mut entries = Vec::new();
    let mut errors = FieldErrors::default();
    for (index, record) in records.iter().enumerate() {
        match suppression_from_record(record, now) {
            Ok(entry) => entries.push(entry),
            Err(reason) => errors.push(FieldError::new(index, &reason)),
        }
    }
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let accepted = entries.len();
    match state.status.engine().store.suppress(&entries).await {
        Ok(added) => axum::Json(json!({ "accepted": accepted, "added": added })).into_response(),
        Err(e) => store_error(e),
    }
}

/// One suppression record; an error reads `FIELD: message`, as the other records' do.
fn suppression_from_record(record: &Record, now: jiff::Timestamp) -> Result<Suppression, String> {
    let mut address = None;
    let mut reason = None;
    let mut detail = "";
    for (name, value) in record {
        match name.as_str() {
            "address" => address = Some(value.as_str()),
            "reason" => reason = Some(value.as_str()),
            "detail" => detail = value,
            other => return Err(format!("{other}: not a field of a suppression")),
        }
    }
    let address = EmailAddress::parse(address.ok_or("address: required")?)
        .map_err(|m| format!("address: {m}"))?;
    Suppression::new(&address, reason.ok_or("reason: required")?, detail, now)
        .map_err(|m| format!("reason: {m}"))
}
