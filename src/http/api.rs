//! `POST /api/v1/contacts` and `POST /api/v1/events`: the CSV columns as JSON, one
//! object or an array of them. `Authorization: Bearer TOKEN` is required (401). A request
//! is all or nothing: any invalid record gets 422 with each field at fault, and nothing
//! is stored.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::AppState;
use crate::sync::{self, Record};

/// Why a record was refused: which one, which field, and why.
#[derive(Debug)]
pub struct FieldError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(index: usize, reason: &str) -> FieldError {
        let (field, message) = reason.split_once(": ").unwrap_or(("", reason));
        FieldError {
            index,
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

fn unprocessable(errors: Vec<FieldError>) -> Response {
    let errors: Vec<Value> = errors
        .into_iter()
        .map(|e| json!({ "index": e.index, "field": e.field, "message": e.message }))
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "errors": errors })),
    )
        .into_response()
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

fn unauthorized(state: &AppState) -> Response {
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

/// The JSON body as records of text values, the way the CSV reader gives them.
pub fn records(body: &[u8]) -> Result<Vec<Record>, Vec<FieldError>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![FieldError {
            index: 0,
            field: String::new(),
            message: format!("not JSON: {e}"),
        }]
    })?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(vec![FieldError::new(
                0,
                "body: must be an object or an array of objects",
            )]);
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(vec![FieldError::new(index, "record: must be an object")]);
        };
        let mut record = Record::new();
        for (key, value) in fields {
            let text = match value {
                Value::Null => String::new(),
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(vec![FieldError {
                        index,
                        field: key,
                        message: "must be text, a number or a boolean".into(),
                    }]);
                }
            };
            record.push((key, text));
        }
        out.push(record);
    }
    Ok(out)
}

/// The request's records, if it carries the token and its body is JSON records.
fn authorized_records(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Record>, Box<Response>> {
    if !authorized(state, headers) {
        return Err(Box::new(unauthorized(state)));
    }
    records(body).map_err(|errors| Box::new(unprocessable(errors)))
}

pub async fn contacts(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let records = match authorized_records(&state, &headers, &body) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let mut contacts = Vec::new();
    let mut errors = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match sync::contact_from_record(record) {
            Ok(contact) => contacts.push(contact),
            Err(reason) => errors.push(FieldError::new(index, &reason)),
        }
    }
    if !errors.is_empty() {
        return unprocessable(errors);
    }
    let engine = state.shared.engine();
    match engine
        .store
        .upsert_contacts(&contacts, jiff::Timestamp::now())
        .await
    {
        Ok(changed) => {
            axum::Json(json!({ "accepted": contacts.len(), "changed": changed })).into_response()
        }
        Err(e) => store_error(e),
    }
}

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let records = match authorized_records(&state, &headers, &body) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let mut pending = Vec::new();
    let mut errors = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match sync::event_from_record(record) {
            Ok(event) => pending.push((index, event)),
            Err(reason) => errors.push(FieldError::new(index, &reason)),
        }
    }
    let engine = state.shared.engine();
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
        errors.sort_by_key(|e| e.index);
        return unprocessable(errors);
    }
    match engine
        .store
        .upsert_events(&events, jiff::Timestamp::now())
        .await
    {
        Ok(changed) => {
            axum::Json(json!({ "accepted": events.len(), "changed": changed })).into_response()
        }
        Err(e) => store_error(e),
    }
}

fn store_error(e: anyhow::Error) -> Response {
    tracing::error!(error = format!("{e:#}"), "API request could not be stored");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable; try again\n",
    )
        .into_response()
}
