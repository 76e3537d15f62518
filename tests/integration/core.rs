//! The core slice as a user meets it: import, check, tick, sends, plan, preview.

use crate::helpers::{Workspace, tickler_in};
use crate::smtp::{Behaviour, SmtpServer};

const NOW: &str = "2026-03-04T10:00:00-05:00";

fn subjects_by_recipient(server: &SmtpServer) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = server
        .messages()
        .iter()
        .map(|m| (m.rcpt_to.join(","), m.header("Subject").unwrap_or_default()))
        .collect();
    got.sort();
    got
}

#[test]
fn tick_delivers_exactly_the_due_messages_once() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();

    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    let mut got = subjects_by_recipient(&server);
    // The non-ASCII subject is RFC 2047-encoded; its ASCII start shows as is.
    let tomas = got.pop().expect("three messages");
    assert_eq!(tomas.0, "tomas@example.net");
    assert!(tomas.1.starts_with("Thanks for the grout, "), "{}", tomas.1);
    assert_eq!(
        got,
        [
            (
                "ingrid@example.org".to_owned(),
                "Thanks for the slate tiles, Ingrid!".to_owned()
            ),
            (
                "priya@example.com".to_owned(),
                "Still thinking about marble?".to_owned()
            ),
        ]
    );

    // A second tick, at the same time or later, sends nothing again.
    let again = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        again.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let later = ws
        .tickler(&["tick", "--now", "2026-03-05T11:00:00-05:00"])
        .ok();
    assert_eq!(
        later.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(server.messages().len(), 3);

    // Every occurrence that fell due is one row of the send log, skips with reasons.
    let sends = ws.sends();
    assert_eq!(sends.len(), 5);
    let row = |contact: &str| sends.iter().find(|s| s["contact"] == contact).expect("row");
    assert_eq!(row("K-4")["status"], "skipped");
    assert_eq!(row("K-4")["reason"], "no_email");
    assert_eq!(row("K-5")["reason"], "opted_out");
    assert_eq!(row("K-1")["status"], "sent");
    assert_eq!(row("K-1")["attempts"], 1);
    assert!(
        row("K-1")["reply"]
            .as_str()
            .unwrap_or_default()
            .starts_with("250")
    );
}

#[test]
fn messages_carry_a_stable_message_id_text_html_and_the_postal_address() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let ingrid = server
        .messages()
        .into_iter()
        .find(|m| m.rcpt_to == ["ingrid@example.org"])
        .expect("mail to Ingrid");
    let message_id = ingrid.header("Message-ID").expect("Message-ID");
    assert!(
        message_id.ends_with(".tickler@fjord.example>"),
        "{message_id}"
    );
    let logged = ws
        .sends()
        .into_iter()
        .find(|s| s["contact"] == "K-1")
        .expect("row");
    assert_eq!(logged["message_id"], message_id.as_str());
    assert!(
        ingrid
            .header("Content-Type")
            .unwrap_or_default()
            .starts_with("multipart/alternative")
    );
    assert!(ingrid.header("List-Unsubscribe").is_some());
    // Text bodies are not HTML-escaped; custom fields reach templates.
    assert!(
        ingrid.data.contains("Hello Ingrid, & thank you."),
        "{}",
        ingrid.data
    );
    assert!(ingrid.data.contains("Shoe size: 42"));
    assert!(ingrid.data.contains("1 Harbour St, Troy, NY 12180, US"));
    // The preview of the same occurrence carries the same Message-ID.
    let preview = ws
        .tickler(&[
            "preview",
            "thanks",
            "K-1",
            "--now",
            "2026-03-03T10:00:00-05:00",
        ])
        .ok();
    assert!(
        preview
            .stdout
            .contains(&format!("Message-ID: {message_id}")),
        "{}",
        preview.stdout
    );
}

#[test]
fn dry_run_sends_and_records_nothing() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW, "--dry-run"]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.last().copied(),
        Some("would: sent=3 failed=0 retrying=0 skipped=2 deferred=0"),
        "{}",
        run.stdout
    );
    // A header, then one line for each send it would make or skip, reasons in words.
    assert!(lines[0].starts_with("DUE_AT"), "{}", run.stdout);
    let listed = &lines[1..lines.len() - 1];
    assert_eq!(listed.len(), 5, "{}", run.stdout);
    assert_eq!(listed.iter().filter(|l| l.ends_with(" send")).count(), 3);
    let skips: Vec<&&str> = listed.iter().filter(|l| l.contains(" skip: ")).collect();
    assert_eq!(skips.len(), 2, "{}", run.stdout);
    assert!(skips.iter().all(|l| l.contains('(') && l.ends_with(')')));
    assert!(server.messages().is_empty());
    assert!(ws.sends().is_empty());
    // The real tick afterwards does what the dry run said, send by send.
    let real = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        real.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    let mut done: Vec<(String, String, String)> = ws
        .sends()
        .iter()
        .map(|r| {
            let word = if r["status"] == "skipped" {
                "skip:"
            } else {
                "send"
            };
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("contact"), text("cadence"), word.to_owned())
        })
        .collect();
    let mut said: Vec<(String, String, String)> = listed
        .iter()
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (
                cells[1].to_owned(),
                cells[2].to_owned(),
                cells[5].to_owned(),
            )
        })
        .collect();
    done.sort();
    said.sort();
    assert_eq!(done, said);
}

#[test]
fn plan_lists_what_the_tick_then_sends() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    let plan = ws
        .tickler(&[
            "plan",
            "--now",
            "2026-03-03T00:00:00-05:00",
            "--days",
            "3",
            "--format",
            "json",
        ])
        .ok();
    let items: Vec<serde_json::Value> = serde_json::from_str(&plan.stdout).expect("plan JSON");
    let mut planned: Vec<(String, String)> = items
        .iter()
        .map(|i| {
            (
                i["contact"].as_str().unwrap_or_default().to_owned(),
                i["cadence"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            ("K-1".into(), "thanks".into()),
            ("K-2".into(), "thanks".into()),
            ("K-3".into(), "nudge".into())
        ]
    );
    let oslo = items.iter().find(|i| i["contact"] == "K-1").expect("K-1");
    assert_eq!(oslo["due_at"], "2026-03-04T09:00:00+01:00");
    assert_eq!(oslo["occurrence"], "P-1");
    assert_eq!(oslo["channel"], "email");
    ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(server.messages().len(), items.len());
}

#[test]
fn a_newer_purchase_cancels_the_prospect_nudge() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    ws.tickler_with_input(
        &["import", "events", "-"],
        Some("id,contact_id,kind,at\nP-9,K-3,purchase,2026-03-02\n"),
    )
    .ok();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let nudge = ws
        .sends()
        .into_iter()
        .find(|s| s["contact"] == "K-3" && s["cadence"] == "nudge")
        .expect("row");
    assert_eq!(nudge["status"], "skipped");
    assert_eq!(nudge["reason"], "unless:purchase");
    // She gets the thank-you for the purchase, and no nudge.
    let to_priya: Vec<String> = server
        .messages()
        .iter()
        .filter(|m| m.rcpt_to == ["priya@example.com"])
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    assert_eq!(to_priya, ["Thanks for the order, Priya!"]);
}

#[test]
fn import_reports_each_bad_row_keeps_the_good_ones_and_exits_1() {
    let ws = Workspace::new(None);
    let csv = "\
id,first_name,email,birthday,timezone
G-1,Good,good@example.com,1990-01-02,
B-1,Bad,not-an-email,,
B-2,Bad,b2@example.com,2026-02-30,
B-3,Bad,b3@example.com,,Mars/Olympus
,Nobody,nobody@example.com,,
G-1,Twice,twice@example.com,,
G-2,Fine,fine@example.com,02-29,Asia/Tokyo
";
    ws.write("people.csv", csv);
    let run = ws.tickler(&["import", "contacts", "people.csv"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 5, "{}", run.stderr);
    assert!(
        errors[0].starts_with("error: people.csv:3: email:"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("error: people.csv:4: birthday:"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("error: people.csv:5: timezone:"),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("error: people.csv:6: id: missing"),
        "{}",
        errors[3]
    );
    assert!(
        errors[4].starts_with("error: people.csv:7: id:"),
        "{}",
        errors[4]
    );
    assert!(run.stdout.contains("imported 2 contacts"), "{}", run.stdout);

    let events = "contact_id,kind,at\nG-1,purchase,2026-03-01\nNOPE,purchase,2026-03-01\nG-2,purchase,yesterday\n";
    ws.write("ev.csv", events);
    let run = ws.tickler(&["import", "events", "ev.csv"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("error: ev.csv:3: contact_id: no contact `NOPE`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error: ev.csv:4: at:"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("imported 1 events"), "{}", run.stdout);
}

#[test]
fn reimporting_the_same_files_changes_nothing() {
    let ws = Workspace::new(None);
    ws.import_all();
    let again = ws.tickler(&["import", "contacts", "contacts.csv"]).ok();
    assert!(
        again.stdout.contains("imported 5 contacts (0 changed)"),
        "{}",
        again.stdout
    );
    let again = ws.tickler(&["import", "events", "events.csv"]).ok();
    assert!(
        again.stdout.contains("imported 6 events (0 changed)"),
        "{}",
        again.stdout
    );
}

#[test]
fn check_names_file_line_and_field_for_every_error() {
    let ws = Workspace::new(None);
    ws.write(
        "cadences.yaml",
        "cadences:\n  - id: thanks\n    channel: email\n    template: thanks\n    trigger: { after: purchase, delay: 3x }\n  \
         - id: gone\n    channel: email\n    template: missing\n    trigger: { after: purchase, delay: 1d }\n",
    );
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("error: cadences.yaml:5:40: cadences[0].trigger.delay: `3x`"),
        "{}",
        run.stderr
    );

    ws.write("cadences.yaml", "cadences:\n  - id: thanks\n    channel: email\n    template: thanks\n    trigger: { after: purchase, delay: 2d }\n    colour: red\n");
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("error: cadences.yaml:6:5: cadences[0].colour: unknown key `colour`"),
        "{}",
        run.stderr
    );

    ws.write("cadences.yaml", "cadences:\n  - id: thanks\n    channel: email\n    template: thanks\n    trigger: { after: purchase, delay: 2d\n");
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("error: cadences.yaml:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("YAML syntax"), "{}", run.stderr);

    ws.write("cadences.yaml", crate::helpers::CADENCES);
    ws.write("templates/nudge.txt.hbs", "Hi {{contact.frist_name}}\n");
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("templates/nudge.txt.hbs:1:4:")
            && run.stderr.contains("contact.frist_name"),
        "{}",
        run.stderr
    );

    // A commercial email must show the postal address and the unsubscribe link.
    ws.write("templates/nudge.txt.hbs", "Hi {{contact.first_name}}\n");
    let run = ws.tickler(&["check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("templates/nudge.txt.hbs:1:1:")
            && run.stderr.contains("postal address")
            && run.stderr.contains("unsubscribe link"),
        "{}",
        run.stderr
    );

    ws.write("templates/nudge.txt.hbs", "Hi {{contact.first_name}}, {{default contact.fields.anything \"x\"}} {{contact.fields.color}}\n{{> footer}}");
    let run = ws.tickler(&["check"]).ok();
    assert_eq!(run.stdout.trim(), "ok: 2 cadences, 2 templates");
}

#[test]
fn check_passes_on_the_shipped_configuration() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = tickler_in(root, &["--config", "config/tickler.yaml"], &["check"], None).ok();
    assert_eq!(run.stdout.trim(), "ok: 8 cadences, 8 templates");
}

#[test]
fn the_shipped_example_writes_eml_files_and_postcards() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().expect("temp dir");
    for dir in ["config", "templates", "examples"] {
        crate::helpers::copy_dir(&root.join(dir), &copy.path().join(dir));
    }
    let run = tickler_in(
        copy.path(),
        &["--config", "config/tickler.yaml"],
        &["tick", "--now", "2026-11-23T10:00:00-05:00"],
        None,
    )
    .ok();
    let outbox: Vec<_> = std::fs::read_dir(copy.path().join("var/outbox"))
        .expect("outbox")
        .collect();
    assert!(outbox.len() >= 10, "{} files; {}", outbox.len(), run.stdout);
    // The maintenance reminders are postcards, in the day's batch.
    let day = copy.path().join("var/postcards/2026-11-23");
    let manifest = std::fs::read_to_string(day.join("manifest.csv")).expect("manifest");
    let cards = manifest.lines().count() - 1;
    assert!(cards >= 1, "{manifest}");
    assert!(day.join("batch-2026-11-23.pdf").exists());
    assert!(
        run.stdout
            .starts_with(&format!("sent={} ", outbox.len() + cards)),
        "{} emails, {cards} cards: {}",
        outbox.len(),
        run.stdout
    );
}

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

#[test]
fn a_missing_custom_field_fails_that_send_naming_the_field() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.write(
        "templates/thanks.txt.hbs",
        "Your size: {{contact.fields.shoe_size}}\n",
    );
    ws.import_all();
    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1);
    // Ingrid has a shoe size; Tomás does not.
    assert_eq!(
        run.stdout.trim(),
        "sent=2 failed=1 retrying=0 skipped=2 deferred=0"
    );
    let tomas = ws
        .sends()
        .into_iter()
        .find(|s| s["contact"] == "K-2")
        .expect("row");
    assert_eq!(tomas["status"], "failed");
    assert!(
        tomas["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("contact.fields.shoe_size"),
        "{tomas}"
    );
}

#[test]
fn unsubscribe_skips_the_next_send() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.import_all();
    ws.tickler(&["unsubscribe", "K-1", "--channel", "email"])
        .ok();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let ingrid = ws
        .sends()
        .into_iter()
        .find(|s| s["contact"] == "K-1")
        .expect("row");
    assert_eq!(ingrid["reason"], "opted_out");
    let run = ws.tickler(&["unsubscribe", "NOBODY"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("error: no contact `NOBODY`"));
}

#[test]
fn bad_usage_exits_2_without_a_backtrace() {
    let ws = Workspace::new(None);
    let run = ws.tickler(&["tick", "--now", "next tuesday"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: --now:"), "{}", run.stderr);
    assert_eq!(ws.tickler(&["frobnicate"]).code, 2);
    assert_eq!(ws.tickler(&["sends", "--status", "lost"]).code, 2);
}

#[test]
fn sends_filters_and_formats() {
    let ws = Workspace::new(None);
    ws.import_all();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let csv = ws
        .tickler(&["sends", "--format", "csv", "--status", "skipped"])
        .ok();
    let mut lines = csv.stdout.lines();
    let header = lines.next().unwrap_or_default();
    for column in [
        "contact",
        "cadence",
        "occurrence",
        "channel",
        "status",
        "reason",
        "due_at",
        "attempts",
        "message_id",
        "updated_at",
    ] {
        assert!(header.split(',').any(|c| c == column), "{header}");
    }
    assert_eq!(lines.count(), 2);
    let one = ws
        .tickler(&["sends", "--contact", "K-1", "--format", "json"])
        .ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&one.stdout).expect("JSON");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["cadence"], "thanks");
    let table = ws.tickler(&["sends", "--limit", "1"]).ok();
    assert_eq!(table.stdout.lines().count(), 2);
    // The file transport wrote one .eml per sent message.
    let files = std::fs::read_dir(ws.path("state/outbox"))
        .expect("outbox")
        .count();
    assert_eq!(files, 3);
}
