//! `/unsubscribe/{token}`: GET shows a small confirmation page (link scanners that only
//! GET change nothing); POST unsubscribes, which is also RFC 8058's one-click. A token
//! that does not verify gets 404 and changes nothing.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::domain::Channel;

/// A token that is not even UTF-8 (axum refuses to extract it) is as bad as a forged
/// one: 404, not axum's 400.
pub(super) type Token = Result<Path<String>, PathRejection>;

pub(super) fn verify(state: &AppState, token: &Token) -> Option<(String, Channel)> {
    let Ok(Path(token)) = token else {
        return None;
    };
    state.status.engine().signer.as_ref()?.verify(token)
}

pub(super) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><title>Not found</title><p>This link is not valid.</p>"),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn page(State(state): State<AppState>, token: Token) -> Response {
    let Some((_, channel)) = verify(&state, &token) else {
        return not_found();
    };
    let business = escape(&state.status.engine().config.business.name);
    let what = match channel {
        Channel::Email => "emails",
        Channel::Postcard => "postcards",
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">\
         <h1>Unsubscribe</h1><p>Stop receiving follow-up {what} from {business}?</p>\
         <form method=\"post\"><button type=\"submit\">Unsubscribe</button></form></body></html>"
    ))
    .into_response()
}

pub async fn confirm(State(state): State<AppState>, token: Token) -> Response {
    let Some((contact, channel)) = verify(&state, &token) else {
        return not_found();
    };
    let engine = state.status.engine();
    match engine
        .store
        .set_opt_out(&contact, channel, true, jiff::Timestamp::now())
        .await
    {
        Ok(true) => {
            tracing::info!(contact = %contact, channel = %channel, "unsubscribed by link");
            let business = escape(&engine.config.business.name);
            Html(format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title></head>\
                 <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">\
                 <h1>You are unsubscribed</h1><p>{business} will not send you these {} again.</p></body></html>",
                if channel == Channel::Email { "emails" } else { "postcards" }
            ))
            .into_response()
        }
        Ok(false) => not_found(),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "unsubscribe failed");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response()
        }
    }
}
