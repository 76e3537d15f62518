//! Generates N contacts and M events as the CSV files `tickler import` reads, for the
//! benchmarks (BENCHMARKS.md). The same seed gives the same files, byte for byte.
//!
//! The data is shaped so that, with the shipped cadences and send window, exactly the
//! `--due` contacts (spread evenly through the id range) owe one thank-you at `--now`,
//! and nothing else falls due from ten days before `--now` to two days after it: so the
//! work a tick finds is known whatever the contact count. The other contacts have old
//! purchases, services on a 90-day maintenance cycle that avoids that window, old
//! inquiries and birthdays outside it.
//!
//! `--shape customers` writes a shop's real customer list instead: every contact has a
//! birthday, a purchase and a service, each contact's two rows next to each other in
//! the contacts' order, all of it older than `max_lateness`; then `--due` extra rows at
//! the end, purchases for random contacts whose thank-you falls due as above.
//! `--order shuffled` writes the events in random order (any shape).
//!
//! ```sh
//! cargo run --release --example gen_data -- --seed 1 --contacts 1000000 --events 2000000 \
//!     --due 1000 --now 2026-03-04T15:00:00-05:00 [--shape customers] [--order shuffled] \
//!     --out /tmp/data
//! ```

use std::path::PathBuf;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

const FIRST: [&str; 16] = [
    "Maria", "José", "Zoë", "Łukasz", "Aisha", "Chen", "Olivia", "Liam", "Noah", "Emma", "Sofía",
    "Mateo", "Yuki", "Priya", "Omar", "Grace",
];
const LAST: [&str; 16] = [
    "Alvarez",
    "Peña",
    "Brontë-Smith",
    "Wójcik",
    "Okafor",
    "Nguyen",
    "Smith",
    "Johnson",
    "O'Brien",
    "García",
    "Kowalski",
    "Tanaka",
    "Patel",
    "Haddad",
    "Müller",
    "Rossi",
];
const CITIES: [(&str, &str, &str); 6] = [
    ("Albany", "NY", "12207"),
    ("Troy", "NY", "12180"),
    ("Schenectady", "NY", "12305"),
    ("Saratoga Springs", "NY", "12866"),
    ("Pittsfield", "MA", "01201"),
    ("Bennington", "VT", "05201"),
];
const ZONES: [&str; 3] = ["America/Chicago", "America/Denver", "America/Los_Angeles"];
const TILES: [&str; 6] = [
    "subway tile",
    "terracotta",
    "hexagon marble",
    "porcelain plank",
    "slate",
    "travertine",
];
const ITEMS: [&str; 5] = [
    "3x6 white subway tile, 95 sq ft",
    "12x24 porcelain, 320 sq ft",
    "thinset and unsanded grout, 30 bags",
    "hexagon marble mosaic, 40 sq ft",
    "grout cleaning and sealing service",
];

struct Args {
    seed: u64,
    contacts: u64,
    events: u64,
    due: u64,
    now: Timestamp,
    out: PathBuf,
    /// `customers`: the shop's list described above; otherwise events spread at random.
    customers: bool,
    shuffled: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seed: 1,
        contacts: 10_000,
        events: 20_000,
        due: 1_000,
        now: "2026-03-04T15:00:00-05:00"
            .parse()
            .map_err(|e| format!("{e}"))?,
        out: PathBuf::from("."),
        customers: false,
        shuffled: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--seed" => args.seed = number()?,
            "--contacts" => args.contacts = number()?,
            "--events" => args.events = number()?,
            "--due" => args.due = number()?,
            "--now" => args.now = value.parse().map_err(|e| format!("--now: {e}"))?,
            "--out" => args.out = PathBuf::from(value),
            "--shape" => args.customers = choice(&flag, &value, ["spread", "customers"])?,
            "--order" => args.shuffled = choice(&flag, &value, ["written", "shuffled"])?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.due > args.contacts {
        return Err("--due cannot exceed --contacts".into());
    }
    Ok(args)
}

/// Whether `value` is the second of `options`, or an error naming the flag.
fn choice(flag: &str, value: &str, options: [&str; 2]) -> Result<bool, String> {
    match options.iter().position(|o| *o == value) {
        Some(i) => Ok(i == 1),
        None => Err(format!("{flag}: one of {}", options.join(", "))),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "usage: gen_data [--seed S] [--contacts N] [--events M] [--due K] [--now RFC3339] \
                 [--shape spread|customers] [--order written|shuffled] [--out DIR]"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = generate(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn generate(args: &Args) -> std::io::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let today = args.now.to_zoned(TimeZone::UTC).date();
    // Every `step`-th contact is due (when --due > 0).
    let step = (args.due > 0).then(|| args.contacts / args.due);
    let is_due = |n: u64| step.is_some_and(|s| n.is_multiple_of(s) && n / s < args.due);

    let mut contacts = csv_file(&args.out.join("contacts.csv"))?;
    // tickler's own columns, and one custom field.
    contacts.write_record(
        tickler::sync::CONTACT_COLUMNS
            .iter()
            .copied()
            .chain(["favorite_tile"]),
    )?;
    for n in 0..args.contacts {
        let (city, region, zip) = CITIES[rng.usize(..CITIES.len())];
        let birthday = match rng.u8(..10) {
            // A shop's customer list has every birthday.
            0 | 1 if !args.customers => String::new(),
            2 => {
                let d = birthday_outside_window(&mut rng, today);
                format!("{:02}-{:02}", d.month(), d.day())
            }
            _ => {
                let d = birthday_outside_window(&mut rng, today);
                format!("{}-{:02}-{:02}", rng.i16(1940..2005), d.month(), d.day())
            }
        };
        let tags = match rng.u8(..10) {
            0 => "prospect",
            1 => "customer;vip",
            2 => "customer;contractor",
            _ => "customer",
        };
        let zone = if rng.u8(..8) == 0 {
            ZONES[rng.usize(..ZONES.len())]
        } else {
            ""
        };
        contacts.write_record([
            contact_id(n).as_str(),
            FIRST[rng.usize(..FIRST.len())],
            LAST[rng.usize(..LAST.len())],
            &format!("c{n:07}@example.com"),
            &format!("{} River St", rng.u32(1..2000)),
            if rng.u8(..5) == 0 { "Apt 2" } else { "" },
            city,
            region,
            zip,
            "US",
            &birthday,
            zone,
            tags,
            if rng.u8(..50) == 0 { "true" } else { "" },
            "",
            TILES[rng.usize(..TILES.len())],
        ])?;
    }
    contacts.flush()?;

    let mut rows = if args.customers {
        customer_events(args, &mut rng, today)
    } else {
        spread_events(args, &mut rng, today, is_due)
    };
    if args.shuffled {
        rng.shuffle(&mut rows);
    }
    let mut events = csv_file(&args.out.join("events.csv"))?;
    events.write_record(["id", "contact_id", "kind", "at", "item", "amount"])?;
    for (written, row) in rows.iter().enumerate() {
        let at = match row.at {
            When::Instant(t) => t.to_string(),
            When::Day(d) => d.to_string(),
        };
        events.write_record([
            format!("E-{written}").as_str(),
            &contact_id(row.contact),
            row.kind,
            &at,
            row.item,
            &format!("{}.{:02}", row.amount.0, row.amount.1),
        ])?;
    }
    events.flush()?;
    Ok(())
}

/// One generated event, written out once the order of all of them is known.
struct EventRow {
    contact: u64,
    kind: &'static str,
    at: When,
    item: &'static str,
    amount: (u32, u8),
}

/// An event's time as the CSV gives it: an instant, or a day in the contact's zone.
#[derive(Clone, Copy)]
enum When {
    Instant(Timestamp),
    Day(Date),
}

fn amount(rng: &mut fastrand::Rng) -> (u32, u8) {
    (rng.u32(20..5000), rng.u8(..100))
}

/// A due purchase for contact `n`: its thank-you (2 days later) falls due 2 hours
/// before `now`, inside the send window.
fn due_purchase(args: &Args, rng: &mut fastrand::Rng, n: u64) -> EventRow {
    EventRow {
        contact: n,
        kind: "purchase",
        at: When::Instant(args.now - SignedDuration::from_hours(50)),
        item: ITEMS[rng.usize(..4)],
        amount: amount(rng),
    }
}

/// The default shape: the due contacts' purchases first, then events of random
/// contacts (about one contact in seven has none).
fn spread_events(
    args: &Args,
    rng: &mut fastrand::Rng,
    today: Date,
    is_due: impl Fn(u64) -> bool,
) -> Vec<EventRow> {
    let mut rows = Vec::with_capacity(args.events as usize);
    for n in (0..args.contacts).filter(|&n| is_due(n)) {
        if rows.len() as u64 == args.events {
            break;
        }
        rows.push(due_purchase(args, rng, n));
    }
    while (rows.len() as u64) < args.events {
        let n = rng.u64(..args.contacts.max(1));
        let (kind, date) = match rng.u8(..10) {
            0..=5 => ("purchase", today - rng.i64(60..1100).days()),
            6..=8 => ("service", service_date(rng, today)),
            _ => ("inquiry", today - rng.i64(60..700).days()),
        };
        let item = if kind == "service" {
            ITEMS[4]
        } else {
            ITEMS[rng.usize(..4)]
        };
        rows.push(EventRow {
            contact: n,
            kind,
            at: When::Day(date),
            item,
            amount: amount(rng),
        });
    }
    rows
}

/// The customer list's shape: a purchase and a service for each contact in order, both
/// long past, then `--due` due purchases for random contacts.
fn customer_events(args: &Args, rng: &mut fastrand::Rng, today: Date) -> Vec<EventRow> {
    let due = args.due.min(args.events);
    let pairs = ((args.events - due) / 2).min(args.contacts);
    let mut rows = Vec::with_capacity(args.events as usize);
    for n in 0..pairs {
        rows.push(EventRow {
            contact: n,
            kind: "purchase",
            at: When::Day(today - rng.i64(30..1100).days()),
            item: ITEMS[rng.usize(..4)],
            amount: amount(rng),
        });
        rows.push(EventRow {
            contact: n,
            kind: "service",
            at: When::Day(service_date(rng, today)),
            item: ITEMS[4],
            amount: amount(rng),
        });
    }
    for _ in 0..due {
        let n = rng.u64(..args.contacts.max(1));
        rows.push(due_purchase(args, rng, n));
    }
    rows
}

fn csv_file(path: &std::path::Path) -> std::io::Result<csv::Writer<std::fs::File>> {
    Ok(csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(std::fs::File::create(path)?))
}

fn contact_id(n: u64) -> String {
    format!("C-{n:07}")
}

/// A day of the year whose birthday greeting is not due from ten days before `today`
/// to two days after it, in any year.
fn birthday_outside_window(rng: &mut fastrand::Rng, today: Date) -> Date {
    loop {
        // A leap year, so that Feb 29 occurs.
        let d = Date::new(2024, 1, 1).unwrap() + rng.i64(0..366).days();
        let this_year = d.with().year(today.year()).build();
        let Ok(this_year) = this_year else { continue };
        let days = (this_year - today).get_days();
        let near = |days: i32| (-12..=3).contains(&days);
        if !near(days) && !near(days - 365) && !near(days + 365) {
            return d;
        }
    }
}

/// A service date whose 90-day maintenance occurrences all miss the window around
/// `today`: `today` falls 13 to 87 days into a cycle.
fn service_date(rng: &mut fastrand::Rng, today: Date) -> Date {
    let cycles = rng.i64(0..12);
    today - (cycles * 90 + rng.i64(13..88)).days()
}
