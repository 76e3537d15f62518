//! The same scenario on SQLite and on PostgreSQL ends in the same send log. PostgreSQL
//! comes from `$TICKLER_TEST_POSTGRES` (a server URL such as
//! `postgres://postgres@127.0.0.1:5432`; each test makes its own database there).
//! Without it the test says it skipped PostgreSQL; under CI that is a failure.

use std::process::Command;

use crate::helpers::Workspace;
use crate::smtp::{Behaviour, SmtpServer};

/// A database of its own on the test server, dropped afterwards.
pub struct TempDb {
    server: String,
    name: String,
}

impl TempDb {
    pub fn create() -> Option<TempDb> {
        let Ok(server) = std::env::var("TICKLER_TEST_POSTGRES") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TICKLER_TEST_POSTGRES must be set under CI"
            );
            crate::helpers::skipping(
                "PostgreSQL: set TICKLER_TEST_POSTGRES=postgres://USER@HOST:PORT to run it",
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

    pub fn url(&self) -> String {
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
        ws.add_config(&format!("database:\n  url: {url}\n"));
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

#[test]
fn copy_db_moves_the_send_log_to_postgres_and_nothing_is_sent_again() {
    let Some(db) = TempDb::create() else { return };
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    let now = "2026-03-04T10:00:00-05:00";
    ws.tickler(&["tick", "--now", now]).ok();
    assert_eq!(server.messages().len(), 3);
    let before = ws.sends();
    ws.tickler(&["suppress", "gone@example.org", "--reason", "moved away"])
        .ok();

    let copied = ws.tickler(&["copy-db", "--to", &db.url()]).ok();
    assert_eq!(
        copied.stdout.trim(),
        "copied contacts=5 events=6 sends=5 meta=1 suppressions=1 soft_bounces=0",
        "{}",
        copied.stderr
    );
    // A second copy into the same database is refused and changes nothing.
    let again = ws.tickler(&["copy-db", "--to", &db.url()]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already has 5 rows in `contacts`"),
        "{}",
        again.stderr
    );

    ws.add_config(&format!("database:\n  url: {}\n", db.url()));
    assert_eq!(ws.sends(), before, "the send log arrived whole");
    let list = ws.tickler(&["suppressions", "--format", "csv"]).ok();
    assert!(
        list.stdout.contains("gone@example.org,moved away"),
        "the suppression list arrived: {}",
        list.stdout
    );
    let later = ws
        .tickler(&["tick", "--now", "2026-03-05T11:00:00-05:00"])
        .ok();
    assert_eq!(
        later.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(server.messages().len(), 3, "nothing is sent twice");
    // New sends continue after the copied ids.
    ws.write(
        "events.csv",
        "id,contact_id,kind,at,item\nP-9,K-1,purchase,2026-03-04,tiles\n",
    );
    ws.tickler(&["import", "events", "events.csv"]).ok();
    let next = ws
        .tickler(&["tick", "--now", "2026-03-06T11:00:00-05:00"])
        .ok();
    assert_eq!(
        next.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
}

/// A tick reads a contact, an import adds an event to it meanwhile, and the tick then
/// stores the next due time it computed without that event: the contact must stay due,
/// or its follow-up would never be planned. On both backends.
#[test]
fn an_import_during_a_pass_is_not_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = TempDb::create();
    let urls: Vec<String> = std::iter::once(sqlite)
        .chain(db.as_ref().map(TempDb::url))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for url in urls {
        rt.block_on(async {
            use std::io::Cursor;
            use tickler::sync::{Kind, import};
            let zone = jiff::tz::TimeZone::UTC;
            let now: jiff::Timestamp = "2026-03-04T10:00:00Z".parse().unwrap();
            let store = tickler::store::open(&url).await.expect("store");
            let contacts = Cursor::new(b"id,first_name\nK-1,Ingrid\n".to_vec());
            import(store.as_ref(), Kind::Contacts, contacts, &zone, now)
                .await
                .expect("contacts");
            let ids = vec!["K-1".to_owned()];
            assert_eq!(
                store.queue_depth(now).await.unwrap(),
                1,
                "{url}: new, so due"
            );

            // A pass that sees nothing new puts the contact to sleep.
            let pass = store.begin_pass();
            store.mark_due(&ids, &pass, now).await.unwrap();
            store
                .set_next_due(&[("K-1".into(), None)], &pass)
                .await
                .unwrap();
            assert_eq!(store.queue_depth(now).await.unwrap(), 0, "{url}: asleep");

            // A pass reads it; an event arrives; the pass stores what it read.
            let pass = store.begin_pass();
            store.mark_due(&ids, &pass, now).await.unwrap();
            let events = Cursor::new(b"contact_id,kind,at\nK-1,purchase,2026-03-03\n".to_vec());
            import(store.as_ref(), Kind::Events, events, &zone, now)
                .await
                .expect("events");
            store
                .set_next_due(&[("K-1".into(), None)], &pass)
                .await
                .unwrap();
            assert_eq!(
                store.queue_depth(now).await.unwrap(),
                1,
                "{url}: still due, for the next pass to see the purchase"
            );

            // The import writes its events (and wakes the contact, due already) but has
            // not committed when a pass marks the contact: the pass must then read the
            // events, or it would put the contact to sleep without them.
            let mut tx = store.writer().await.expect("import");
            let event = tickler::store::EventUpsert {
                contact_id: "K-1".into(),
                id: "P-2".into(),
                kind: "purchase".into(),
                at: "2026-03-04T09:00:00Z".parse().unwrap(),
                fields: "{}".into(),
            };
            tx.events(vec![event], Vec::new(), now)
                .await
                .expect("events");
            let (histories, ()) = tokio::join!(
                async {
                    store
                        .mark_due(&ids, &store.begin_pass(), now)
                        .await
                        .unwrap();
                    store.history(&ids).await.unwrap()
                },
                async {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    tx.commit().await.expect("commit");
                }
            );
            assert_eq!(
                histories[0].events.len(),
                2,
                "{url}: a pass that marked the contact during the import sees its events"
            );
        });
    }
}

/// A large events import in no order of contacts: every event lands with its contact's
/// zone, every sleeping contact wakes, and a row for an unknown contact is rejected. On
/// both backends.
#[test]
fn a_large_events_import_resolves_and_wakes_every_contact() {
    const CONTACTS: usize = 5000;
    const EVENTS: usize = 20_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = TempDb::create();
    let urls: Vec<String> = std::iter::once(sqlite)
        .chain(db.as_ref().map(TempDb::url))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for url in urls {
        rt.block_on(async {
            use std::io::Cursor;
            use tickler::sync::{Kind, import};
            let zone = jiff::tz::TimeZone::UTC;
            let now: jiff::Timestamp = "2026-03-04T10:00:00Z".parse().unwrap();
            let store = tickler::store::open(&url).await.expect("store");
            let mut contacts = String::from("id,first_name,timezone\n");
            for i in 0..CONTACTS {
                let tz = if i % 2 == 0 { "Asia/Tokyo" } else { "" };
                contacts.push_str(&format!("L-{i:05},Name{i},{tz}\n"));
            }
            import(
                store.as_ref(),
                Kind::Contacts,
                Cursor::new(contacts),
                &zone,
                now,
            )
            .await
            .expect("contacts");
            let ids: Vec<String> = (0..CONTACTS).map(|i| format!("L-{i:05}")).collect();
            let pass = store.begin_pass();
            store.mark_due(&ids, &pass, now).await.unwrap();
            let asleep: Vec<_> = ids.iter().map(|id| (id.clone(), None)).collect();
            store.set_next_due(&asleep, &pass).await.unwrap();
            assert_eq!(store.queue_depth(now).await.unwrap(), 0, "{url}: asleep");

            let mut events = String::from("id,contact_id,kind,at\n");
            for i in 0..EVENTS {
                let contact = i * 7919 % CONTACTS;
                events.push_str(&format!("E{i},L-{contact:05},purchase,2026-03-03\n"));
            }
            events.push_str("E-lost,L-99999,purchase,2026-03-03\n");
            let report = import(
                store.as_ref(),
                Kind::Events,
                Cursor::new(events),
                &zone,
                now,
            )
            .await
            .expect("events");
            assert_eq!(report.accepted, EVENTS, "{url}");
            assert_eq!(report.rejected.len(), 1, "{url}: {:?}", report.rejected);
            assert!(
                report.rejected[0].1.contains("no contact `L-99999`"),
                "{url}: {:?}",
                report.rejected
            );
            assert_eq!(
                store.queue_depth(now).await.unwrap(),
                CONTACTS as i64,
                "{url}: every contact with a new event wakes"
            );
            // A plain date is the contact's day.
            for i in [0, 1, EVENTS - 2, EVENTS - 1] {
                let contact = i * 7919 % CONTACTS;
                let history = store.history(&[format!("L-{contact:05}")]).await.unwrap();
                let event = history[0]
                    .events
                    .iter()
                    .find(|e| e.id == format!("E{i}"))
                    .unwrap_or_else(|| panic!("{url}: E{i} stored"));
                let expected = if contact.is_multiple_of(2) {
                    "2026-03-02T15:00:00Z"
                } else {
                    "2026-03-03T00:00:00Z"
                };
                assert_eq!(event.at.to_string(), expected, "{url}: E{i}");
            }
        });
    }
}

/// A database made before events were stored by contact (schema version 2) keeps its
/// contacts, events and send log through the upgrade, each row's first-seen time with
/// it, and a contact and event not yet seen are armed by the pass that reads them.
#[test]
fn an_older_sqlite_database_keeps_its_rows_through_the_upgrade() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .expect("pool");
        let mut migrator = sqlx::migrate::Migrator::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"),
        )
        .await
        .expect("migrations");
        migrator.migrations.to_mut().retain(|m| m.version <= 2);
        migrator.run(&pool).await.expect("schema version 2");
        pool.execute(
            "INSERT INTO contacts (id, first_name, digest, armed_at, next_due_at, created_at, updated_at) VALUES \
             ('K-1', 'Ingrid', 'd1', 100, 5000, 90, 90), ('K-2', 'Olaf', 'd2', NULL, 0, 95, 95); \
             INSERT INTO events (contact_id, id, kind, at, fields, armed_at, created_at) VALUES \
             ('K-1', 'P-1', 'purchase', 80, '{\"item\":\"slate\"}', 100, 90), \
             ('K-2', 'P-2', 'purchase', 85, '{}', NULL, 95), \
             ('K-1', 'S-1', 'service', 70, '{}', 100, 90); \
             INSERT INTO sends (contact_id, cadence, occurrence, channel, status, due_at, message_id, created_at, updated_at) \
             VALUES ('K-1', 'thank-you', 'P-1', 'email', 'sent', 90, '<m@x>', 91, 91);",
        )
        .await
        .expect("rows of the old schema");
        pool.close().await;

        let store = tickler::store::open(&url).await.expect("upgraded");
        let ids = vec!["K-1".to_owned(), "K-2".to_owned()];
        let histories = store.history(&ids).await.expect("history");
        let (k1, k2) = (&histories[0], &histories[1]);
        let mut k1_events: Vec<(&str, Option<i64>)> = k1
            .events
            .iter()
            .map(|e| (e.id.as_str(), e.armed_at.map(|t| t.as_second())))
            .collect();
        k1_events.sort();
        assert_eq!(k1_events, [("P-1", Some(100)), ("S-1", Some(100))]);
        assert_eq!(k1.events.iter().find(|e| e.id == "P-1").unwrap().fields.map().unwrap()["item"], "slate");
        assert_eq!(k1.contact.armed_at.map(|t| t.as_second()), Some(100));
        assert!(k1.logged.contains(&("thank-you".to_owned(), "P-1".to_owned())));
        assert_eq!(k2.contact.armed_at, None);
        assert_eq!(k2.events[0].armed_at, None);

        let now: jiff::Timestamp = "2026-03-04T10:00:00Z".parse().unwrap();
        store.mark_due(&ids, &store.begin_pass(), now).await.expect("mark");
        let histories = store.history(&ids).await.expect("history");
        assert_eq!(histories[0].contact.armed_at.map(|t| t.as_second()), Some(100), "seen before: kept");
        assert_eq!(histories[1].contact.armed_at, Some(now), "first seen by this pass");
        assert_eq!(histories[1].events[0].armed_at, Some(now));
        assert!(histories[0].events.iter().all(|e| e.armed_at.map(|t| t.as_second()) == Some(100)));
    });
}
