//! Templates and the values rendered into them, both hostile: compiling and rendering
//! end in a message or an error, never a panic or a hang (self-recursive partials
//! included), and no value can add a header to the email built from the result.
//!
//! The input is split on lines holding `%%`: subject, text body, HTML body, the
//! `footer` and `signoff` partials (which may include each other), then values for the
//! contact's first name, a custom field, and the event's time.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tickler::channel::email::{Envelope, build};
use tickler::config::Business;
use tickler::domain::PostalAddress;
use tickler::domain::EmailAddress;
use tickler::render::Templates;

/// Every header tickler's messages carry; anything else was injected.
const HEADERS: [&str; 11] = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Message-ID",
    "Date",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split("\n%%\n");
    let mut next = || parts.next().unwrap_or_default();
    let (subject, body, html, footer, signoff) = (next(), next(), next(), next(), next());
    let (first_name, field, at) = (next(), next(), next());

    let mut sources = vec![("subject", subject), ("txt", body)];
    if !html.is_empty() {
        sources.push(("html", html));
    }
    let partials = [("footer", footer), ("signoff", signoff)];
    let Ok(templates) = Templates::from_sources(&partials, "t", &sources) else {
        return;
    };
    let fields = BTreeMap::from([("note".to_owned(), field.to_owned())]);
    let data = json!({
        "contact": { "id": "C-1", "first_name": first_name, "last_name": "", "fields": fields,
                     "tags": ["customer"] },
        "event": { "id": "E-1", "kind": "purchase", "at": at, "fields": fields },
        "business": { "name": "Shop", "address_line": "1 Main St, Troy" },
        "cadence": { "id": "thanks" },
        "occurrence": "E-1",
        "now": "2026-03-01T10:00:00Z",
        "unsubscribe_url": "https://shop.example/unsubscribe/x",
        "timezone": "America/New_York",
    });
    let Ok(email) = templates.render_email("t", data) else {
        return;
    };
    assert!(!email.subject.contains(['\r', '\n']), "{:?}", email.subject);

    let business = Business {
        name: first_name.to_owned(),
        email: EmailAddress::parse("shop@example.com").expect("address"),
        reply_to: None,
        phone: String::new(),
        address: PostalAddress::default(),
        zone: jiff::tz::TimeZone::UTC,
        logo: None,
        colour: tickler::config::Colour::parse("#2f5566").expect("colour"),
    };
    let to = EmailAddress::parse("ana@example.com").expect("address");
    let envelope = Envelope {
        business: &business,
        to_name: first_name,
        to: &to,
        message_id: "<1.thanks@example.com>",
        date: jiff::Timestamp::UNIX_EPOCH,
        unsubscribe_url: field,
        unsubscribe_mailto: Some("mailto:shop@example.com?subject=unsubscribe"),
        return_path: None,
        dkim: None,
    };
    let Ok(message) = build(&envelope, &email) else {
        return;
    };
    let formatted = message.formatted();
    let raw = String::from_utf8_lossy(&formatted);
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let name = line.split(':').next().unwrap_or_default();
        assert!(
            HEADERS.contains(&name),
            "injected header {line:?} in\n{head}"
        );
    }
});
