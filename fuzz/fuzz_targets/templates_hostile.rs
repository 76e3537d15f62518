//! Hostile templates, not only hostile values: partials that include each other, inline
//! partials, layouts with partial blocks, blocks nested deep and `#each` over lists.
//! Compiling and rendering end in a message within 1 MB or in an error, never in a
//! panic, a stack overflow or a hang.
//!
//! The input is split on lines holding `%%`: subject, text body, HTML body, the
//! partials `a` and `b`, the layout `layouts/base`, then a tag and a custom field's
//! value, each repeated in the contact's lists.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tickler::render::Templates;

/// The most all parts of one message may render to.
const MAX_OUTPUT: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split("\n%%\n");
    let mut next = || parts.next().unwrap_or_default();
    let (subject, body, html) = (next(), next(), next());
    let (a, b, base) = (next(), next(), next());
    let (tag, value) = (next(), next());

    let mut sources = vec![("subject", subject), ("txt", body)];
    if !html.is_empty() {
        sources.push(("html", html));
    }
    let partials = [("a", a), ("b", b), ("layouts/base", base)];
    let Ok(templates) = Templates::from_sources(&partials, "t", &sources) else {
        return;
    };
    let tags: Vec<String> = (0..8).map(|i| format!("{tag}{i}")).collect();
    let fields: BTreeMap<String, String> =
        (0..8).map(|i| (format!("f{i}"), value.to_owned())).collect();
    let data = json!({
        "contact": { "id": "C-1", "first_name": "Ana", "last_name": "Lee", "tags": tags,
                     "fields": fields },
        "event": { "id": "E-1", "kind": "purchase", "at": "2026-03-01T10:00:00Z",
                   "fields": fields },
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
    let size = email.subject.len() + email.text.len() + email.html.map_or(0, |h| h.len());
    assert!(size <= MAX_OUTPUT, "{size} bytes rendered");
});
