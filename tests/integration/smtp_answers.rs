//! What a tick does with each answer an SMTP server gives: a permanent refusal, a
//! pipelining server, refusals within one connection, soft failures that recover, and
//! a server that cannot be reached.

use crate::helpers::Workspace;
use crate::smtp::{Behaviour, SmtpServer};

const NOW: &str = "2026-03-04T10:00:00-05:00";

#[test]
fn a_permanent_smtp_failure_fails_the_send_and_tick_exits_1() {
    let server = SmtpServer::start_with(Behaviour {
        rcpt_reply: Some((550, "5.1.1 no such user".into())),
        ..Default::default()
    });
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "sent=0 failed=3 retrying=0 skipped=2 deferred=0"
    );
    let failed = ws
        .tickler(&["sends", "--status", "failed", "--format", "json"])
        .ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&failed.stdout).expect("JSON");
    assert_eq!(rows.len(), 3);
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("550"),
        "{}",
        rows[0]
    );
    // A failed send is final: the next tick does not try again.
    server.set_behaviour(Behaviour::default());
    let next = ws
        .tickler(&["tick", "--now", "2026-03-04T12:00:00-05:00"])
        .ok();
    assert_eq!(
        next.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert!(server.messages().is_empty());
}

#[test]
fn a_pipelining_server_gets_mail_rcpt_and_data_at_once_and_refusals_count_the_same() {
    let server = SmtpServer::start_with(Behaviour {
        pipelining: true,
        ..Default::default()
    });
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    for m in &messages {
        assert!(m.pipelined, "MAIL came alone: {:?}", m.mail_from);
        assert!(m.header("Message-ID").is_some(), "{}", m.data);
    }
    for (reply, expected) in [
        (
            (550, "5.1.1 no such user"),
            "sent=0 failed=3 retrying=0 skipped=2 deferred=0",
        ),
        (
            (450, "4.2.0 try later"),
            "sent=0 failed=0 retrying=3 skipped=2 deferred=0",
        ),
    ] {
        let server = SmtpServer::start_with(Behaviour {
            pipelining: true,
            rcpt_reply: Some((reply.0, reply.1.into())),
            ..Default::default()
        });
        let ws = Workspace::new(Some(&server.url()));
        ws.import_all();
        let run = ws.tickler(&["tick", "--now", NOW]);
        assert_eq!(run.stdout.trim(), expected, "{}", run.stderr);
        assert!(server.messages().is_empty());
        let reasons: Vec<String> = ws
            .sends()
            .iter()
            .filter_map(|r| r["reason"].as_str().map(str::to_owned))
            .filter(|r| r.contains(&reply.0.to_string()))
            .collect();
        assert_eq!(reasons.len(), 3, "{:?}", ws.sends());
    }
}

#[test]
fn one_connection_sends_each_body_with_the_next_envelope_and_a_refusal_stops_only_its_message() {
    // The greeting waits until all three messages are queued for the one connection.
    let server = SmtpServer::start_with(Behaviour {
        pipelining: true,
        greeting_delay: Some(std::time::Duration::from_millis(300)),
        refuse_data_of: Some(2),
        ..Default::default()
    });
    let ws = Workspace::new(Some(&server.url()));
    let config = std::fs::read_to_string(ws.path("tickler.yaml"))
        .expect("config")
        .replace("max_connections: 2", "max_connections: 1");
    ws.write("tickler.yaml", &config);
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "sent=2 failed=1 retrying=0 skipped=2 deferred=0"
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.connection == 1), "{messages:?}");
    // The third message's MAIL FROM came in the same write as the refused second's
    // data, and the refusal did not cost it its place.
    assert!(!messages[0].behind_data && messages[1].behind_data);
    let failed: Vec<_> = ws
        .sends()
        .into_iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("554"),
        "{}",
        failed[0]
    );
}

#[test]
fn a_soft_failing_server_that_recovers_gets_every_message() {
    let server = SmtpServer::start_with(Behaviour {
        data_reply: Some((451, "4.3.0 try again later".into())),
        ..Default::default()
    });
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=0 failed=0 retrying=3 skipped=2 deferred=0"
    );
    let rows = ws.sends();
    let retrying: Vec<_> = rows.iter().filter(|r| r["status"] == "retrying").collect();
    assert_eq!(retrying.len(), 3);
    assert!(
        retrying
            .iter()
            .all(|r| r["reason"].as_str().unwrap_or_default().contains("451"))
    );

    server.set_behaviour(Behaviour::default());
    // Too early for the backoff: nothing yet.
    let early = ws
        .tickler(&["tick", "--now", "2026-03-04T10:01:00-05:00"])
        .ok();
    assert_eq!(
        early.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let later = ws
        .tickler(&["tick", "--now", "2026-03-04T11:00:00-05:00"])
        .ok();
    assert_eq!(
        later.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(server.messages().len(), 3);
    let ingrid = ws
        .sends()
        .into_iter()
        .find(|s| s["contact"] == "K-1")
        .expect("row");
    assert_eq!(ingrid["attempts"], 2);
}

#[test]
fn an_unreachable_server_pauses_sending_and_keeps_the_sends() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let ws = Workspace::new(Some(&format!("smtp://127.0.0.1:{port}")));
    ws.import_all();
    // No connection can be had: the sends are kept for the next pass, which the
    // owner is told about (SPEC section 8), and no attempt is spent.
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "sent=0 failed=0 retrying=3 skipped=2 deferred=0"
    );
    assert!(
        run.stderr.contains("error: sending paused:"),
        "{}",
        run.stderr
    );
}
