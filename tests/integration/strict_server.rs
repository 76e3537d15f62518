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
        // cleanup's notes about the machine's clock are about the host, not the client.
        .filter(|line| !line.contains("cleanup[") || !line.contains("clock"))
        .filter(|line| !line.contains("resetting file time stamps"))
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

/// One SMTP exchange on a raw connection: writes `input`, then reads what the server
/// says until it closes the connection or is quiet for half a second.
fn exchange(server: &PostfixServer, input: &[&[u8]]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut said = Vec::new();
    let mut buffer = [0u8; 4096];
    // The greeting first, then each write in turn with what it was answered.
    for chunk in std::iter::once(&b""[..]).chain(input.iter().copied()) {
        stream.write_all(chunk).expect("write");
        while let Ok(n @ 1..) = stream.read(&mut buffer) {
            said.extend_from_slice(&buffer[..n]);
        }
    }
    String::from_utf8_lossy(&said).into_owned()
}

#[test]
fn the_strict_postfix_refuses_early_pipelining_and_bare_newlines() {
    let Some(server) = PostfixServer::start(Limits::default()) else {
        return;
    };
    // Commands sent before the server has said it allows pipelining (no EHLO).
    let said = exchange(
        &server,
        &[b"HELO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"],
    );
    assert!(said.contains("554 5.5.0"), "{said}");
    if server.rejects_bare_newlines() {
        let said = exchange(
            &server,
            &[
                b"EHLO client.test\r\n",
                b"MAIL FROM:<a@example.com>\r\n",
                b"RCPT TO:<b@example.com>\r\n",
                b"DATA\r\n",
                b"Subject: bare\nbody\r\n.\r\n",
                b"QUIT\r\n",
            ],
        );
        assert!(said.contains("bare <LF> received"), "{said}");
    }
    // The log says so in the words the other tests look for.
    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted = if server.rejects_bare_newlines() { 2 } else { 1 };
    while complaints(&server.log()).len() < wanted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log();
    assert!(log.contains("improper command pipelining"), "{log}");
    assert!(
        !server.rejects_bare_newlines() || log.contains("bare <LF> received"),
        "{log}"
    );
    assert!(server.delivered().is_empty());
}

/// Delivery within a relay's limit of 2 simultaneous connections while tickler is
/// allowed 4: the third and fourth connections get "421 4.7.0 Error: too many
/// connections from 127.0.0.1". The pool learns the limit: every message is delivered
/// in the first pass at its first attempt.
#[test]
fn a_connection_count_limit_below_max_connections_delays_nothing() {
    const CONTACTS: usize = 1500;
    let Some(server) = PostfixServer::start(Limits {
        connection_count: Some(2),
        ..Limits::default()
    }) else {
        return;
    };
    let ws = workspace(&server, 4, CONTACTS);
    let run = ws.tickler(&["tick"]);
    let rows = ws.sends();
    // What Postfix accepted is in the Maildir within seconds.
    let accepted = rows.iter().filter(|r| r["status"] == "sent").count();
    let ids = server.wait_for(accepted, Duration::from_secs(60));
    report("connection count limit 2", &run.stdout, &rows, &server);
    assert_eq!(
        run.stdout.trim(),
        format!("sent={CONTACTS} failed=0 retrying=0 skipped=0 deferred=0")
    );
    assert_eq!(counts(&ids).len(), CONTACTS);
    assert_eq!(ids.len(), CONTACTS);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "sent" && r["attempts"].as_u64().is_some_and(|a| a <= 1)),
        "every send is sent at its first attempt"
    );
}

/// Delivery within a relay's limit of 100 messages per 10 seconds: the 101st MAIL
/// FROM within the window gets "450 4.7.1 Error: too much mail from 127.0.0.1".
/// tickler pauses and then spaces its messages: all are delivered in the first pass, at
/// their first attempt, on connections it keeps.
#[test]
fn a_message_rate_limit_spreads_delivery_without_failures() {
    const CONTACTS: usize = 300;
    let Some(server) = PostfixServer::start(Limits {
        message_rate: Some((100, 10)),
        ..Limits::default()
    }) else {
        return;
    };
    let ws = workspace(&server, 2, CONTACTS);
    let run = ws.tickler(&["tick"]);
    let rows = ws.sends();
    // What Postfix accepted is in the Maildir within seconds.
    let accepted = rows.iter().filter(|r| r["status"] == "sent").count();
    let ids = server.wait_for(accepted, Duration::from_secs(60));
    report("message rate limit 100/10s", &run.stdout, &rows, &server);
    assert_eq!(
        run.stdout.trim(),
        format!("sent={CONTACTS} failed=0 retrying=0 skipped=0 deferred=0")
    );
    assert_eq!(counts(&ids).len(), CONTACTS);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "sent" && r["attempts"].as_u64().is_some_and(|a| a <= 1)),
        "every send is sent at its first attempt"
    );
}

/// What a pass did against a limit, printed for whoever reads the test's output.
fn report(what: &str, stdout: &str, rows: &[serde_json::Value], server: &PostfixServer) {
    let mut by_status: HashMap<String, usize> = HashMap::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for r in rows {
        *by_status.entry(r["status"].to_string()).or_default() += 1;
        if let Some(reason) = r["reason"].as_str().filter(|r| !r.is_empty()) {
            *reasons.entry(reason.to_owned()).or_default() += 1;
        }
    }
    let log = server.log();
    let limited: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("limit exceeded"))
        .collect();
    let sessions = log.lines().filter(|l| l.contains(" connect from ")).count();
    eprintln!(
        "{what}: {}; statuses {by_status:?}; reasons {reasons:?}; delivered {}; \
         {sessions} sessions; postfix logged {} times: {:?}",
        stdout.trim(),
        server.delivered().len(),
        limited.len(),
        limited.first()
    );
}
