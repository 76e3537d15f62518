//! The owner's console (SPEC section 10): server-rendered pages under `/console/` for
//! reviewing the send log and each customer. Nothing answers without a session; every
//! value is escaped by the templates, and the pages load nothing from elsewhere.

mod auth;
mod customer;
mod door;
mod message;
mod outlook;
mod pages;
mod suppressed;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use auth::{Gate, SignedIn};
pub use auth::{MAX_PASSWORD, MIN_PASSWORD, PASSWORD_KEY, hash};

use super::AppState;

/// The session cookie's name.
const COOKIE: &str = "tickler_session";
/// Allows the console's own stylesheet and forms, and nothing else: no scripts from
/// anywhere, no frames, no outside images.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What the console keeps between requests.
#[derive(Default)]
pub struct Console {
    pub(super) gate: Gate,
}

/// The console's routes, for a router whose state is `AppState`.
pub(super) fn routes(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/console/", get(pages::summary))
        .route("/console/sends", get(pages::sends))
        .route("/console/sends.csv", get(pages::sends_csv))
        .route("/console/sends/{id}/retry", post(customer::retry))
        .route("/console/sends/{id}/message", get(message::message))
        .route(
            "/console/sends/{id}/message.html",
            get(message::message_html),
        )
        .route("/console/contacts/{id}/test", post(message::send_test))
        .route("/console/plan", get(outlook::plan))
        .route("/console/cadences", get(outlook::cadences))
        .route("/console/suppressions", get(suppressed::list))
        .route("/console/suppressions/remove", post(suppressed::remove))
        .route("/console/contacts/{id}", get(customer::contact))
        .route("/console/contacts/{id}/opt-out", post(customer::opt_out))
        .route("/console/signout", post(door::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/signin",
            get(door::sign_in_page).post(door::sign_in),
        )
        .route("/console/style.css", get(stylesheet))
        .merge(signed_in)
        .layer(axum::middleware::from_fn(headers))
}

fn console(state: &AppState) -> Option<&Arc<Console>> {
    state.console.as_ref()
}

/// The session id the request's cookie carries.
fn session_id(request_headers: &axum::http::HeaderMap) -> Option<String> {
    request_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// Lets a request with a live session through, with its `SignedIn`; any other goes to
/// the sign-in page and changes nothing.
async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let signed_in = console(&state).and_then(|c| {
        let id = session_id(request.headers())?;
        c.gate.session(&id)
    });
    match signed_in {
        Some(signed_in) => {
            request.extensions_mut().insert::<SignedIn>(signed_in);
            next.run(request).await
        }
        None => Redirect::to("/console/signin").into_response(),
    }
}

/// The headers every console answer carries.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A page may carry a stricter policy of its own (a kept message's sandbox).
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("views/style.css"),
    )
        .into_response()
}

/// 403 for a form whose CSRF token is missing or not the session's.
fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "This form has expired: reload the page and try again.\n",
    )
        .into_response()
}
