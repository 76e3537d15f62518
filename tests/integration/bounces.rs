//! Hearing back, end to end: tickler sends through an SMTP server with VERP return paths;
//! bounce and complaint reports, written as Postfix and an ARF feedback loop write them,
//! arrive in a real Dovecot mailbox (or as saved files); the next pass reads them, stops
//! all email to those addresses, moves the reports to `processed` and leaves other mail
//! alone.

use crate::helpers::Workspace;
use crate::imap::{Dovecot, PASSWORD, USER};
use crate::smtp::{Received, SmtpServer};

const RETURN_PATH: &str = "bounces@fjord.example";

/// A Postfix delivery status notification for `original`, delivered to `to` (the VERP
/// address it was sent from), about `recipient`.
pub fn dsn(
    to: &str,
    recipient: &str,
    action: &str,
    status: &str,
    id: &str,
    original: &str,
) -> String {
    format!(
        "Return-Path: <>\r\nX-Original-To: {to}\r\nDelivered-To: {to}\r\n\
         Date: Tue, 14 May 2024 09:12:44 +0000 (UTC)\r\n\
         From: MAILER-DAEMON@mail.fjord.example (Mail Delivery System)\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nTo: {to}\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B{id}\"\r\n\
         Message-Id: <{id}@mail.fjord.example>\r\n\r\n\
         --B{id}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
         This is the mail system at host mail.fjord.example.\r\n\r\n\
         <{recipient}>: host mx.example.org said: 550 5.1.1 User unknown\r\n\r\n\
         --B{id}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mail.fjord.example\r\nX-Postfix-Queue-ID: 4VfZ1b2C3dz9sQ\r\n\
         Arrival-Date: Tue, 14 May 2024 09:12:41 +0000 (UTC)\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.org\r\n\
         Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected:\r\n    User unknown\r\n\r\n\
         --B{id}\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n\
         {original}\r\n--B{id}--\r\n"
    )
}

/// An abuse report from a feedback loop that redacts the recipient: only the VERP
/// address in `Original-Mail-From` says which send it is about.
fn arf(verp: &str, original: &str) -> String {
    let original = original.replace("mei@example.com", "redacted@example.com");
    format!(
        "From: feedbackloop@fbl.example.net\r\nTo: abuse@fjord.example\r\n\
         Subject: Complaint about message from 192.0.2.7\r\nMIME-Version: 1.0\r\n\
         Message-ID: <fbl-1@fbl.example.net>\r\nDate: Wed, 15 May 2024 10:00:00 +0000\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"fbl\"\r\n\r\n\
         --fbl\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
         --fbl\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n\
         Original-Mail-From: <{verp}>\r\nArrival-Date: Wed, 15 May 2024 09:58:00 +0000\r\n\r\n\
         --fbl\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--fbl--\r\n"
    )
}

/// The one message the server received for `to`.
fn sent_to(server: &SmtpServer, to: &str) -> Received {
    let all = server.messages();
    let found: Vec<Received> = all.iter().filter(|m| m.rcpt_to == [to]).cloned().collect();
    assert_eq!(found.len(), 1, "messages to {to}: {all:?}");
    found.into_iter().next().unwrap()
}

/// A workspace sending through `server`, its email bounces returning to `RETURN_PATH`,
/// with three customers: K-1 and K-3 share an address (in two spellings), K-3's purchase
/// a day later than the others'.
fn workspace(server: &SmtpServer, bounce: &str) -> (Workspace, jiff::civil::Date) {
    let ws = Workspace::new(Some(&server.url()));
    ws.add_config(&format!(
        "  bounce:\n    return_path: {RETURN_PATH}\n{bounce}"
    ));
    ws.write(
        "contacts.csv",
        "id,first_name,last_name,email\nK-1,Ingrid,Berg,ingrid@example.org\n\
         K-2,Mei,Chen,mei@example.com\nK-3,Ola,Berg,ingrid@EXAMPLE.org\n",
    );
    let day = crate::helpers::two_days_ago();
    let next = day.tomorrow().unwrap();
    ws.write(
        "events.csv",
        &format!(
            "id,contact_id,kind,at\nP-1,K-1,purchase,{day}\nP-2,K-2,purchase,{day}\nP-3,K-3,purchase,{next}\n"
        ),
    );
    ws.import_all();
    (ws, day)
}

fn at(day: jiff::civil::Date, days: i64) -> String {
    format!(
        "{}T12:00:00-05:00",
        day.checked_add(jiff::Span::new().days(days)).unwrap()
    )
}

fn send_of<'a>(sends: &'a [serde_json::Value], contact: &str) -> &'a serde_json::Value {
    sends
        .iter()
        .find(|s| s["contact"] == contact)
        .expect("a send")
}

#[test]
fn a_bounce_or_a_complaint_in_the_mailbox_stops_email_to_the_address_within_one_poll() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    let server = SmtpServer::start();
    let imap = format!(
        "    imap:\n      url: {}\n      username: {USER}\n      password_file: imap-password\n      ca_file: {}\n",
        dovecot.imaps_url(),
        dovecot.dir.path().join("ca.pem").display()
    );
    let (ws, day) = workspace(&server, &imap);
    ws.write("imap-password", &format!("{PASSWORD}\n"));
    ws.tickler(&["tick", "--now", &at(day, 2)]).ok();

    // Each email went out under a return path of its own.
    let ingrid = sent_to(&server, "ingrid@example.org");
    let mei = sent_to(&server, "mei@example.com");
    assert!(
        ingrid.mail_from.starts_with("bounces+s"),
        "{}",
        ingrid.mail_from
    );
    assert!(
        ingrid.mail_from.ends_with("@fjord.example"),
        "{}",
        ingrid.mail_from
    );
    assert_ne!(ingrid.mail_from, mei.mail_from);

    // Ingrid's mailbox does not exist; Mei marks hers as spam; a customer writes in.
    let hard = dsn(
        &ingrid.mail_from,
        "ingrid@example.org",
        "failed",
        "5.1.1",
        "r1",
        &ingrid.data,
    );
    dovecot.deliver("1.fjord:2,", hard.as_bytes());
    dovecot.deliver("2.fjord:2,", arf(&mei.mail_from, &mei.data).as_bytes());
    let reply = "From: Pat <pat@example.net>\r\nTo: hello@fjord.example\r\n\
                 Subject: Question about grout\r\nMessage-ID: <q1@example.net>\r\n\r\nHi there.\r\n";
    dovecot.deliver("3.fjord:2,", reply.as_bytes());

    // One pass later: both addresses are suppressed, the reports are filed away, and the
    // customer's mail is where it was.
    let run = ws.tickler(&["tick", "--now", &at(day, 3)]).ok();
    assert!(
        run.stderr
            .contains("2 reports acted on, 1 messages left in place"),
        "{}",
        run.stderr
    );
    assert_eq!(dovecot.files(""), 1, "{}", dovecot.log());
    assert_eq!(dovecot.files("processed"), 2, "{}", dovecot.log());

    let sends = ws.sends();
    let bounced = send_of(&sends, "K-1");
    assert_eq!(bounced["status"], "bounced", "{bounced}");
    assert!(
        bounced["reason"].as_str().unwrap().starts_with("5.1.1"),
        "{bounced}"
    );
    // K-3 shares Ingrid's address: its thank-you is skipped, never sent.
    let shared = send_of(&sends, "K-3");
    assert_eq!(shared["status"], "skipped", "{shared}");
    assert_eq!(shared["reason"], "suppressed:bounced", "{shared}");
    assert_eq!(server.messages().len(), 2);

    let list = ws.tickler(&["suppressions", "--format", "json"]).ok();
    let list: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).expect("json");
    let reason = |address: &str| {
        list.iter()
            .find(|e| e["address"] == address)
            .map(|e| e["reason"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        reason("ingrid@example.org").as_deref(),
        Some("bounced"),
        "{list:?}"
    );
    assert_eq!(
        reason("mei@example.com").as_deref(),
        Some("complained"),
        "{list:?}"
    );
    let one = ws.tickler(&["suppressions", "ingrid@example.org"]).ok();
    assert!(
        one.stdout.contains("Undelivered Mail Returned to Sender"),
        "{}",
        one.stdout
    );
    let timeline = ws.tickler(&["contact", "K-3", "--now", &at(day, 3)]).ok();
    assert!(
        timeline
            .stdout
            .contains("the address is suppressed: mail to it bounced"),
        "{}",
        timeline.stdout
    );

    // Reading the mailbox again changes nothing.
    let again = ws.tickler(&["tick", "--now", &at(day, 4)]).ok();
    assert!(
        again.stderr.contains("0 reports acted on, 1 messages left"),
        "{}",
        again.stderr
    );
    assert_eq!(dovecot.files("processed"), 2);
}

#[test]
fn saved_reports_are_imported_and_transient_failures_add_up() {
    let server = SmtpServer::start();
    let (ws, day) = workspace(&server, "");
    ws.tickler(&["tick", "--now", &at(day, 2)]).ok();
    let mei = sent_to(&server, "mei@example.com");

    // A full mailbox, reported three times: the third suppresses the address.
    for n in 1..=3 {
        let report = dsn(
            &mei.mail_from,
            "mei@example.com",
            "delayed",
            "4.2.2",
            &format!("t{n}"),
            &mei.data,
        );
        ws.write(&format!("t{n}.eml"), &report);
        let run = ws
            .tickler(&["bounces", "import", &format!("t{n}.eml")])
            .ok();
        let expected = if n < 3 {
            format!("transient failure {n} of 3")
        } else {
            "suppressed after 3 transient failures".to_owned()
        };
        assert!(run.stdout.contains(&expected), "{n}: {}", run.stdout);
        // The same report read twice counts once.
        if n == 1 {
            let again = ws.tickler(&["bounces", "import", "t1.eml"]).ok();
            assert!(again.stdout.contains("already counted"), "{}", again.stdout);
        }
    }
    let listed = ws.tickler(&["suppressions"]).ok();
    assert!(
        listed.stdout.contains("mei@example.com") && listed.stdout.contains("bounced"),
        "{}",
        listed.stdout
    );

    // A report whose token was not made here, and a file that is no report: nothing changes.
    let forged = mei.mail_from.replace("bounces+s", "bounces+s9");
    let ingrid = sent_to(&server, "ingrid@example.org");
    ws.write(
        "forged.eml",
        &dsn(
            &forged,
            "ingrid@example.org",
            "failed",
            "5.1.1",
            "f1",
            &ingrid.data,
        ),
    );
    ws.write(
        "hello.eml",
        "From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    let run = ws.tickler(&["bounces", "import", "forged.eml", "hello.eml"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("forged.eml: changed nothing: a bounce for ingrid@example.org that names no send of ours"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hello.eml: changed nothing: not a report"),
        "{}",
        run.stderr
    );
    let listed = ws.tickler(&["suppressions", "--format", "csv"]).ok();
    assert!(!listed.stdout.contains("ingrid"), "{}", listed.stdout);

    // The owner's own hand on the list.
    // The domain is folded, the local part kept: both of Ingrid's spellings match.
    let add = ws
        .tickler(&["suppress", "ingrid@Example.ORG", "--reason", "moved away"])
        .ok();
    assert!(
        add.stdout
            .contains("ingrid@example.org suppressed: moved away"),
        "{}",
        add.stdout
    );
    let timeline = ws.tickler(&["contact", "K-3", "--now", &at(day, 3)]).ok();
    assert!(
        timeline
            .stdout
            .contains("the address is suppressed: moved away"),
        "{}",
        timeline.stdout
    );
    let bad = ws.tickler(&["suppress", "not-an-address"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    ws.tickler(&["unsuppress", "ingrid@example.org"]).ok();
    let gone = ws.tickler(&["unsuppress", "ingrid@example.org"]);
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("is not suppressed"), "{}", gone.stderr);
}

#[test]
fn the_console_lists_suppressed_addresses_with_their_reports() {
    let console = crate::console_harness::start_console();
    let (ws, port) = (&console.ws, console.port);
    // Ingrid's thank-you bounced; the provider's report names her and the Message-ID.
    let sends = ws.sends();
    let ingrid = send_of(&sends, "K-1");
    let original = format!(
        "Message-ID: {}\r\nTo: ingrid@example.org\r\nSubject: Thanks\r\n\r\nHello\r\n",
        ingrid["message_id"].as_str().unwrap()
    );
    let report = dsn(
        "hello@fjord.example",
        "ingrid@example.org",
        "failed",
        "5.1.1",
        "c1",
        &original,
    );
    ws.write("bounce.eml", &report);
    let run = ws.tickler(&["bounces", "import", "bounce.eml"]).ok();
    assert!(
        run.stdout
            .contains("ingrid@example.org suppressed (bounced: 5.1.1)"),
        "{}",
        run.stdout
    );

    let me = crate::console_harness::sign_in(port);
    let me = Some(me.as_str());
    let summary = crate::console_harness::http(port, "GET", "/console/", me, "");
    assert!(
        summary.body.contains("<strong>1</strong> suppressed"),
        "{}",
        summary.body
    );
    let page = crate::console_harness::http(port, "GET", "/console/suppressions", me, "");
    assert_eq!(page.code, 200);
    assert!(
        page.body.contains("ingrid@example.org") && page.body.contains("5.1.1"),
        "{}",
        page.body
    );
    let shown = crate::console_harness::http(
        port,
        "GET",
        "/console/suppressions?report=ingrid%40example.org",
        me,
        "",
    );
    assert!(
        shown.body.contains("Undelivered Mail Returned to Sender"),
        "{}",
        shown.body
    );

    // Taking it off needs the form's token.
    let form = "address=ingrid%40example.org";
    let refused =
        crate::console_harness::http(port, "POST", "/console/suppressions/remove", me, form);
    assert_eq!(refused.code, 403);
    let csrf = crate::console_harness::csrf_of(&page.body);
    let done = crate::console_harness::http(
        port,
        "POST",
        "/console/suppressions/remove",
        me,
        &format!("csrf={csrf}&{form}"),
    );
    assert_eq!(done.code, 303);
    let list = ws.tickler(&["suppressions", "--format", "csv"]).ok();
    assert!(!list.stdout.contains("ingrid"), "{}", list.stdout);
}

#[test]
fn the_daemon_reads_the_mailbox_on_its_own_schedule() {
    let Some(dovecot) = Dovecot::start("") else {
        return;
    };
    let server = SmtpServer::start();
    let imap = format!(
        "    poll: 10s\n    imap:\n      url: {}\n      username: {USER}\n      password_file: imap-password\n      ca_file: {}\n",
        dovecot.imaps_url(),
        dovecot.dir.path().join("ca.pem").display()
    );
    let (ws, _) = workspace(&server, &imap);
    ws.always_open();
    ws.write("imap-password", &format!("{PASSWORD}\n"));
    let _daemon = crate::service::Daemon::start(&ws);
    crate::service::wait_for("two thank-yous", 30, || server.messages().len() >= 2);
    let ingrid = sent_to(&server, "ingrid@example.org");
    let hard = dsn(
        &ingrid.mail_from,
        "ingrid@example.org",
        "failed",
        "5.1.1",
        "d1",
        &ingrid.data,
    );
    dovecot.deliver("1.fjord:2,", hard.as_bytes());
    crate::service::wait_for("the report, filed", 30, || dovecot.files("processed") == 1);
    let list = ws.tickler(&["suppressions", "--format", "csv"]).ok();
    assert!(
        list.stdout.contains("ingrid@example.org,bounced"),
        "{}",
        list.stdout
    );
}
