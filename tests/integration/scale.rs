//! Several `tickler run` instances on one PostgreSQL database share the due work: every
//! message is delivered, none twice (outside the documented in-flight bound of an
//! instance that is killed), and a changed CSV file is synced once for the group.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::backends::TempDb;
use crate::helpers::Workspace;
use crate::smtp::SmtpServer;

const MAX_CONNECTIONS: usize = 4;

fn start(ws: &Workspace, log: &str) -> Child {
    let log = std::fs::File::create(ws.path(log)).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(["--config", "tickler.yaml", "--log-format", "json", "run"])
        .current_dir(ws.dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("instance starts")
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(child.wait().expect("wait").success(), "exits 0 on SIGTERM");
}

fn unique_message_ids(server: &SmtpServer) -> (usize, usize) {
    let mut unique: HashMap<String, usize> = HashMap::new();
    let messages = server.messages();
    for m in &messages {
        *unique
            .entry(m.header("Message-ID").unwrap_or_default())
            .or_default() += 1;
    }
    (messages.len(), unique.len())
}

#[test]
fn three_instances_deliver_5000_sends_once_though_one_is_killed_midway() {
    const CONTACTS: usize = 5000;
    let Some(db) = TempDb::create() else { return };
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    // A generous SMTP deadline: a timeout on a loaded machine would become a retry
    // minutes later, past the test's own deadline.
    let config = std::fs::read_to_string(ws.path("tickler.yaml"))
        .expect("config")
        .replace(
            "max_connections: 2",
            &format!("max_connections: {MAX_CONNECTIONS}"),
        )
        .replace("timeout: 10s", "timeout: 120s");
    ws.write(
        "tickler.yaml",
        &format!(
            "{}database:\n  url: {}\ncontacts: {{ sync_csv: contacts.csv }}\nevents: {{ sync_csv: events.csv }}\n",
            config,
            db.url()
        ),
    );
    // Written, not imported: the instances sync the files themselves, once.
    ws.due_purchases_files(CONTACTS);

    let mut instances: Vec<Child> = (0..3)
        .map(|i| start(&ws, &format!("instance{i}.log")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    // The victim dies while it delivers: once a third has arrived and it has sent some
    // itself (its first tick may come before the files are synced, and the others can
    // send a third of the messages before its next one).
    let victim_sends = || {
        std::fs::read_to_string(ws.path("instance0.log"))
            .unwrap_or_default()
            .contains("\"status\":\"sent\"")
    };
    while (unique_message_ids(&server).1 < CONTACTS / 3 || !victim_sends())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut victim = instances.remove(0);
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaped");
    let at_kill = unique_message_ids(&server).1;
    while unique_message_ids(&server).1 < CONTACTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the survivors record what they have sent before stopping them.
    std::thread::sleep(Duration::from_secs(2));
    for instance in instances {
        stop(instance);
    }

    let logs: Vec<String> = (0..3)
        .map(|i| std::fs::read_to_string(ws.path(&format!("instance{i}.log"))).unwrap_or_default())
        .collect();
    // What went wrong, if anything did: warnings, errors and sends not sent.
    let tails: Vec<String> = logs
        .iter()
        .map(|l| {
            l.lines()
                .filter(|line| !line.contains("\"INFO\"") || line.contains("retrying"))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let (total, unique) = unique_message_ids(&server);
    let rows = ws.sends();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *by_status.entry(r["status"].to_string()).or_default() += 1;
    }
    let unsent: Vec<String> = rows
        .iter()
        .filter(|r| r["status"] != "sent")
        .take(3)
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        unique,
        CONTACTS,
        "every message arrives; {} rows {by_status:?}, e.g. {unsent:?}; the instances said:\n{}",
        rows.len(),
        tails.join("\n---\n")
    );
    let bound = MAX_CONNECTIONS + tickler::tick::RECORD_BATCH;
    eprintln!(
        "three instances: killed one after {at_kill} messages; {total} received, {unique} unique, {} resent (bound {bound})",
        total - unique
    );
    assert!(at_kill < CONTACTS, "the kill came before the end");
    assert_eq!(unique, CONTACTS, "every message arrives");
    assert!(
        total - unique <= bound,
        "{} resent exceed the bound {bound}",
        total - unique
    );
    assert_eq!(rows.len(), CONTACTS);
    assert!(
        rows.iter().all(|r| r["status"] == "sent"),
        "every send recorded as sent"
    );

    // Each instance delivered a share, and the files were synced by one of them.
    let synced: usize = logs.iter().map(|l| l.matches("\"synced\"").count()).sum();
    assert_eq!(
        synced,
        2,
        "contacts.csv and events.csv synced once each:\n{}",
        logs.join("\n")
    );
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("\"status\":\"sent\""),
            "instance {i} sent nothing:\n{log}"
        );
    }
}

/// A first pass over more contacts than a page plans every one of them ahead, in pages
/// that grow while nothing is recorded, and the pass at their due time sends each
/// thank-you once.
#[test]
fn a_first_pass_in_growing_pages_plans_every_contact_once() {
    const CONTACTS: usize = 6_000;
    let ws = Workspace::new(None);
    let mut contacts = String::from("id,first_name,email\n");
    let mut events = String::from("id,contact_id,kind,at\n");
    for i in 0..CONTACTS {
        contacts.push_str(&format!("C{i:05},Pat,c{i}@example.com\n"));
        events.push_str(&format!("P{i},C{i:05},purchase,2026-03-02\n"));
    }
    ws.write("contacts.csv", &contacts);
    ws.write("events.csv", &events);
    ws.import_all();

    // The thank-yous fall due on March 4 at 09:00: the day before, nothing is.
    let ahead = ws
        .tickler(&["tick", "--now", "2026-03-03T10:00:00-05:00"])
        .ok();
    assert_eq!(
        ahead.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    // Each contact's next due time was written, under the mark of the page it was read
    // in: all of them at the thank-you's opening, none left due.
    let db = rusqlite::Connection::open(ws.path("state/tickler.db")).expect("database");
    let due: Vec<(Option<i64>, i64)> = db
        .prepare("SELECT next_due_at, count(*) FROM contacts GROUP BY next_due_at")
        .and_then(|mut q| {
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .expect("due times");
    let opening: jiff::Timestamp = "2026-03-04T09:00:00-05:00".parse().expect("instant");
    assert_eq!(due, [(Some(opening.as_second()), CONTACTS as i64)]);
    // A look two days ahead finds them all.
    let plan = ws
        .tickler(&[
            "plan",
            "--days",
            "2",
            "--format",
            "csv",
            "--now",
            "2026-03-03T10:00:00-05:00",
        ])
        .ok();
    assert_eq!(
        plan.stdout
            .lines()
            .filter(|l| l.contains(",thanks,"))
            .count(),
        CONTACTS,
        "every contact's thank-you is planned:\n{}",
        plan.stdout.lines().take(5).collect::<Vec<_>>().join("\n")
    );

    let due = ws
        .tickler(&["tick", "--now", "2026-03-04T10:00:00-05:00"])
        .ok();
    assert_eq!(
        due.stdout.trim(),
        format!("sent={CONTACTS} failed=0 retrying=0 skipped=0 deferred=0")
    );
    let again = ws
        .tickler(&["tick", "--now", "2026-03-04T11:00:00-05:00"])
        .ok();
    assert_eq!(
        again.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let sends = ws.sends();
    let mut contacts: Vec<&str> = sends.iter().filter_map(|s| s["contact"].as_str()).collect();
    contacts.sort_unstable();
    contacts.dedup();
    assert_eq!((sends.len(), contacts.len()), (CONTACTS, CONTACTS));
}
