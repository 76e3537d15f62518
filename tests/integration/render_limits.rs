//! A template that passes `check` but would render a message larger than 1 MB for one
//! contact: that send fails with the reason, the others go out, and tickler lives on.

use crate::helpers::Workspace;
use crate::smtp::SmtpServer;

const NOW: &str = "2026-03-04T10:00:00-05:00";

#[test]
fn a_message_over_1_mb_fails_its_send_with_the_reason() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    // Every pair of tags of every tag gets a paragraph: nothing for the sample contact
    // `check` renders, millions of bytes for a contact with twenty tags.
    let paragraph = "Thank you for choosing us. ".repeat(16);
    ws.write(
        "templates/thanks.txt.hbs",
        &format!(
            "Hello {{{{contact.first_name}}}}\n{{{{#each contact.tags}}}}{{{{#each ../contact.tags}}}}\
             {{{{#each ../../contact.tags}}}}{paragraph}{{{{/each}}}}{{{{/each}}}}{{{{/each}}}}\n{{{{> footer}}}}"
        ),
    );
    let tags: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let contacts =
        crate::helpers::CONTACTS.replace(",customer,,42", &format!(",{},,42", tags.join(";")));
    ws.write("contacts.csv", &contacts);
    ws.tickler(&["check"]).ok();
    ws.import_all();

    let run = ws.tickler(&["tick", "--now", NOW]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "sent=2 failed=1 retrying=0 skipped=2 deferred=0"
    );
    let sends = ws.sends();
    let failed: Vec<&serde_json::Value> =
        sends.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{sends:?}");
    assert_eq!(failed[0]["contact"], "K-1", "{}", failed[0]);
    let reason = failed[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the message would be larger than 1 MB"),
        "{reason}"
    );
    assert_eq!(server.messages().len(), 2);
}
