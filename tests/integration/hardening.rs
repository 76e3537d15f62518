//! What a careless owner or a hostile customer record must not do to tickler: flood a
//! customer after downtime, leak names into the logs, write through a planted symlink,
//! leave state readable by everyone, run formulas in a spreadsheet, or crash on a
//! closed pipe.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::helpers::Workspace;

const NOW: &str = "2026-03-04T10:00:00-05:00";

/// Rows of the send log by status.
fn count(rows: &[serde_json::Value], status: &str) -> usize {
    rows.iter().filter(|r| r["status"] == status).count()
}

#[test]
fn a_daily_broadcast_after_downtime_sends_one_message_not_one_per_missed_day() {
    let ws = Workspace::new(None);
    ws.write(
        "cadences.yaml",
        "cadences:\n  - id: daily\n    channel: email\n    template: nudge\n    \
         trigger: { cron: \"0 0 9 * * *\" }\n    max_lateness: 30d\n    transactional: true\n",
    );
    ws.write("templates/nudge.subject.hbs", "News");
    ws.write("templates/nudge.txt.hbs", "Hi {{contact.first_name}}");
    ws.import_all();
    // First seen with a month of lateness allowed: one message each, not thirty.
    let run = ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0",
        "{}",
        run.stderr
    );
    // Five days down: the missed fire times collapse into the latest.
    let run = ws
        .tickler(&["tick", "--now", "2026-03-09T10:00:00-05:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=2 deferred=0"
    );
    let rows = ws.sends();
    assert_eq!(rows.len(), 10, "{rows:#?}");
}

#[test]
fn a_short_repeat_missed_for_days_sends_the_latest_and_logs_the_rest_as_superseded() {
    let ws = Workspace::new(None);
    ws.write(
        "cadences.yaml",
        "cadences:\n  - id: daily-care\n    channel: email\n    template: nudge\n    \
         trigger: { every: 1d, since: purchase }\n    max_lateness: 30d\n    transactional: true\n",
    );
    ws.write("templates/nudge.subject.hbs", "Care tip");
    ws.write("templates/nudge.txt.hbs", "Hi {{contact.first_name}}");
    ws.write(
        "events.csv",
        "id,contact_id,kind,at\nP-1,K-1,purchase,2026-02-20\n",
    );
    ws.import_all();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let rows = ws.sends();
    assert_eq!(count(&rows, "sent"), 1, "{rows:#?}");
    let superseded = rows
        .iter()
        .filter(|r| r["status"] == "skipped" && r["reason"] == "superseded")
        .count();
    assert_eq!(superseded, rows.len() - 1, "{rows:#?}");
    assert!(superseded >= 10, "{rows:#?}");
}

#[test]
fn logs_carry_ids_never_names_or_addresses_even_at_the_most_verbose_level() {
    let ws = Workspace::new(None);
    ws.import_all();
    let run = ws.tickler(&["-vv", "tick", "--now", NOW]).ok();
    assert!(run.stdout.contains("sent="), "{}", run.stdout);
    assert!(
        run.stderr.contains("K-1"),
        "the send lines name contacts by id"
    );
    for private in [
        "Ingrid",
        "Berg",
        "ingrid@example.org",
        "Fjord Rd",
        "slate tiles",
    ] {
        assert!(
            !run.stderr.contains(private),
            "`{private}` in the log:\n{}",
            run.stderr
        );
    }
}

#[test]
fn state_is_private_whatever_the_umask_and_planted_symlinks_are_not_followed() {
    let ws = Workspace::new(None);
    ws.import_all();
    // The outbox file K-1's thank-you will be written to, planted as a symlink to a
    // file of someone else's: replaced, not written through.
    ws.write("victim", "precious");
    let key = tickler::domain::SendKey {
        contact: "K-1".into(),
        cadence: "thanks".into(),
        occurrence: "P-1".into(),
    };
    let target = ws.path(&format!("state/outbox/{}.eml", key.digest()));
    std::fs::create_dir_all(ws.path("state/outbox")).expect("outbox");
    std::os::unix::fs::symlink(ws.path("victim"), &target).expect("symlink");
    ws.tickler(&["tick", "--now", NOW]).ok();
    assert_eq!(
        std::fs::read_to_string(ws.path("victim")).expect("victim"),
        "precious"
    );
    let meta = std::fs::symlink_metadata(&target).expect("eml");
    assert!(!meta.file_type().is_symlink());
    assert!(
        std::fs::read_to_string(&target)
            .expect("eml")
            .contains("Ingrid")
    );
    // Files 0600 and directories 0700, though the tests run with umask 022.
    let fresh = Workspace::new(None);
    fresh.import_all();
    fresh.tickler(&["tick", "--now", NOW]).ok();
    let eml = std::fs::read_dir(fresh.path("state/outbox"))
        .expect("outbox")
        .flatten()
        .next()
        .expect("an .eml file")
        .path();
    for path in [
        fresh.path("state"),
        fresh.path("state/outbox"),
        fresh.path("state/tickler.db"),
        eml,
        target.clone(),
    ] {
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
}

#[test]
fn csv_output_cannot_run_formulas_in_a_spreadsheet() {
    let ws = Workspace::new(None);
    ws.write(
        "contacts.csv",
        "id,first_name,email\n=HYPERLINK(\"http://evil.example\"),Eve,eve@example.com\n+cmd,Max,max@example.com\n",
    );
    ws.write(
        "events.csv",
        "id,contact_id,kind,at\n@SUM(A1),=HYPERLINK(\"http://evil.example\"),purchase,2026-03-02\nP-2,+cmd,purchase,2026-03-02\n",
    );
    ws.import_all();
    ws.tickler(&["tick", "--now", NOW]).ok();
    let csv = ws.tickler(&["sends", "--format", "csv"]).ok().stdout;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let contacts: Vec<String> = reader
        .records()
        .map(|r| r.expect("row")[0].to_owned())
        .collect();
    assert_eq!(contacts.len(), 2, "{csv}");
    for contact in contacts {
        assert!(contact.starts_with('\''), "{contact:?} in\n{csv}");
    }
    // JSON keeps the ids as they are.
    let rows = ws.sends();
    assert!(rows.iter().any(|r| r["contact"] == "+cmd"), "{rows:?}");
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_command_quietly() {
    let ws = Workspace::new(None);
    ws.always_open();
    ws.due_purchases(3000);
    // `plan` lists the 3,000 thank-yous due; after the pass, `sends` lists them.
    for args in [["plan", "--days", "7"], ["sends", "--format", "table"]] {
        if args[0] == "sends" {
            ws.tickler(&["tick"]).ok();
        }
        for _ in 0..5 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_tickler"))
                .args(["--config", "tickler.yaml"])
                .args(args)
                .current_dir(ws.dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("tickler starts");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            assert!(lines.next().is_some());
            drop(lines);
            let out = child.wait_with_output().expect("exit");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
            assert!(stderr.trim().is_empty(), "{args:?}: {stderr}");
        }
    }
}
