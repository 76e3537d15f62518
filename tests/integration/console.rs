//! The owner's console as a browser without JavaScript uses it, against `tickler run`:
//! nothing without a session, sign-in and its lockout, the pages' contents, CSRF on
//! every action, and customers' data shown as text.

use crate::backends::TempDb;
use crate::console_harness::{
    Console, PASSWORD, csrf_of, form_value, http, session_of, sign_in, start_console,
    start_console_on,
};

#[test]
fn the_console_shows_a_customer_only_to_the_owner() {
    let Console { ws, port, _daemon } = start_console();
    // Nothing without a session: pages redirect, actions change nothing.
    for path in [
        "/console/",
        "/console/sends",
        "/console/contacts/K-1",
        "/console/sends.csv",
    ] {
        let a = http(port, "GET", path, None, "");
        assert_eq!(a.code, 303, "{path}: {}", a.head);
        assert_eq!(a.header("location"), Some("/console/signin"), "{path}");
    }
    let a = http(
        port,
        "POST",
        "/console/contacts/K-1/opt-out",
        Some("forged"),
        "channel=email&opted_out=true",
    );
    assert_eq!(a.code, 303);

    // A wrong password, then the right one.
    let a = http(port, "POST", "/console/signin", None, "password=guess");
    assert_eq!(a.code, 401);
    assert!(a.body.contains("That password is not right."), "{}", a.body);
    let a = http(
        port,
        "POST",
        "/console/signin",
        None,
        &format!("password={}", form_value(PASSWORD)),
    );
    assert_eq!(a.code, 303, "{}", a.head);
    let set_cookie = a.header("set-cookie").expect("a session cookie").to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let session = session_of(&set_cookie);
    let me = Some(session.as_str());

    // The send log, searched by a part of a name; the CSV of the same filter.
    let a = http(port, "GET", "/console/sends?q=ingr", me, "");
    assert_eq!(a.code, 200);
    assert!(
        a.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
    assert!(
        a.body.contains("Ingrid Berg") && a.body.contains("s-sent"),
        "{}",
        a.body
    );
    assert!(
        !a.body.contains("Mei Chen"),
        "the search matched only Ingrid"
    );
    let a = http(port, "GET", "/console/sends?status=skipped", me, "");
    assert!(
        a.body.contains("Mei Chen") && a.body.contains("opted_out"),
        "{}",
        a.body
    );
    let a = http(port, "GET", "/console/sends.csv?q=ingr", me, "");
    assert_eq!(a.code, 200);
    assert!(
        a.body.starts_with("updated_at,contact,cadence"),
        "{}",
        a.body
    );
    assert!(a.body.contains(",K-1,thanks,P-1,email,sent,"), "{}", a.body);

    // A customer's page: a sent row, and the page of a hostile name shows it as text.
    let page = http(port, "GET", "/console/contacts/K-1", me, "").body;
    assert!(
        page.contains("Ingrid Berg")
            && page.contains("thanks")
            && page.contains("email: subscribed"),
        "{page}"
    );
    assert!(
        page.contains("nudge") && page.contains("not for this customer: needs the tag prospect"),
        "{page}"
    );
    let hostile = http(port, "GET", "/console/contacts/K-6", me, "").body;
    assert!(
        hostile.contains("&lt;script&gt;alert(1)&lt;/script&gt; Hacker"),
        "{hostile}"
    );
    assert!(!hostile.contains("<script>"), "{hostile}");
    assert_eq!(
        http(port, "GET", "/console/contacts/nobody", me, "").code,
        404
    );

    // An action without the page's CSRF token is refused and changes nothing; with it,
    // the customer is unsubscribed.
    let a = http(
        port,
        "POST",
        "/console/contacts/K-1/opt-out",
        me,
        "channel=email&opted_out=true",
    );
    assert_eq!(a.code, 403);
    let a = http(
        port,
        "POST",
        "/console/contacts/K-1/opt-out",
        me,
        "csrf=00&channel=email&opted_out=true",
    );
    assert_eq!(a.code, 403);
    assert!(
        http(port, "GET", "/console/contacts/K-1", me, "")
            .body
            .contains("email: subscribed")
    );
    let csrf = csrf_of(&page);
    let a = http(
        port,
        "POST",
        "/console/contacts/K-1/opt-out",
        me,
        &format!("csrf={csrf}&channel=email&opted_out=true"),
    );
    assert_eq!(a.code, 303, "{}", a.body);
    assert!(
        http(port, "GET", "/console/contacts/K-1", me, "")
            .body
            .contains("email: opted out")
    );

    // Sent and skipped rows cannot be retried, and a retry needs the token too.
    let before = ws.sends();
    assert!(!before.is_empty());
    let a = http(port, "POST", "/console/sends/1/retry", me, "back=/console/");
    assert_eq!(a.code, 403);
    for id in 1..=before.len() {
        let form = format!("csrf={csrf}&back=/console/");
        let a = http(
            port,
            "POST",
            &format!("/console/sends/{id}/retry"),
            me,
            &form,
        );
        assert_eq!(a.code, 409, "row {id}: {}", a.body);
    }
    assert_eq!(ws.sends(), before);

    // What goes out next, and each follow-up's month.
    let a = http(port, "GET", "/console/plan?days=30", me, "");
    assert_eq!(a.code, 200);
    assert!(
        a.body
            .contains("follow-ups would go out in the next 30 days"),
        "{}",
        a.body
    );
    // K-6's purchase today: a thank-you in two days, counted on its day.
    assert!(
        a.body.contains("<td data-label=\"thanks\">1</td>"),
        "{}",
        a.body
    );
    let a = http(port, "GET", "/console/cadences", me, "");
    assert_eq!(a.code, 200);
    assert!(
        a.body.contains("2d after each purchase event"),
        "{}",
        a.body
    );

    // Signing out ends the session.
    let a = http(
        port,
        "POST",
        "/console/signout",
        me,
        &format!("csrf={csrf}"),
    );
    assert_eq!(a.code, 303);
    assert_eq!(http(port, "GET", "/console/", me, "").code, 303);

    // Five wrong passwords in a minute lock sign-in, even for the right one.
    for _ in 0..5 {
        http(port, "POST", "/console/signin", None, "password=guess");
    }
    let a = http(
        port,
        "POST",
        "/console/signin",
        None,
        &format!("password={}", form_value(PASSWORD)),
    );
    assert_eq!(a.code, 429, "{}", a.body);
    assert!(a.header("set-cookie").is_none());
}

#[test]
fn the_owner_reads_a_sent_message_and_sends_a_test_to_themselves() {
    let Console { ws, port, _daemon } = start_console();
    let session = sign_in(port);
    let me = Some(session.as_str());

    // Ingrid's thank-you, as it was sent.
    let page = http(port, "GET", "/console/contacts/K-1", me, "").body;
    let at = page
        .find("/message\">The message as sent")
        .expect("a link to the kept message");
    let href_start = page[..at].rfind("href=\"").unwrap() + 6;
    let href = format!("{}/message", &page[href_start..at]);
    let a = http(port, "GET", &href, me, "");
    assert_eq!(a.code, 200, "{}", a.body);
    assert!(
        a.body.contains("Thanks for the order, Ingrid!"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("Ingrid Berg &lt;ingrid@example.org&gt;"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("Hello Ingrid, &amp; thank you."),
        "{}",
        a.body
    );
    let a = http(port, "GET", &format!("{href}.html"), me, "");
    assert_eq!(a.code, 200);
    assert!(
        a.body.contains("<p>Hello Ingrid &amp; welcome</p>"),
        "{}",
        a.body
    );
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.starts_with("sandbox;") && !csp.contains("script"),
        "{csp}"
    );
    // Not without a session, and nothing for a send that kept none.
    assert_eq!(http(port, "GET", &href, None, "").code, 303);
    assert_eq!(
        http(port, "GET", "/console/sends/9999/message", me, "").code,
        404
    );

    // "Send me a test": to the business's address, marked [TEST], not in the send log.
    let before = ws.sends();
    let outbox = ws.path("state/outbox");
    let count = || std::fs::read_dir(&outbox).map_or(0, |d| d.count());
    let emails = count();
    let a = http(
        port,
        "POST",
        "/console/contacts/K-1/test",
        me,
        "cadence=thanks",
    );
    assert_eq!(a.code, 403);
    let form = format!("csrf={}&cadence=thanks", csrf_of(&page));
    let a = http(port, "POST", "/console/contacts/K-1/test", me, &form);
    assert_eq!(a.code, 303, "{}", a.body);
    assert_eq!(count(), emails + 1);
    let newest = std::fs::read_dir(&outbox)
        .unwrap()
        .filter_map(Result::ok)
        .max_by_key(|e| e.metadata().unwrap().modified().unwrap())
        .unwrap();
    let test = std::fs::read_to_string(newest.path()).unwrap();
    assert!(
        test.contains("Subject: [TEST] Thanks for the order, Ingrid!"),
        "{test}"
    );
    let to = test
        .lines()
        .find(|l| l.starts_with("To: "))
        .unwrap_or_default();
    assert!(to.ends_with(" <hello@fjord.example>"), "{test}");
    // Its unsubscribe link reaches the business, not the customer's opt-out.
    assert!(
        test.contains("List-Unsubscribe: <mailto:hello@fjord.example"),
        "{test}"
    );
    assert!(!test.contains("ingrid@example.org"), "{test}");
    assert_eq!(ws.sends(), before, "a test is not a send");
    let page = http(port, "GET", "/console/contacts/K-1", me, "").body;
    assert!(
        page.contains("thanks to hello@fjord.example: sent:"),
        "{page}"
    );
}

#[test]
fn the_console_serves_the_same_pages_on_postgresql() {
    let Some(db) = TempDb::create() else { return };
    let Console { ws, port, _daemon } = start_console_on(Some(&db.url()), false);
    let session = sign_in(port);
    let me = Some(session.as_str());
    let page = |path: &str| {
        let a = http(port, "GET", path, me, "");
        assert_eq!(a.code, 200, "{path}: {}", a.body);
        a.body
    };
    assert!(page("/console/").contains("sent today"));
    let found = page("/console/sends?q=ingr");
    assert!(
        found.contains("Ingrid Berg") && !found.contains("Mei Chen"),
        "{found}"
    );
    assert!(page("/console/sends?status=skipped&channel=email").contains("opted_out"));
    let ingrid = page("/console/contacts/K-1");
    assert!(ingrid.contains("The message as sent"), "{ingrid}");
    assert!(page("/console/plan?days=30").contains("in the next 30 days"));
    assert!(page("/console/cadences").contains("2d after each purchase event"));
    let csv = page("/console/sends.csv?status=sent");
    assert!(csv.contains(",K-1,thanks,P-1,email,sent,"), "{csv}");
    // An action writes to PostgreSQL like to SQLite.
    let form = format!("csrf={}&channel=email&opted_out=true", csrf_of(&ingrid));
    let a = http(port, "POST", "/console/contacts/K-1/opt-out", me, &form);
    assert_eq!(a.code, 303, "{}", a.body);
    assert!(page("/console/contacts/K-1").contains("email: opted out"));
    let contact = ws.tickler(&["contact", "K-1", "--format", "json"]).ok();
    assert!(
        contact.stdout.contains("\"email\": true"),
        "{}",
        contact.stdout
    );
}
