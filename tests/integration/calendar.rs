//! Calendar cases written out by hand: time zones, DST changes, send windows across
//! midnight, Feb 29, the frequency cap and cron broadcasts.

use serde_json::Value;

use crate::helpers::Workspace;

/// A workspace with file transport and the given cadences, contacts and events.
pub(crate) fn workspace(schedule: &str, cadences: &str, contacts: &str, events: &str) -> Workspace {
    let ws = Workspace::new(None);
    let config = std::fs::read_to_string(ws.path("tickler.yaml")).expect("config");
    let config = config.replace(
        "schedule:\n  send_window: \"09:00-18:00\"\n",
        &format!("schedule:\n{schedule}"),
    );
    ws.write("tickler.yaml", &config);
    ws.write("cadences.yaml", cadences);
    ws.write("templates/t.subject.hbs", "Hello {{contact.first_name}}");
    ws.write("templates/t.txt.hbs", "Hello.\n{{> footer}}");
    ws.write("contacts.csv", contacts);
    ws.write("events.csv", events);
    ws.import_all();
    ws
}

pub(crate) fn cadence(id: &str, trigger: &str, extra: &str) -> String {
    format!("  - id: {id}\n    channel: email\n    template: t\n    trigger: {trigger}\n{extra}")
}

fn plan(ws: &Workspace, now: &str, days: u32) -> Vec<Value> {
    let run = ws
        .tickler(&[
            "plan",
            "--now",
            now,
            "--days",
            &days.to_string(),
            "--format",
            "json",
        ])
        .ok();
    serde_json::from_str(&run.stdout).expect("plan JSON")
}

fn due_times(items: &[Value], contact: &str, cadence: &str) -> Vec<String> {
    items
        .iter()
        .filter(|i| i["contact"] == contact && i["cadence"] == cadence)
        .map(|i| i["due_at"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub(crate) const WINDOW_9_TO_6: &str = "  send_window: \"09:00-18:00\"\n";

#[test]
fn nine_am_is_nine_am_on_both_sides_of_dst_changes() {
    let cadences = format!(
        "cadences:\n{}",
        cadence("thanks", "{ after: purchase, delay: 2d }", "")
    );
    let contacts = "id,first_name,email,timezone\nNY,Ann,ann@example.com,America/New_York\nLON,Ben,ben@example.com,Europe/London\nLH,Cat,cat@example.com,Australia/Lord_Howe\n";
    let events = "id,contact_id,kind,at\n\
        a1,NY,purchase,2026-03-06\na2,NY,purchase,2026-03-07\n\
        a3,NY,purchase,2026-10-30\na4,NY,purchase,2026-10-31\n\
        b1,LON,purchase,2026-03-27\nb2,LON,purchase,2026-03-28\n\
        c1,LH,purchase,2026-10-02\nc2,LH,purchase,2026-10-03\nc3,LH,purchase,2026-04-03\nc4,LH,purchase,2026-04-04\n";
    let ws = workspace(WINDOW_9_TO_6, &cadences, contacts, events);
    let items = plan(&ws, "2026-03-01T00:00:00Z", 250);
    assert_eq!(
        due_times(&items, "NY", "thanks"),
        [
            "2026-03-08T09:00:00-04:00",
            "2026-03-09T09:00:00-04:00",
            "2026-11-01T09:00:00-05:00",
            "2026-11-02T09:00:00-05:00"
        ]
    );
    assert_eq!(
        due_times(&items, "LON", "thanks"),
        ["2026-03-29T09:00:00+01:00", "2026-03-30T09:00:00+01:00"]
    );
    // Lord Howe Island shifts by 30 minutes.
    assert_eq!(
        due_times(&items, "LH", "thanks"),
        [
            "2026-04-05T09:00:00+10:30",
            "2026-04-06T09:00:00+10:30",
            "2026-10-04T09:00:00+11:00",
            "2026-10-05T09:00:00+11:00"
        ]
    );
}

#[test]
fn a_window_opening_at_a_time_skipped_by_dst_opens_after_the_gap() {
    // 02:00-02:30 does not exist in New York on 8 March 2026; nothing is lost.
    let cadences = format!(
        "cadences:\n{}",
        cadence(
            "early",
            "{ after: purchase, delay: 0d }",
            "    send_window: \"02:15-04:00\"\n"
        )
    );
    let contacts = "id,first_name,email\nNY,Ann,ann@example.com\n";
    let events = "id,contact_id,kind,at\ne1,NY,purchase,2026-03-08T00:30:00-05:00\n";
    let ws = workspace(WINDOW_9_TO_6, &cadences, contacts, events);
    let items = plan(&ws, "2026-03-08T00:00:00-05:00", 2);
    assert_eq!(
        due_times(&items, "NY", "early"),
        ["2026-03-08T03:15:00-04:00"]
    );
    let run = ws
        .tickler(&["tick", "--now", "2026-03-08T03:20:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
}

#[test]
fn a_window_across_midnight_sends_at_night_only() {
    let cadences = format!(
        "cadences:\n{}",
        cadence(
            "night",
            "{ after: purchase, delay: 0d }",
            "    send_window: \"22:00-07:00\"\n"
        )
    );
    let contacts = "id,first_name,email\nA,Ann,ann@example.com\nB,Bob,bob@example.com\n";
    let events = "id,contact_id,kind,at\ne1,A,purchase,2026-05-05T12:00:00-04:00\ne2,B,purchase,2026-05-06T03:00:00-04:00\n";
    let ws = workspace(WINDOW_9_TO_6, &cadences, contacts, events);
    let items = plan(&ws, "2026-05-05T00:00:00-04:00", 3);
    assert_eq!(
        due_times(&items, "A", "night"),
        ["2026-05-05T22:00:00-04:00"]
    );
    assert_eq!(
        due_times(&items, "B", "night"),
        ["2026-05-06T03:00:00-04:00"]
    );
    // At noon nothing goes out; at 23:00 A's does; at 03:00 B's.
    let noon = ws
        .tickler(&["tick", "--now", "2026-05-05T12:30:00-04:00"])
        .ok();
    assert_eq!(
        noon.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let late = ws
        .tickler(&["tick", "--now", "2026-05-05T23:00:00-04:00"])
        .ok();
    assert_eq!(
        late.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let night = ws
        .tickler(&["tick", "--now", "2026-05-06T03:30:00-04:00"])
        .ok();
    assert_eq!(
        night.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
}

#[test]
fn the_same_birthday_in_kiritimati_and_pago_pago_is_a_day_apart() {
    let cadences = format!("cadences:\n{}", cadence("bday", "{ yearly: birthday }", ""));
    let contacts = "id,first_name,email,birthday,timezone\nKI,Kai,kai@example.com,07-04,Pacific/Kiritimati\nPP,Pua,pua@example.com,1990-07-04,Pacific/Pago_Pago\n";
    let ws = workspace(
        WINDOW_9_TO_6,
        &cadences,
        contacts,
        "id,contact_id,kind,at\n",
    );
    let items = plan(&ws, "2026-07-01T00:00:00Z", 7);
    assert_eq!(
        due_times(&items, "KI", "bday"),
        ["2026-07-04T09:00:00+14:00"]
    );
    assert_eq!(
        due_times(&items, "PP", "bday"),
        ["2026-07-04T09:00:00-11:00"]
    );
    // 2026-07-03T19:00Z and 2026-07-04T20:00Z: a tick between them greets only Kai.
    let run = ws.tickler(&["tick", "--now", "2026-07-04T00:00:00Z"]).ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    assert_eq!(ws.sends()[0]["contact"], "KI");
}

#[test]
fn feb29_birthdays_follow_the_policy_in_common_years_and_feb29_in_leap_years() {
    let cadences = format!(
        "cadences:\n{}{}{}",
        cadence("feb28", "{ yearly: birthday, feb29: feb28 }", ""),
        cadence("mar1", "{ yearly: birthday, feb29: mar1 }", ""),
        cadence("skip", "{ yearly: birthday, feb29: skip }", ""),
    );
    let contacts = "id,first_name,email,birthday\nL,Leap,leap@example.com,2000-02-29\nN,Norm,norm@example.com,02-28\n";
    let ws = workspace(
        WINDOW_9_TO_6,
        &cadences,
        contacts,
        "id,contact_id,kind,at\n",
    );
    let items = plan(&ws, "2027-01-01T00:00:00-05:00", 3 * 365);
    assert_eq!(
        due_times(&items, "L", "feb28"),
        [
            "2027-02-28T09:00:00-05:00",
            "2028-02-29T09:00:00-05:00",
            "2029-02-28T09:00:00-05:00"
        ]
    );
    assert_eq!(
        due_times(&items, "L", "mar1"),
        [
            "2027-03-01T09:00:00-05:00",
            "2028-02-29T09:00:00-05:00",
            "2029-03-01T09:00:00-05:00"
        ]
    );
    assert_eq!(
        due_times(&items, "L", "skip"),
        ["2028-02-29T09:00:00-05:00"]
    );
    // An ordinary Feb 28 birthday is Feb 28 every year, leap or not.
    assert_eq!(
        due_times(&items, "N", "mar1"),
        [
            "2027-02-28T09:00:00-05:00",
            "2028-02-28T09:00:00-05:00",
            "2029-02-28T09:00:00-05:00"
        ]
    );
    // The send log agrees: one greeting in 2028, on the 29th, keyed by the year.
    ws.tickler(&["tick", "--now", "2028-02-28T10:00:00-05:00"])
        .ok();
    let run = ws
        .tickler(&["tick", "--now", "2028-02-29T10:00:00-05:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=3 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let rows = ws.sends();
    assert!(
        rows.iter()
            .filter(|r| r["contact"] == "L")
            .all(|r| r["occurrence"] == "2028")
    );
}

#[test]
fn the_frequency_cap_defers_and_never_drops() {
    let cadences = format!(
        "cadences:\n{}{}{}",
        cadence("thanks", "{ after: purchase, delay: 1d }", ""),
        cadence("survey", "{ after: purchase, delay: 2d }", ""),
        cadence(
            "receipt",
            "{ after: purchase, delay: 0d }",
            "    transactional: true\n"
        ),
    );
    let contacts = "id,first_name,email\nA,Ann,ann@example.com\n";
    let events = "id,contact_id,kind,at\np1,A,purchase,2026-05-04T10:00:00-04:00\n";
    let schedule = "  send_window: \"09:00-18:00\"\n  max_lateness: 2d\n  frequency_cap: { max: 1, per: 7d }\n";
    let ws = workspace(schedule, &cadences, contacts, events);
    let items = plan(&ws, "2026-05-04T09:00:00-04:00", 30);
    let survey = items
        .iter()
        .find(|i| i["cadence"] == "survey")
        .expect("survey planned");
    assert_eq!(survey["due_at"], "2026-05-12T09:00:00-04:00");
    assert_eq!(survey["deferred_from"], "2026-05-06T09:00:00-04:00");
    assert_eq!(
        due_times(&items, "A", "receipt"),
        ["2026-05-04T10:00:00-04:00"]
    );

    for (day, expected) in [
        (
            "2026-05-04T11:00:00-04:00",
            "sent=1 failed=0 retrying=0 skipped=0 deferred=0",
        ),
        (
            "2026-05-05T11:00:00-04:00",
            "sent=1 failed=0 retrying=0 skipped=0 deferred=0",
        ),
        (
            "2026-05-06T11:00:00-04:00",
            "sent=0 failed=0 retrying=0 skipped=0 deferred=1",
        ),
        // Deferred beyond max_lateness, and still not stale: the cap never drops.
        (
            "2026-05-11T11:00:00-04:00",
            "sent=0 failed=0 retrying=0 skipped=0 deferred=0",
        ),
        (
            "2026-05-12T11:00:00-04:00",
            "sent=1 failed=0 retrying=0 skipped=0 deferred=0",
        ),
    ] {
        if day.starts_with("2026-05-11") {
            // Still owed: a week after the thank-you actually went out (at the 11:00 tick).
            let waiting = plan(&ws, day, 3);
            assert_eq!(
                due_times(&waiting, "A", "survey"),
                ["2026-05-12T11:00:00-04:00"]
            );
        }
        let run = ws.tickler(&["tick", "--now", day]).ok();
        assert_eq!(run.stdout.trim(), expected, "at {day}");
    }
    let rows = ws.sends();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["status"] == "sent"));
    let survey = rows
        .iter()
        .find(|r| r["cadence"] == "survey")
        .expect("survey");
    assert_eq!(survey["updated_at"], "2026-05-12T15:00:00Z");
}

#[test]
fn a_cron_broadcast_reaches_every_matching_contact_once() {
    let cadences = format!(
        "cadences:\n{}",
        cadence(
            "appreciation",
            "{ cron: \"0 0 9 1 6 *\" }",
            "    where: { tags: [customer] }\n"
        )
    );
    let contacts = "id,first_name,email,tags,timezone\nA,Ann,ann@example.com,customer,\nB,Bob,bob@example.com,customer,America/Los_Angeles\nC,Cy,cy@example.com,prospect,\n";
    let ws = workspace(
        WINDOW_9_TO_6,
        &cadences,
        contacts,
        "id,contact_id,kind,at\n",
    );
    ws.tickler(&["tick", "--now", "2026-05-30T10:00:00-04:00"])
        .ok();
    let items = plan(&ws, "2026-05-30T10:00:00-04:00", 5);
    assert_eq!(
        due_times(&items, "A", "appreciation"),
        ["2026-06-01T09:00:00-04:00"]
    );
    // 09:00 in New York is 06:00 in Los Angeles: Bob's waits for his window.
    assert_eq!(
        due_times(&items, "B", "appreciation"),
        ["2026-06-01T09:00:00-07:00"]
    );
    assert!(due_times(&items, "C", "appreciation").is_empty());
    let run = ws
        .tickler(&["tick", "--now", "2026-06-01T09:30:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let run = ws
        .tickler(&["tick", "--now", "2026-06-01T12:30:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=1 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let run = ws
        .tickler(&["tick", "--now", "2026-06-02T12:30:00-04:00"])
        .ok();
    assert_eq!(
        run.stdout.trim(),
        "sent=0 failed=0 retrying=0 skipped=0 deferred=0"
    );
    let rows = ws.sends();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["occurrence"] == "2026-06-01T13:00:00Z")
    );
}

#[test]
fn days_hold_sends_until_an_allowed_weekday() {
    let cadences = format!(
        "cadences:\n{}",
        cadence("thanks", "{ after: purchase, delay: 1d }", "")
    );
    let contacts = "id,first_name,email\nA,Ann,ann@example.com\n";
    // Friday's purchase is due Saturday; only weekdays are allowed.
    let events = "id,contact_id,kind,at\np,A,purchase,2026-05-08\n";
    let ws = workspace(
        "  send_window: \"09:00-18:00\"\n  days: [mon, tue, wed, thu, fri]\n",
        &cadences,
        contacts,
        events,
    );
    let items = plan(&ws, "2026-05-08T00:00:00-04:00", 7);
    assert_eq!(
        due_times(&items, "A", "thanks"),
        ["2026-05-11T09:00:00-04:00"]
    );
}

#[test]
fn plan_tries_a_cadence_file_against_the_real_contacts_before_it_goes_live() {
    let cadences = format!(
        "cadences:\n{}",
        cadence("thanks", "{ after: purchase, delay: 1d }", "")
    );
    let contacts =
        "id,first_name,email,birthday\nA,Ann,ann@example.com,03-15\nB,Bob,bob@example.com,\n";
    let events = "id,contact_id,kind,at\np,A,purchase,2026-03-02\n";
    let ws = workspace(WINDOW_9_TO_6, &cadences, contacts, events);
    ws.write(
        "trial.yaml",
        &format!(
            "cadences:\n{}",
            cadence("bday", "{ yearly: birthday, lead: 3d }", "")
        ),
    );
    let run = ws
        .tickler(&[
            "plan",
            "--now",
            "2026-03-01",
            "--days",
            "365",
            "--cadences",
            "trial.yaml",
            "--format",
            "json",
        ])
        .ok();
    let items: Vec<Value> = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        due_times(&items, "A", "bday"),
        ["2026-03-12T09:00:00-04:00"]
    );
    assert!(due_times(&items, "A", "thanks").is_empty());
    let table = ws
        .tickler(&[
            "plan",
            "--now",
            "2026-03-01",
            "--days",
            "365",
            "--cadences",
            "trial.yaml",
        ])
        .ok();
    assert!(
        table
            .stdout
            .contains("1 sends in the next 365 days (bday: 1)"),
        "{}",
        table.stdout
    );
    // Nothing was recorded, and the live cadences are unchanged.
    assert!(ws.sends().is_empty());
    let live = plan(&ws, "2026-03-01", 7);
    assert_eq!(
        due_times(&live, "A", "thanks"),
        ["2026-03-03T09:00:00-05:00"]
    );
}
