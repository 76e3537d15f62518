//! Signing in and out of the console.

use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{PASSWORD_KEY, SignIn, SignedIn};
use super::pages::{frame, unavailable};
use super::{COOKIE, console, forbidden, session_id, view};
use crate::http::AppState;

/// How long a browser keeps the cookie; the session itself ends after 12 h idle.
const COOKIE_DAYS: i64 = 30;

fn page(state: &AppState, message: &str, code: StatusCode) -> Response {
    let engine = state.status.engine();
    let mut data = frame(&engine, "Sign in", "", "");
    data.insert("message".into(), message.into());
    (code, view::page("signin", &Value::Object(data))).into_response()
}

pub async fn sign_in_page(State(state): State<AppState>) -> Response {
    page(&state, "", StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    password: String,
}

pub async fn sign_in(State(state): State<AppState>, Form(form): Form<SignInForm>) -> Response {
    let Some(console) = console(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let engine = state.status.engine();
    let stored = match engine.store.meta(PASSWORD_KEY).await {
        Ok(stored) => stored,
        Err(e) => return unavailable(e),
    };
    let secure = engine
        .config
        .http
        .as_ref()
        .and_then(|h| h.public_url.as_deref())
        .is_some_and(|u| u.starts_with("https://"));
    // Argon2 takes tens of milliseconds: off the runtime's threads.
    let gate = console.clone();
    let password = form.password;
    let outcome =
        tokio::task::spawn_blocking(move || gate.gate.sign_in(stored.as_deref(), &password)).await;
    match outcome {
        Ok(SignIn::Opened(id)) => {
            let cookie = cookie::Cookie::build((COOKIE, id))
                .path("/console/")
                .http_only(true)
                .secure(secure)
                .same_site(cookie::SameSite::Strict)
                .max_age(cookie::time::Duration::days(COOKIE_DAYS))
                .build();
            tracing::info!("console: signed in");
            (
                [(header::SET_COOKIE, cookie.to_string())],
                Redirect::to("/console/"),
            )
                .into_response()
        }
        Ok(SignIn::Wrong) => {
            tracing::warn!("console: a wrong password");
            page(
                &state,
                "That password is not right.",
                StatusCode::UNAUTHORIZED,
            )
        }
        Ok(SignIn::Locked) => {
            tracing::warn!("console: sign-in locked after repeated wrong passwords");
            page(
                &state,
                "Too many wrong passwords: sign-in is locked for a minute.",
                StatusCode::TOO_MANY_REQUESTS,
            )
        }
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    Extension(me): Extension<SignedIn>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if !me.allows(&form.csrf) {
        return forbidden();
    }
    if let (Some(console), Some(id)) = (console(&state), session_id(&headers)) {
        console.gate.sign_out(&id);
    }
    let gone = cookie::Cookie::build((COOKIE, ""))
        .path("/console/")
        .max_age(cookie::time::Duration::ZERO)
        .build();
    (
        [(header::SET_COOKIE, gone.to_string())],
        Redirect::to("/console/signin"),
    )
        .into_response()
}
