//! The customer's own preferences page, reached from the link in every email: a
//! follow-up turned off is skipped from then on, a pause skips everything for 90 days,
//! and turning email off puts the address on the suppression list.

use crate::helpers::Workspace;
use crate::service::{Daemon, http, wait_for};
use crate::smtp::SmtpServer;

const CADENCES: &str = "\
cadences:
  - id: thanks
    channel: email
    template: thanks
    topic: After a purchase
    trigger: { after: purchase, delay: 2d }
  - id: care
    channel: email
    template: thanks
    topic: Care tips
    trigger: { after: purchase, delay: 20d }
  - id: nudge
    channel: email
    template: nudge
    trigger: { after: inquiry, delay: 3d }
    where: { tags: [prospect] }
";

/// The path of the preferences link in the message's text.
fn preferences_path(message: &str) -> String {
    let at = message
        .find("Choose what you get: https://tiles.example/tickler/preferences/")
        .expect("a preferences link in the footer");
    let link = message[at..].lines().next().unwrap_or_default();
    link.trim_start_matches("Choose what you get: https://tiles.example/tickler")
        .trim()
        .to_owned()
}

fn form(fields: &[&str]) -> Vec<u8> {
    fields.join("&").into_bytes()
}

#[test]
fn a_customer_turns_off_a_follow_up_pauses_and_unsubscribes_from_their_page() {
    let server = SmtpServer::start();
    let ws = Workspace::new(Some(&server.url()));
    ws.always_open();
    ws.write("cadences.yaml", CADENCES);
    ws.write(
        "templates/partials/footer.hbs",
        "{{business.name}}\nChoose what you get: {{preferences_url}}\nUnsubscribe: {{unsubscribe_url}}\n",
    );
    let port = crate::helpers::free_port();
    ws.add_config(&format!(
        "http:\n  listen: 127.0.0.1:{port}\n  public_url: https://tiles.example/tickler\n"
    ));
    ws.write(
        "contacts.csv",
        "id,first_name,email,tags\nK-1,Ingrid,ingrid@example.org,customer\n",
    );
    let day = crate::helpers::two_days_ago();
    ws.write(
        "events.csv",
        &format!("id,contact_id,kind,at\nP-1,K-1,purchase,{day}\n"),
    );
    ws.import_all();
    let _daemon = Daemon::start(&ws);
    wait_for("the thank-you", 30, || !server.messages().is_empty());
    // Quoted-printable soft line breaks undone: the link is one line again.
    let message = server.messages().remove(0).data.replace("=\r\n", "");
    let path = preferences_path(&message);

    // The page lists her channel and the follow-ups that apply to her, by topic.
    let (code, page) = http(port, "GET", &path, &[], "");
    assert_eq!(code, 200, "{page}");
    for shown in [
        "Hello Ingrid",
        "Email",
        "After a purchase",
        "Care tips",
        "Pause everything for 90 days",
    ] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    assert!(!page.contains("Nudge"), "not hers: {page}");
    let mut forged = path.clone();
    forged.pop();
    forged.push(if path.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(http(port, "GET", &forged, &[], "").0, 404);
    assert_eq!(http(port, "POST", &forged, &[], form(&["pause=on"])).0, 404);

    // Care tips off: the 20-day mail will be skipped, the rest goes on.
    let (code, page) = http(
        port,
        "POST",
        &path,
        &[],
        form(&["email=on", "t%3AAfter+a+purchase=on"]),
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Your choices are saved."), "{page}");
    let timeline = ws.tickler(&["contact", "K-1"]).ok();
    assert!(
        timeline
            .stdout
            .contains("would be skipped: the customer turned this follow-up off (declined)"),
        "{}",
        timeline.stdout
    );

    // A pause of everything, shown with its end.
    let all = ["email=on", "t%3AAfter+a+purchase=on", "t%3ACare+tips=on"];
    let (_, page) = http(
        port,
        "POST",
        &path,
        &[],
        form(&[all.as_slice(), &["pause=on"]].concat()),
    );
    assert!(page.contains("Everything is paused until"), "{page}");
    let timeline = ws.tickler(&["contact", "K-1"]).ok();
    assert!(
        timeline
            .stdout
            .contains("would be skipped: the customer paused their follow-ups (paused)"),
        "{}",
        timeline.stdout
    );
    let (_, page) = http(
        port,
        "POST",
        &path,
        &[],
        form(&[all.as_slice(), &["resume=on"]].concat()),
    );
    assert!(page.contains("Pause everything for 90 days"), "{page}");

    // Email off: her address joins the suppression list as unsubscribed.
    let (_, page) = http(port, "POST", &path, &[], form(&["t%3ACare+tips=on"]));
    assert!(page.contains("Your choices are saved."), "{page}");
    let list = ws.tickler(&["suppressions", "--format", "csv"]).ok();
    assert!(
        list.stdout.contains("ingrid@example.org,unsubscribed"),
        "{}",
        list.stdout
    );
}
