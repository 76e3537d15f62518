//! Rendering: one thank-you email (subject, text and HTML through handlebars), and the
//! same built into an RFC 5322 message as the SMTP transport sends it.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use tickler::channel::email::{self, Envelope};
use tickler::compose::MessageData;
use tickler::render::Templates;

mod common;

fn render(c: &mut Criterion) {
    let config = common::config();
    let templates = Templates::load(&config).expect("the shipped templates load");
    let now = common::now();
    let history = common::history(1, true);
    let cadence = config.cadence("thank-you").expect("a shipped cadence");
    let event = history.events.last();
    let url = "https://hudsontile.example/tickler/u/token";
    let data = || MessageData {
        config: &config,
        cadence,
        contact: &history.contact,
        event,
        occurrence: "E-4",
        now,
        unsubscribe_url: url,
        preferences_url: "https://hudsontile.example/tickler/preferences/token",
    };
    c.bench_function("render/thank-you email", |b| {
        b.iter(|| {
            templates
                .render_email(
                    &cadence.template,
                    black_box(data()).to_json().expect("data"),
                )
                .expect("renders")
        })
    });
    let to = history.contact.email.clone().expect("an address");
    c.bench_function("render/thank-you message, formatted", |b| {
        b.iter(|| {
            let body = templates
                .render_email(&cadence.template, data().to_json().expect("data"))
                .expect("renders");
            let envelope = Envelope {
                business: &config.business,
                to_name: "Maria Alvarez",
                to: &to,
                message_id: "<x@hudsontile.example>",
                date: now,
                unsubscribe_url: url,
                unsubscribe_mailto: None,
                return_path: None,
                dkim: None,
            };
            email::build(&envelope, &body).expect("builds").formatted()
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
