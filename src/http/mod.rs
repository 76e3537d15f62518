//! The HTTP endpoint (SPEC section 10): health and metrics for operators, unsubscribe
//! links and the preferences page for customers, the bearer-token API for point-of-sale
//! and CRM systems (and providers' suppression webhooks), and the owner's console.

pub mod api;
pub mod console;
mod field_errors;
mod preferences;
mod records;
mod server;
mod unsubscribe;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::HttpConfig;
use crate::status::{Status, stale_after};

/// Largest request body the API takes: a thousand records of about a kilobyte.
const API_BODY_LIMIT: usize = 1 << 20;
/// Largest body elsewhere (the unsubscribe form is one short field), refused from its
/// `Content-Length` before any of it is read.
const BODY_LIMIT: usize = 16 * 1024;
/// API requests handled at once; the others wait with their bodies unread, so that
/// clients with the token hold a few megabytes, not one for each connection.
const API_CONCURRENCY: usize = 4;

#[derive(Clone)]
pub struct AppState {
    status: Arc<Status>,
    /// `None`: the API is off.
    api_token: Option<Arc<str>>,
    /// `None`: the console is off (`http.console`).
    console: Option<Arc<console::Console>>,
}

pub fn router(status: Arc<Status>, api_token: Option<String>) -> Router {
    let console_on = status
        .engine()
        .config
        .http
        .as_ref()
        .is_some_and(|h| h.console);
    let state = AppState {
        status,
        api_token: api_token.map(Arc::from),
        console: console_on.then(Arc::default),
    };
    // Outermost first: the token before anything else, then a turn, then the body. A
    // body over the limit is read up to it before the 413, not refused from its headers
    // as elsewhere: a client still sending when the connection closes is reset and may
    // miss the answer, and only clients with the token get this far.
    let api = Router::new()
        .route("/api/v1/contacts", post(api::contacts))
        .route("/api/v1/events", post(api::events))
        .route("/api/v1/suppressions", post(api::suppressions))
        .route_layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    api::require_token,
                ))
                .layer(GlobalConcurrencyLimitLayer::new(API_CONCURRENCY))
                .layer(DefaultBodyLimit::max(API_BODY_LIMIT)),
        );
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::confirm),
        )
        .route(
            "/preferences/{token}",
            get(preferences::show).post(preferences::save),
        )
        .route("/preferences.css", get(preferences::stylesheet))
        .route_layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .merge(api);
    if state.console.is_some() {
        router = router.merge(
            console::routes(state.clone()).route_layer(RequestBodyLimitLayer::new(BODY_LIMIT)),
        );
    }
    router.with_state(state)
}

/// The endpoint's socket, bound, with the API token read: ready to serve.
pub(crate) struct Listener {
    tcp: TcpListener,
    /// `None`: the API is off.
    api_token: Option<String>,
}

impl Listener {
    /// Binds `http.listen` and reads `http.api_token_file`.
    pub async fn bind(http: &HttpConfig) -> anyhow::Result<Listener> {
        let tcp = TcpListener::bind(http.listen)
            .await
            .map_err(|e| anyhow::anyhow!("http.listen {}: {e}", http.listen))?;
        tracing::info!(listen = %tcp.local_addr()?, "HTTP endpoint listening");
        let api_token = read_api_token(http.api_token_file.as_deref())?;
        Ok(Listener::new(tcp, api_token))
    }

    /// A listener already bound, with the API on if `api_token` is given.
    pub fn new(tcp: TcpListener, api_token: Option<String>) -> Listener {
        Listener { tcp, api_token }
    }
}

/// The API's bearer token; the API is off without one.
fn read_api_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let token = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("http.api_token_file {}: {e}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(
        token.len() >= 16,
        "http.api_token_file {}: the token must be at least 16 characters",
        path.display()
    );
    Ok(Some(token))
}

/// Serves until `shutdown` is cancelled, then finishes the requests in progress.
pub(crate) async fn serve(listener: Listener, status: Arc<Status>, shutdown: CancellationToken) {
    let app = router(status, listener.api_token);
    server::serve(listener.tcp, app, shutdown).await;
}

/// 200 while ticks run and the database answers; 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    let engine = state.status.engine();
    let status = state.status.report();
    let database = match engine.store.meta("schema").await {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("unreachable: {e:#}"),
    };
    let fresh = status.last_tick_at.is_some_and(|at| {
        jiff::Timestamp::now().duration_since(at).unsigned_abs() <= stale_after(&engine)
    });
    let healthy = fresh && database == "ok";
    let body = json!({
        "status": if healthy { "ok" } else if status.last_tick_at.is_none() { "starting" } else { "unhealthy" },
        "last_tick_at": status.last_tick_at.map(|t| t.to_string()),
        "database": database,
        "sending_paused": status.paused,
        "reload_error": status.reload_error,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let engine = state.status.engine();
    let status = state.status.report();
    let mut out = String::new();
    out.push_str("# HELP tickler_sends Send-log rows by cadence, channel and status.\n# TYPE tickler_sends gauge\n");
    match engine.store.send_counts().await {
        Ok(counts) => {
            for (cadence, channel, status, n) in counts {
                let _ = writeln!(
                    out,
                    "tickler_sends{{cadence=\"{}\",channel=\"{}\",status=\"{}\"}} {n}",
                    label(&cadence),
                    label(&channel),
                    label(&status)
                );
            }
        }
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("database unreachable: {e:#}\n"),
            )
                .into_response();
        }
    }
    let depth = engine
        .store
        .queue_depth(jiff::Timestamp::now())
        .await
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "# HELP tickler_queue_depth Sends pending or retrying, and contacts with work due now.\n# TYPE tickler_queue_depth gauge\ntickler_queue_depth {depth}"
    );
    let _ = writeln!(
        out,
        "# HELP tickler_tick_duration_seconds How long the last tick took.\n# TYPE tickler_tick_duration_seconds gauge\ntickler_tick_duration_seconds {}",
        status.last_tick_seconds
    );
    let last = status.last_tick_at.map_or(0, |t| t.as_second());
    let _ = writeln!(
        out,
        "# HELP tickler_last_tick_timestamp_seconds When the last tick ran.\n# TYPE tickler_last_tick_timestamp_seconds gauge\ntickler_last_tick_timestamp_seconds {last}"
    );
    let _ = writeln!(
        out,
        "# HELP tickler_sending_paused 1 while sending is paused (SMTP credentials, TLS, or no connection to be had).\n# TYPE tickler_sending_paused gauge\ntickler_sending_paused {}",
        u8::from(status.paused.is_some())
    );
    if let Some(learned) = engine.transport.learned() {
        let _ = writeln!(
            out,
            "# HELP tickler_smtp_connections_allowed Connections the SMTP server is believed to accept at once.\n# TYPE tickler_smtp_connections_allowed gauge\ntickler_smtp_connections_allowed {}\n# HELP tickler_smtp_message_gap_seconds Spacing between messages learned from the server's rate limit (0: none).\n# TYPE tickler_smtp_message_gap_seconds gauge\ntickler_smtp_message_gap_seconds {}",
            learned.connections,
            learned.gap.as_secs_f64()
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
