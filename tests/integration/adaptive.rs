//! Delivery that adapts to what the server allows: fewer connections than
//! `max_connections`, a message rate limit, a server that cannot be reached at all.
//! A refusal that is about the client costs no message an attempt; every message
//! goes out once, byte for byte the same on every attempt.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::helpers::Workspace;
use crate::smtp::{Behaviour, SmtpServer};

/// A workspace sending to `server` over up to 4 connections, with `count` thank-yous
/// due now.
fn busy_workspace(server: &SmtpServer, count: usize) -> Workspace {
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    ws.write(
        "tickler.yaml",
        &config.replace("max_connections: 2", "max_connections: 4"),
    );
    ws.due_purchases(count);
    ws
}

/// Every row sent, with one attempt each.
fn all_sent_once(ws: &Workspace, count: usize) {
    let rows = ws.sends();
    assert_eq!(rows.len(), count);
    for row in &rows {
        assert_eq!(row["status"], "sent", "{row}");
        assert_eq!(row["attempts"], 1, "{row}");
    }
}

#[test]
fn fewer_connections_than_max_connections_deliver_everything_in_the_first_pass() {
    let server = SmtpServer::start_with(Behaviour {
        pipelining: true,
        connection_limit: Some(2),
        ..Behaviour::default()
    });
    let ws = busy_workspace(&server, 600);
    let run = ws.tickler(&["tick"]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=600 failed=0 retrying=0 skipped=0 deferred=0",
        "{}",
        run.stderr
    );
    all_sent_once(&ws, 600);
    assert_eq!(server.messages().len(), 600);
    // The pool learned the limit instead of knocking on every message.
    let refused = server.counters.refused_connections.load(Ordering::SeqCst);
    assert!((1..=30).contains(&refused), "{refused} connections refused");
}

#[test]
fn a_message_rate_limit_slows_sending_and_costs_no_attempts() {
    let server = SmtpServer::start_with(Behaviour {
        pipelining: true,
        message_rate: Some((40, Duration::from_secs(2))),
        ..Behaviour::default()
    });
    let ws = busy_workspace(&server, 150);
    let started = Instant::now();
    let run = ws.tickler(&["tick"]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=150 failed=0 retrying=0 skipped=0 deferred=0",
        "{}",
        run.stderr
    );
    all_sent_once(&ws, 150);
    assert_eq!(server.messages().len(), 150);
    // A handful of refusals taught the pace, not one per message; the connections
    // were kept (no new one per refusal).
    let refused = server.counters.refused_mail.load(Ordering::SeqCst);
    assert!(refused <= 40, "{refused} refusals for 150 messages");
    let connections = server.messages().iter().map(|m| m.connection).max();
    assert!(connections <= Some(8), "{connections:?} connections");
    assert!(started.elapsed() < Duration::from_secs(90));
}

#[test]
fn a_server_that_cannot_be_reached_pauses_sending_without_spending_attempts() {
    // A port nothing listens on.
    let port = crate::helpers::free_port();
    let ws = Workspace::new(Some(&format!("smtp://127.0.0.1:{port}")));
    ws.always_open();
    ws.due_purchases(5);
    let run = ws.tickler(&["tick"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("sending paused: no connection to the SMTP server can be had"),
        "{}",
        run.stderr
    );
    for row in ws.sends() {
        assert_eq!(row["status"], "retrying", "{row}");
        assert_eq!(row["attempts"], 0, "{row}");
    }
}

#[test]
fn a_resend_is_the_same_bytes_and_its_retries_count_from_the_first_attempt() {
    let server = SmtpServer::start_with(Behaviour {
        data_reply: Some((451, "4.3.0 try again later".into())),
        ..Behaviour::default()
    });
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    // Due at 09:00 on Mar 4; first tried 25 hours later, after downtime. give_up_after
    // is 1d: counted from the due time, the send would fail at its first attempt.
    let run = ws.tickler(&["tick", "--now", "2026-03-05T10:00:00-05:00"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = ws.sends();
    let retrying = rows.iter().filter(|r| r["status"] == "retrying").count();
    assert_eq!(retrying, 3, "{rows:?}");
    let first = server.counters.refused_data.lock().expect("lock").clone();
    assert_eq!(first.len(), 3);

    server.set_behaviour(Behaviour::default());
    let run = ws
        .tickler(&["tick", "--now", "2026-03-05T11:00:00-05:00"])
        .ok();
    assert!(run.stdout.starts_with("sent=3 "), "{}", run.stdout);
    let mut resent: Vec<String> = server.messages().into_iter().map(|m| m.data).collect();
    let mut first = first;
    resent.sort();
    first.sort();
    assert_eq!(resent, first, "the resend differs from the first attempt");
    assert!(resent.iter().any(|m| m.contains("multipart/alternative")));
}
