//! `/console/suppressions`: the addresses that get no more email, with why and when,
//! the report behind a bounce or a complaint, and a button to take an address off.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::SignedIn;
use super::forbidden;
use super::pages::{frame_at, unavailable, when};
use super::view;
use crate::http::AppState;

/// Characters of a report shown on the page; the rest is in `tickler suppressions ADDR`.
const REPORT_SHOWN: usize = 20_000;
/// Entries listed on the page, newest first; `tickler suppressions` lists them all.
const SHOWN: i64 = 500;

#[derive(Deserialize)]
pub struct Shown {
    /// The entry whose report is shown.
    report: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Query(shown): Query<Shown>,
) -> Response {
    let engine = state.status.engine();
    let zone = &engine.config.business.zone;
    let (entries, total) = match (
        engine.store.suppressions(SHOWN).await,
        engine.store.count_suppressions().await,
    ) {
        (Ok(entries), Ok(total)) => (entries, total),
        (Err(e), _) | (_, Err(e)) => return unavailable(e),
    };
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "address": e.address,
                "reason": e.reason,
                "detail": e.detail,
                "added": when(e.added_at, zone),
                "report_query": matches!(e.reason.as_str(), "bounced" | "complained")
                    .then(|| serde_urlencoded::to_string([("report", &e.address)]).ok())
                    .flatten(),
            })
        })
        .collect();
    let report = match &shown.report {
        Some(address) => match engine.store.suppression(address).await {
            Ok(found) => found.and_then(|e| e.report).map(|r| {
                let text = String::from_utf8_lossy(&r);
                json!({"address": address, "text": text.chars().take(REPORT_SHOWN).collect::<String>()})
            }),
            Err(e) => return unavailable(e),
        },
        None => None,
    };
    let mut data = frame_at(
        &engine,
        "Suppressed",
        "summary",
        &me.csrf,
        "/console/suppressions",
    );
    let more = total.saturating_sub(SHOWN).max(0);
    data.insert("rows".into(), rows.into());
    data.insert("more".into(), more.into());
    data.insert("report".into(), report.unwrap_or(Value::Null));
    view::page("suppressions", &Value::Object(data))
}

#[derive(Deserialize)]
pub struct Unsuppress {
    #[serde(default)]
    csrf: String,
    address: String,
}

/// Takes an address off the list, then shows the list again.
pub async fn remove(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Form(form): Form<Unsuppress>,
) -> Response {
    if !me.allows(&form.csrf) {
        return forbidden();
    }
    let engine = state.status.engine();
    match engine.store.unsuppress(&form.address).await {
        Ok(true) => {
            tracing::info!(address = %form.address, "console: unsuppressed");
            Redirect::to("/console/suppressions").into_response()
        }
        Ok(false) => (StatusCode::NOT_FOUND, "That address is not suppressed.\n").into_response(),
        Err(e) => unavailable(e),
    }
}
