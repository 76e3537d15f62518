//! The core slice as a user meets it: a tick's sends, dry runs, plans, the shipped
//! example, a send that cannot be rendered, unsubscribes and the send log's listing.

use crate::helpers::{Workspace, tickler_in};
use crate::smtp::SmtpServer;

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
