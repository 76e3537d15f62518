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
