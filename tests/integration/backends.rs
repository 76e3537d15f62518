//! The same scenario on SQLite and on PostgreSQL ends in the same send log. PostgreSQL
//! comes from `$TICKLER_TEST_POSTGRES` (a server URL such as
//! `postgres://postgres@127.0.0.1:5432`; each test makes its own database there).
//! Without it the test says it skipped PostgreSQL; under CI that is a failure.

use std::process::Command;

use crate::helpers::Workspace;
use crate::smtp::{Behaviour, SmtpServer};

/// A database of its own on the test server, dropped afterwards.
struct TempDb {
    server: String,
    name: String,
}

impl TempDb {
    fn create() -> Option<TempDb> {
        let Ok(server) = std::env::var("TICKLER_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TICKLER_TEST_POSTGRES must be set under CI"
            );
            eprintln!(
                "skipped PostgreSQL: set TICKLER_TEST_POSTGRES=postgres://USER@HOST:PORT to run it"
            );
            return None;
        };
        let name = format!("tickler_test_{}_{}", std::process::id(), fastrand::u32(..));
        let db = TempDb {
            server: server.trim_end_matches('/').to_owned(),
            name,
        };
        db.psql(&format!("CREATE DATABASE {}", db.name));
        Some(db)
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args([
                &format!("{}/postgres", self.server),
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs the scenario against `database_url` and returns the send log, in key order.
fn scenario(database_url: Option<&str>) -> Vec<(String, String, String, String, String, i64)> {
    let server = SmtpServer::start_with(Behaviour {
        data_reply: Some((451, "4.3.0 later".into())),
        ..Default::default()
    });
    let ws = Workspace::new(Some(&server.url()));
    if let Some(url) = database_url {
        let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
        ws.write(
            "tickler.yaml",
            &format!("{config}database:\n  url: {url}\n"),
        );
    }
    ws.import_all();
    ws.tickler(&["import", "contacts", "contacts.csv"]).ok();
    let first = ws
        .tickler(&["tick", "--now", "2026-03-04T10:00:00-05:00"])
        .ok();
    assert_eq!(
        first.stdout.trim(),
        "sent=0 failed=0 retrying=3 skipped=2 deferred=0"
    );
    server.set_behaviour(Behaviour::default());
    let second = ws
        .tickler(&["tick", "--now", "2026-03-04T11:00:00-05:00"])
        .ok();
    assert_eq!(
        second.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let third = ws
        .tickler(&["tick", "--now", "2026-03-04T11:00:00-05:00"])
        .ok();
    assert_eq!(
        third.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(server.messages().len(), 3);
    // The log lives where the configuration says.
    assert_eq!(ws.path("state/tickler.db").exists(), database_url.is_none());
    let mut rows: Vec<_> = ws
        .sends()
        .into_iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                text("contact"),
                text("cadence"),
                text("occurrence"),
                text("status"),
                text("reason"),
                r["attempts"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn sqlite_and_postgres_keep_the_same_send_log() {
    let sqlite = scenario(None);
    assert_eq!(sqlite.len(), 5);
    let Some(db) = TempDb::create() else { return };
    let postgres = scenario(Some(&db.url()));
    assert_eq!(postgres, sqlite);
}
