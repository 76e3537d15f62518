//! `/preferences/{token}`: the customer's own page, linked from every email as
//! `preferences_url`. It shows the channels that reach them, the follow-ups that apply to
//! them (by topic, where cadences name one), and a 90-day pause; POST saves the choices.
//! The token is the one of their email unsubscribe link; a token that does not verify
//! gets 404 and changes nothing. Transactional follow-ups (an order update) are not
//! listed: they are not marketing, and only a channel opt-out stops them.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use handlebars::Handlebars;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::AppState;
use super::unsubscribe::{Token, not_found, verify};
use crate::domain::{Cadence, Channel, Choices, History};
use crate::store::StoreError;
use crate::tick::Engine;

/// How long "pause everything" lasts.
pub const PAUSE: SignedDuration = SignedDuration::from_hours(90 * 24);

/// Nothing but this page's stylesheet and its own form.
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

static VIEW: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_template_string("preferences", include_str!("views/preferences.hbs"))
        .unwrap_or_else(|e| panic!("preferences view: {e}"));
    h
});

/// A row of the page: a topic, or a cadence without one.
struct Row<'a> {
    key: String,
    label: String,
    cadences: Vec<&'a Cadence>,
}

/// The follow-ups that apply to `history`'s contact, grouped as the page shows them.
fn rows<'a>(engine: &'a Engine, history: &History) -> Vec<Row<'a>> {
    let contact = &history.contact;
    let mut rows: Vec<Row<'a>> = Vec::new();
    let applies =
        |c: &&Cadence| c.enabled && !c.transactional && c.tags.iter().all(|t| contact.has_tag(t));
    for cadence in engine.config.cadences.iter().filter(applies) {
        let key = cadence.topic.clone().unwrap_or_else(|| cadence.id.clone());
        match rows.iter_mut().find(|r| r.key == key) {
            Some(row) => row.cadences.push(cadence),
            None => rows.push(Row {
                label: cadence.topic.clone().unwrap_or_else(|| words(&cadence.id)),
                key,
                cadences: vec![cadence],
            }),
        }
    }
    rows
}

/// `check-in` as `Check in`.
fn words(id: &str) -> String {
    let spaced = id.replace(['-', '_'], " ");
    let mut chars = spaced.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn page(engine: &Engine, history: &History, now: Timestamp, saved: bool) -> Response {
    let contact = &history.contact;
    let mut channels = Vec::new();
    if contact.email.is_some() {
        channels.push(json!({"name": "email", "label": "Email", "on": !contact.email_opt_out}));
    }
    if contact.has_postal_address() {
        channels.push(json!({"name": "postcard", "label": "Postcards by mail", "on": !contact.postcard_opt_out}));
    }
    let topics: Vec<_> = rows(engine, history)
        .iter()
        .map(|r| {
            let on = !r
                .cadences
                .iter()
                .any(|c| history.choices.declined.contains(&c.id));
            json!({"key": r.key, "label": r.label, "on": on})
        })
        .collect();
    let zone = contact.zone(&engine.config.business.zone);
    let paused_until = history
        .choices
        .paused_until
        .filter(|until| *until > now)
        .map(|until| until.to_zoned(zone).strftime("%B %-d, %Y").to_string());
    let data = json!({
        "business": engine.config.business.name,
        "address": engine.config.business.address.one_line(),
        "name": contact.first_name,
        "saved": saved,
        "channels": channels,
        "topics": topics,
        "paused_until": paused_until,
    });
    match VIEW.render("preferences", &data) {
        Ok(html) => ([(header::CONTENT_SECURITY_POLICY, CSP)], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the preferences page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page could not be shown.\n",
            )
                .into_response()
        }
    }
}

/// The contact a genuine token names, as the store has them.
async fn history_of(engine: &Engine, contact: &str) -> Result<Option<History>, Response> {
    match engine.store.history(&[contact.to_owned()]).await {
        Ok(mut found) => Ok(found.pop()),
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "preferences: the store is unavailable"
            );
            Err((StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response())
        }
    }
}

pub async fn show(State(state): State<AppState>, token: Token) -> Response {
    let Some((contact, _)) = verify(&state, &token) else {
        return not_found();
    };
    let engine = state.status.engine();
    match history_of(&engine, &contact).await {
        Ok(Some(history)) => page(&engine, &history, Timestamp::now(), false),
        Ok(None) => not_found(),
        Err(response) => response,
    }
}

pub async fn save(State(state): State<AppState>, token: Token, body: Bytes) -> Response {
    let Some((contact, _)) = verify(&state, &token) else {
        return not_found();
    };
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(&body) else {
        return (StatusCode::BAD_REQUEST, "this form could not be read\n").into_response();
    };
    let engine = state.status.engine();
    let history = match history_of(&engine, &contact).await {
        Ok(Some(history)) => history,
        Ok(None) => return not_found(),
        Err(response) => return response,
    };
    let now = Timestamp::now();
    match store_choices(&engine, &history, &form, now).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "preferences could not be saved");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response();
        }
    }
    tracing::info!(contact = %contact, "preferences saved by the customer");
    match history_of(&engine, &contact).await {
        Ok(Some(history)) => page(&engine, &history, now, true),
        Ok(None) => not_found(),
        Err(response) => response,
    }
}

/// Writes what the form says of `history`'s contact: channel opt-outs that changed, the
/// follow-ups turned off, the pause; `false` when the contact has gone meanwhile.
async fn store_choices(
    engine: &Engine,
    history: &History,
    form: &HashMap<String, String>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let contact = &history.contact;
    let on = |name: &str| form.contains_key(name);
    let store = engine.store.as_ref();
    for (channel, name, shown, was_out) in [
        (
            Channel::Email,
            "email",
            contact.email.is_some(),
            contact.email_opt_out,
        ),
        (
            Channel::Postcard,
            "postcard",
            contact.has_postal_address(),
            contact.postcard_opt_out,
        ),
    ] {
        if shown
            && was_out == on(name)
            && !store
                .set_opt_out(&contact.id, channel, !on(name), now)
                .await?
        {
            return Ok(false);
        }
    }
    let rows = rows(engine, history);
    let shown: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.cadences.iter().map(|c| c.id.as_str()))
        .collect();
    // Choices about follow-ups not on the page (no longer applying) are kept.
    let mut declined: Vec<String> = history
        .choices
        .declined
        .iter()
        .filter(|c| !shown.contains(&c.as_str()))
        .cloned()
        .collect();
    for row in &rows {
        if !on(&format!("t:{}", row.key)) {
            declined.extend(row.cadences.iter().map(|c| c.id.clone()));
        }
    }
    let paused_until = match history.choices.paused_until.filter(|u| *u > now) {
        Some(_) if on("resume") => None,
        Some(until) => Some(until),
        None if on("pause") => Some(now + PAUSE),
        None => None,
    };
    let choices = Choices {
        declined,
        paused_until,
    };
    store.set_choices(&contact.id, &choices, now).await
}

pub async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("views/preferences.css"),
    )
        .into_response()
}
