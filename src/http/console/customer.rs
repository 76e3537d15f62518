//! `/console/contacts/{id}`: one customer on one page, and the actions on them.

use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::SignedIn;
use super::pages::{frame, frame_at, link, shaped_rows, unavailable, when, zone_name};
use super::{forbidden, view};
use crate::config::Config;
use crate::domain::{Channel, History};
use crate::http::AppState;
use crate::store::SendFilter;
use crate::timeline;

/// Send-log rows a customer's page lists (newest first).
const ROWS: u32 = 500;

pub async fn contact(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let engine = state.status.engine();
    let store = engine.store.as_ref();
    let business_zone = &engine.config.business.zone;
    let history = match store.history(std::slice::from_ref(&id)).await {
        Ok(mut found) if !found.is_empty() => found.swap_remove(0),
        Ok(_) => {
            let mut data = frame(&engine, "Not found", "", &me.csrf);
            data.insert(
                "message".into(),
                format!("No customer has the id {id}.").into(),
            );
            return (
                StatusCode::NOT_FOUND,
                view::page("missing", &Value::Object(data)),
            )
                .into_response();
        }
        Err(e) => return unavailable(e),
    };
    let rows = match store
        .sends(&SendFilter {
            contact: Some(id.clone()),
            limit: Some(ROWS),
            ..SendFilter::default()
        })
        .await
    {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let shaped = match shaped_rows(store, &rows, business_zone).await {
        Ok(rows) => rows,
        Err(r) => return r,
    };
    let c = &history.contact;
    let zone = c.zone(business_zone);
    let events: Vec<Value> = history
        .events_newest_first()
        .iter()
        .map(|e| json!({"at": when(e.at, &zone), "kind": e.kind, "id": e.id}))
        .collect();
    let address = c.address.lines(&engine.config.business.address.country);
    let channels = [
        (Channel::Email, c.email_opt_out),
        (Channel::Postcard, c.postcard_opt_out),
    ]
    .map(|(channel, opted_out)| json!({"name": channel.to_string(), "opted_out": opted_out}));
    let here = format!("/console/contacts/{}", link(&c.id));
    let mut data = frame_at(&engine, &c.full_name(), "", &me.csrf, &here);
    data.insert(
        "c".into(),
        json!({
            "id": c.id,
            "link": link(&c.id),
            "name": c.full_name(),
            "email": c.email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
            "address": address,
            "zone": zone_name(&zone),
            "birthday": c.birthday.map(|b| b.to_string()).unwrap_or_default(),
            "channels": channels,
        }),
    );
    data.insert("events".into(), events.into());
    data.insert(
        "next".into(),
        next_sends(&engine.config, &history, Timestamp::now()).into(),
    );
    data.insert("rows".into(), shaped.into());
    let tests = match store.tests_of(&c.id).await {
        Ok(tests) => tests,
        Err(e) => return unavailable(e),
    };
    let tests: Vec<Value> = tests
        .iter()
        .map(|t| {
            json!({"at": when(t.sent_at, business_zone), "cadence": t.cadence,
                   "sent_to": t.sent_to, "outcome": t.outcome})
        })
        .collect();
    data.insert("tests".into(), tests.into());
    let email_cadences: Vec<&str> = engine
        .config
        .cadences
        .iter()
        .filter(|c| c.channel == Channel::Email)
        .map(|c| c.id.as_str())
        .collect();
    data.insert("email_cadences".into(), email_cadences.into());
    data.insert(
        "business_email".into(),
        engine.config.business.email.to_string().into(),
    );
    view::page("contact", &Value::Object(data))
}

/// Each cadence's next send for the page, its time in the customer's zone.
fn next_sends(config: &Config, history: &History, now: Timestamp) -> Vec<Value> {
    let zone = history.contact.zone(&config.business.zone);
    timeline::next_sends(config, history, now)
        .into_iter()
        .map(|n| {
            json!({
                "cadence": n.cadence,
                "channel": n.channel.to_string(),
                "when": n.at.map(|at| when(at, &zone)).unwrap_or_default(),
                "what": n.what,
            })
        })
        .collect()
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    /// The console page to go back to.
    #[serde(default)]
    back: String,
}

/// Puts a failed or retrying send back in the queue for the next tick.
pub async fn retry(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(id): Path<i64>,
    Form(form): Form<RetryForm>,
) -> Response {
    if !me.allows(&form.csrf) {
        return forbidden();
    }
    let engine = state.status.engine();
    match engine.store.retry_now(id, Timestamp::now()).await {
        Ok(true) => {
            tracing::info!(send = id, "console: retry now");
            // Only back into the console, never to another site.
            let back = if form.back.starts_with("/console/") && !form.back.starts_with("/console//")
            {
                form.back
            } else {
                "/console/sends".to_owned()
            };
            Redirect::to(&back).into_response()
        }
        Ok(false) => (
            StatusCode::CONFLICT,
            "That send is neither failed nor retrying.\n",
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct OptOutForm {
    #[serde(default)]
    csrf: String,
    channel: String,
    opted_out: bool,
}

/// Unsubscribes or resubscribes a channel, then shows the customer again.
pub async fn opt_out(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(id): Path<String>,
    Form(form): Form<OptOutForm>,
) -> Response {
    if !me.allows(&form.csrf) {
        return forbidden();
    }
    let Ok(channel) = Channel::parse(&form.channel) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "channel: email or postcard\n",
        )
            .into_response();
    };
    let engine = state.status.engine();
    match engine
        .store
        .set_opt_out(&id, channel, form.opted_out, Timestamp::now())
        .await
    {
        Ok(true) => {
            tracing::info!(contact = %id, %channel, opted_out = form.opted_out, "console: opt-out changed");
            Redirect::to(&format!("/console/contacts/{}", link(&id))).into_response()
        }
        Ok(false) => (StatusCode::NOT_FOUND, "No such customer.\n").into_response(),
        Err(e) => unavailable(e),
    }
}
