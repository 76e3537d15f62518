//! `POST /api/v1/contacts` and `/events` through the real router, token check and body
//! limits included, onto a real SQLite store: any body ends in 200, 401, 413, 422 or 503
//! (never a panic), and a refusal lists at most a hundred errors.
//!
//! An input that starts with `!` is sent without the token.

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tickler::config::Config;
use tickler::render::Templates;
use tickler::status::Status;
use tickler::tick::Engine;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token-0123456789abcdef";

struct Setup {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A workspace with one cadence and an empty store, and the router over it.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        // Memory-backed when the system has it: every accepted body is a transaction.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        let root = dir.path();
        write(
            root,
            "tickler.yaml",
            "business:\n  name: Fuzz Tiles\n  email: hello@fuzz.example\n  \
             address: { line1: 1 Harbour St, city: Troy, postal_code: \"12180\", country: US }\n  \
             timezone: America/New_York\nstate_dir: state\ntemplates: templates\n\
             cadences: cadences.yaml\nemail:\n  transport: file\n",
        );
        write(
            root,
            "cadences.yaml",
            "cadences:\n  - id: thanks\n    channel: email\n    template: thanks\n    \
             trigger: { after: purchase, delay: 2d }\n",
        );
        write(root, "templates/thanks.subject.hbs", "Thanks");
        write(root, "templates/thanks.txt.hbs", "Thank you, {{contact.first_name}}.");
        let path = root.join("tickler.yaml");
        let config = Config::load(&path).expect("config");
        let templates = Templates::load(&config).expect("templates");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let engine = runtime
            .block_on(Engine::build(config, templates))
            .expect("engine");
        let status = Arc::new(Status::new(engine));
        let router = tickler::http::router(status, Some(TOKEN.to_owned()));
        // Contacts for the events to name.
        let contacts = br#"[{"id":"1","email":"a@example.com"},{"id":"K-1"}]"#;
        let reply = runtime.block_on(post(&router, "/api/v1/contacts", true, contacts));
        assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
        Setup {
            runtime,
            router,
            _dir: dir,
        }
    })
}

async fn post(router: &axum::Router, path: &str, token: bool, body: &[u8]) -> (StatusCode, String) {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let request = request.body(Body::from(body.to_vec())).expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("response body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let token = !data.starts_with(b"!");
    for path in ["/api/v1/contacts", "/api/v1/events"] {
        let (status, reply) = setup.runtime.block_on(post(&setup.router, path, token, data));
        match status.as_u16() {
            200 | 413 | 503 => {}
            401 => assert!(!token, "{path}: 401 with the token"),
            422 => {
                let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON 422");
                let errors = reply["errors"].as_array().expect("errors");
                assert!(!errors.is_empty() && errors.len() <= 100, "{reply}");
                assert!(reply["more"].is_u64(), "{reply}");
            }
            other => panic!("{path}: status {other}: {reply}"),
        }
    }
});
