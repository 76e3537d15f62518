//! When tickler first sees a contact or an event, written out by hand: catch-up after an
//! outage, and history that is not replayed, whether it came with its customer or later.

use crate::calendar::{WINDOW_9_TO_6, cadence, workspace};

#[test]
fn after_an_outage_recent_sends_catch_up_and_old_ones_are_stale() {
    let cadences = format!(
        "cadences:\n{}",
        cadence("thanks", "{ after: purchase, delay: 1d }", "")
    );
    let contacts = "id,first_name,email\nA,Ann,ann@example.com\nB,Bob,bob@example.com\n";
    let events = "id,contact_id,kind,at\nold,A,purchase,2026-05-01\nnew,B,purchase,2026-05-09\n";
    let ws = workspace(
        "  send_window: \"09:00-18:00\"\n  max_lateness: 3d\n",
        &cadences,
        contacts,
        events,
    );
    // First seen before either fell due.
    ws.tickler(&["tick", "--now", "2026-04-30T12:00:00-04:00"])
        .ok();
    // Down from May 1 to May 11: A's thank-you (May 2) is 9 days late, B's (May 10) 1 day.
    let run = ws
        .tickler(&["tick", "--now", "2026-05-11T10:00:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=1 deferred=0"
    );
    let rows = ws.sends();
    let a = rows.iter().find(|r| r["contact"] == "A").expect("A");
    assert_eq!(
        (a["status"].as_str(), a["reason"].as_str()),
        (Some("skipped"), Some("stale"))
    );
    let b = rows.iter().find(|r| r["contact"] == "B").expect("B");
    assert_eq!(b["status"], "sent");
}

#[test]
fn history_is_not_replayed_on_first_import() {
    let cadences = format!(
        "cadences:\n{}",
        cadence("thanks", "{ after: purchase, delay: 1d }", "")
    );
    let contacts = "id,first_name,email\nA,Ann,ann@example.com\n";
    let events =
        "id,contact_id,kind,at\ny2024,A,purchase,2024-05-01\ny2026,A,purchase,2026-05-09\n";
    let ws = workspace(WINDOW_9_TO_6, &cadences, contacts, events);
    let run = ws
        .tickler(&["tick", "--now", "2026-05-11T10:00:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(ws.sends().len(), 1);
}

#[test]
fn a_purchase_imported_after_the_customer_was_seen_is_first_seen_then() {
    let cadences = format!(
        "cadences:\n{}",
        cadence("thanks", "{ after: purchase, delay: 1d }", "")
    );
    let contacts = "id,first_name,email\nA,Ann,ann@example.com\n";
    let ws = workspace(
        WINDOW_9_TO_6,
        &cadences,
        contacts,
        "id,contact_id,kind,at\n",
    );
    ws.tickler(&["tick", "--now", "2026-04-01T10:00:00-04:00"])
        .ok();
    // Three months on, a file brings a purchase from six weeks back and one from two
    // days back: only the recent one is owed, as if both had come with Ann.
    ws.write(
        "events.csv",
        "id,contact_id,kind,at\nold,A,purchase,2026-05-20\nnew,A,purchase,2026-06-29\n",
    );
    ws.tickler(&["import", "events", "events.csv"]).ok();
    let run = ws
        .tickler(&["tick", "--now", "2026-07-01T10:00:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let rows = ws.sends();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["occurrence"], "new");
}
