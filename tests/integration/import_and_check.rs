//! Importing and checking as a user meets them: each bad row reported by line and field
//! while the good ones are kept, an unchanged file changing nothing, and `check` naming
//! the file, line and field of every error.

use crate::helpers::{Workspace, tickler_in};

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
