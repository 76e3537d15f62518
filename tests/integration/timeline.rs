//! `tickler contact`: one customer's timeline in the terminal, as the console shows it.

use crate::helpers::Workspace;

const NOW: &str = "2026-03-04T10:00:00-05:00";

#[test]
fn a_customer_reads_with_their_sends_reasons_and_next_follow_up() {
    let ws = Workspace::new(None);
    ws.import_all();

    // Before any pass: Priya's nudge is planned, in her own zone.
    let before = ws.tickler(&["contact", "K-3", "--now", "2026-03-02"]).ok();
    let out = &before.stdout;
    assert!(out.starts_with("Priya Nair (K-3)\n"), "{out}");
    assert!(out.contains("zone      America/Chicago"), "{out}");
    let next = out.split("\nNext\n").nth(1).expect("a Next section");
    let nudge = next
        .lines()
        .find(|l| l.starts_with("nudge"))
        .expect("nudge line");
    assert!(nudge.contains("2026-03-04 09:00"), "{nudge}");
    assert!(nudge.ends_with("I-1 goes out"), "{nudge}");
    let thanks = next
        .lines()
        .find(|l| l.starts_with("thanks"))
        .expect("thanks line");
    assert!(thanks.contains("nothing due"), "{thanks}");

    ws.tickler(&["tick", "--now", NOW]).ok();

    // Mei opted out of email: her thank-you is in the log as skipped, in words.
    let mei = ws.tickler(&["contact", "K-5", "--now", NOW]).ok().stdout;
    assert!(mei.contains("mei@example.com  opted out"), "{mei}");
    let log = mei.split("\nSend log, newest first\n").nth(1).unwrap();
    let row = log.lines().nth(1).expect("one send-log row");
    assert!(row.contains("thanks"), "{row}");
    assert!(row.contains("skipped"), "{row}");
    assert!(
        row.ends_with("the customer opted out of this channel (opted_out)"),
        "{row}"
    );
    assert!(mei.contains("P-4"), "her purchase is listed: {mei}");

    // Ingrid's thank-you went out; both of her purchases are listed, newest first.
    let ingrid = ws.tickler(&["contact", "K-1", "--now", NOW]).ok().stdout;
    let events = ingrid.split("\nEvents").nth(1).unwrap();
    let p1 = events.find("P-1").expect("P-1");
    let p0 = events.find("P-0").expect("P-0");
    assert!(p1 < p0, "{ingrid}");
    assert!(
        ingrid.contains("shoe_size"),
        "her own columns show: {ingrid}"
    );
    let sent = ingrid
        .lines()
        .find(|l| l.contains(" sent "))
        .expect("a sent row");
    assert!(sent.contains("thanks") && sent.contains("P-1"), "{sent}");

    // The same as JSON, for scripts.
    let json = ws
        .tickler(&["contact", "K-5", "--now", NOW, "--format", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v["id"], "K-5");
    assert_eq!(v["opted_out"]["email"], true);
    assert_eq!(v["sends"][0]["status"], "skipped");
    assert_eq!(v["sends"][0]["reason"], "opted_out");
    assert!(v["next"].as_array().is_some_and(|n| n.len() == 2));
}

#[test]
fn an_unknown_customer_or_format_is_an_error() {
    let ws = Workspace::new(None);
    ws.import_all();
    let missing = ws.tickler(&["contact", "K-404"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("error: no contact has the id `K-404`"),
        "{}",
        missing.stderr
    );
    assert!(missing.stdout.is_empty());
    let csv = ws.tickler(&["contact", "K-1", "--format", "csv"]);
    assert_eq!(csv.code, 2, "{}", csv.stderr);
}

#[test]
fn a_large_import_leaves_the_customer_search_indexed() {
    let ws = Workspace::new(None);
    let mut csv = String::from("id,first_name,last_name,email\n");
    for i in 0..60_000 {
        csv.push_str(&format!(
            "B-{i},Name{i},Family{},b{i}@example.com\n",
            i % 97
        ));
    }
    ws.write("many.csv", &csv);
    ws.tickler(&["import", "contacts", "many.csv"]).ok();
    let db = rusqlite::Connection::open(ws.path("state/tickler.db")).expect("the database");
    let indexes: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'contacts_by_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "contacts_by_email",
            "contacts_by_first_name",
            "contacts_by_last_name"
        ]
    );
    // Built again over every row, the first 50,000 included.
    let found: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM contacts INDEXED BY contacts_by_last_name \
             WHERE lower(last_name) >= 'family5' AND lower(last_name) < 'family6'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let expected = (0..60_000)
        .filter(|i| (i % 97).to_string().starts_with('5'))
        .count();
    assert_eq!(found as usize, expected);
    let shown = ws.tickler(&["contact", "B-12345"]).ok();
    assert!(
        shown.stdout.starts_with("Name12345 Family26 (B-12345)"),
        "{}",
        shown.stdout
    );
}
