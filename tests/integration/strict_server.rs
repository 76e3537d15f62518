//! Delivery to a real, strict Postfix smtpd (see `postfix_server`): the protocol as
//! hosted relays enforce it, and their per-client limits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::helpers::Workspace;
use crate::postfix_server::{Limits, PostfixServer};

/// What Postfix's smtpd logs when a client breaks the protocol or a limit, or loses
/// the session: "improper command pipelining after ...", "bare <LF> received", "lost
/// connection after ...", "timeout after ...", "too many errors after ...",
/// "reject: ...", and anvil's "... limit exceeded" warnings.
const COMPLAINTS: [&str; 10] = [
    "improper command pipelining",
    "protocol synchronization",
    "bare <LF>",
    "lost connection",
    "timeout after",
    "too many errors",
    "reject:",
    "warning:",
    "error:",
    "fatal:",
];

/// The log lines that hold a complaint, and the smtpd sessions whose closing summary
/// counts a failed command ("disconnect from ... rcpt=1/2 ...").
fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            COMPLAINTS.iter().any(|c| line.contains(c))
                || line.contains(" panic:")
                || (line.contains("disconnect from")
                    && line
                        .split_whitespace()
                        .any(|w| w.contains('=') && w.contains('/')))
        })
        .collect()
}

/// A workspace that sends through `server` over `connections` connections, with
/// `contacts` thank-yous due now.
fn workspace(server: &PostfixServer, connections: usize, contacts: usize) -> Workspace {
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    ws.write(
        "tickler.yaml",
        &config.replace(
            "max_connections: 2",
            &format!("max_connections: {connections}"),
        ),
    );
    ws.due_purchases(contacts);
    ws
}

/// How many times each Message-ID arrived.
fn counts(ids: &[String]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    counts
}

#[test]
fn a_strict_postfix_receives_2000_messages_over_4_connections_exactly_once() {
    const CONTACTS: usize = 2000;
    let started = Instant::now();
    let Some(server) = PostfixServer::start(Limits::default()) else {
        return;
    };
    let startup = started.elapsed();
    let ws = workspace(&server, 4, CONTACTS);

    let sending = Instant::now();
    let run = ws.tickler(&["tick"]).ok();
    let sent_in = sending.elapsed();
    assert_eq!(
        run.stdout.trim(),
        format!("sent={CONTACTS} failed=0 retrying=0 skipped=0 deferred=0"),
        "{}\nlog:\n{}",
        run.stderr,
        server.log()
    );
    let ids = server.wait_for(CONTACTS, Duration::from_secs(120));
    let delivered_in = sending.elapsed();
    let log = server.log();
    let connects = log.lines().filter(|l| l.contains(" connect from ")).count();
    eprintln!(
        "strict postfix on port {}: started in {startup:.1?}, {CONTACTS} accepted in \
         {sent_in:.1?} over {connects} sessions, in the Maildir after {delivered_in:.1?}",
        server.port()
    );
    let counts = counts(&ids);
    assert!(
        ids.iter()
            .all(|id| id.starts_with('<') && id.ends_with('>')),
        "every message has a Message-ID"
    );
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), CONTACTS, "every message arrives\n{log}");
    assert_eq!(ids.len(), CONTACTS);

    let rows = ws.sends();
    assert_eq!(rows.len(), CONTACTS);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "sent" && r["attempts"] == 1),
        "every send is recorded as sent at the first attempt"
    );
    let bad = complaints(&log);
    assert!(bad.is_empty(), "postfix complained:\n{}", bad.join("\n"));
    // The sessions: at most the 4 connections allowed at once, each closed with QUIT
    // (an extra one is the helper's own check that the server greets).
    let quits = log
        .lines()
        .filter(|l| l.contains("disconnect from") && l.contains(" quit=1"))
        .count();
    assert_eq!(connects, quits, "every session ends with QUIT");
}
