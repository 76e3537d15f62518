//! A sent email as it was sent (kept for `console.keep_messages`), and the owner's
//! "send me a test" of a cadence for a customer.

use axum::Extension;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::SignedIn;
use super::pages::{frame, link, unavailable, when};
use super::{forbidden, view};
use crate::compose::{Composer, KeptMessage, shown_occurrence, shown_request};
use crate::domain::SendKey;
use crate::http::AppState;
use crate::store::TestSend;

/// A kept message's HTML runs in a sandbox of its own: no scripts, no forms, no
/// requests anywhere (remote images stay unloaded), and no access to the console.
const SANDBOX: &str = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:";

pub async fn message(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(id): Path<i64>,
) -> Response {
    let engine = state.status.engine();
    let (kept_at, message) = match kept(&state, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut data = frame(&engine, &message.subject, "sends", &me.csrf);
    data.insert(
        "m".into(),
        json!({
            "id": id,
            "subject": message.subject,
            "to": message.to,
            "text": message.text,
            "has_html": message.html.is_some(),
            "kept": when(kept_at, &engine.config.business.zone),
        }),
    );
    view::page("message", &Value::Object(data))
}

/// The kept HTML part, for a tab of its own.
pub async fn message_html(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    let html = match kept(&state, id).await {
        Ok((
            _,
            KeptMessage {
                html: Some(html), ..
            },
        )) => html,
        Ok(_) => {
            return (StatusCode::NOT_FOUND, "This message had no HTML part.\n").into_response();
        }
        Err(response) => return response,
    };
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX),
    );
    response
}

async fn kept(state: &AppState, id: i64) -> Result<(Timestamp, KeptMessage), Response> {
    let engine = state.status.engine();
    let gone = || {
        let days = engine.config.keep_messages.seconds() / 86_400;
        let text = format!(
            "No message is kept for this send: only sent emails are kept, for {days} days (console.keep_messages).\n"
        );
        (StatusCode::NOT_FOUND, text).into_response()
    };
    let (at, bytes) = match engine.store.kept(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return Err(gone()),
        Err(e) => return Err(unavailable(e)),
    };
    match KeptMessage::unpack(&bytes) {
        Ok(message) => Ok((at, message)),
        Err(why) => {
            tracing::warn!(send = id, error = %why, "console: a kept message is unreadable");
            Err(gone())
        }
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    csrf: String,
    cadence: String,
}

/// Sends the email `cadence` would send this customer to the business's own address,
/// marked `[TEST]`; recorded apart from the send log, so the real one still goes out.
pub async fn send_test(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    Path(contact_id): Path<String>,
    Form(form): Form<TestForm>,
) -> Response {
    if !me.allows(&form.csrf) {
        return forbidden();
    }
    let engine = state.status.engine();
    let config = &engine.config;
    let Some(cadence) = config.cadence(&form.cadence) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "cadence: no such follow-up\n",
        )
            .into_response();
    };
    let history = match engine
        .store
        .history(std::slice::from_ref(&contact_id))
        .await
    {
        Ok(mut found) if !found.is_empty() => found.swap_remove(0),
        Ok(_) => return (StatusCode::NOT_FOUND, "No such customer.\n").into_response(),
        Err(e) => return unavailable(e),
    };
    let now = Timestamp::now();
    let outcome = match shown_occurrence(config, cadence, &history, now) {
        Err(why) => Err(why),
        Ok(due) => {
            // Its own Message-ID, never the real occurrence's.
            let key = SendKey {
                contact: contact_id.clone(),
                cadence: cadence.id.clone(),
                occurrence: format!("test:{}:{}", due.occurrence, now.as_millisecond()),
            };
            let message_id = key.message_id(config.business.email.domain());
            let composer = Composer {
                config,
                templates: &engine.templates,
                signer: None,
                dkim: engine.dkim.as_ref(),
            };
            let request = shown_request(cadence, &history, &due, now, &message_id);
            match composer.compose_test(&request) {
                Ok((message, _)) => engine
                    .transport
                    .send(&message, &key.digest())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let outcome = match outcome {
        Ok(reply) => format!("sent: {reply}"),
        Err(why) => format!("not sent: {why}"),
    };
    tracing::info!(contact = %contact_id, cadence = %cadence.id, outcome = %crate::telemetry::redact(&outcome), "console: test send");
    let test = TestSend {
        contact: contact_id.clone(),
        cadence: cadence.id.clone(),
        sent_to: config.business.email.to_string(),
        sent_at: now,
        outcome,
    };
    if let Err(e) = engine.store.record_test(&test).await {
        return unavailable(e);
    }
    Redirect::to(&format!("/console/contacts/{}#tests", link(&contact_id))).into_response()
}
