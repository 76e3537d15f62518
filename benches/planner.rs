//! The planner: one contact's agenda (what `tick` asks for every due contact), and a
//! page of 500 contacts as a tick evaluates it.

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::SignedDuration;
use std::hint::black_box;

mod common;

fn planner(c: &mut Criterion) {
    let config = common::config();
    let now = common::now();
    let until = now + SignedDuration::from_hours(24 * 400);
    let due = common::history(1, true);
    let idle = common::history(2, false);
    c.bench_function("agenda/due contact", |b| {
        b.iter(|| tickler::agenda::agenda(&config, black_box(&due), now, until))
    });
    c.bench_function("agenda/contact with nothing due", |b| {
        b.iter(|| tickler::agenda::agenda(&config, black_box(&idle), now, until))
    });
    let page: Vec<_> = (0..500).map(|n| common::history(n, n % 2 == 0)).collect();
    c.bench_function("agenda/page of 500 contacts", |b| {
        b.iter(|| {
            page.iter()
                .map(|h| tickler::agenda::agenda(&config, h, now, until).len())
                .sum::<usize>()
        })
    });
}

criterion_group!(benches, planner);
criterion_main!(benches);
