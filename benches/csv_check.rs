//! The CPU half of an import: reading CSV rows and checking each into a contact or an
//! event, without the database (BENCHMARKS.md compares it with the whole import).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use tickler::sync::{contact_from_record, event_from_record, read_csv};

const CONTACTS: &str = "id,first_name,last_name,email,address_line1,address_line2,city,region,postal_code,country,birthday,timezone,tags,email_opt_out,postcard_opt_out,favorite_tile\n";
const EVENTS: &str = "id,contact_id,kind,at,item,amount\n";

fn csv(c: &mut Criterion) {
    let rows = 10_000u64;
    let mut contacts = String::from(CONTACTS);
    let mut events = String::from(EVENTS);
    for n in 0..rows {
        contacts.push_str(&format!(
            "C-{n:07},Maria,Alvarez,c{n:07}@example.com,48 Delaware Ave,,Albany,NY,12209,US,1981-11-24,,customer;vip,,,subway tile\n"
        ));
        events.push_str(&format!(
            "E-{n},C-{n:07},purchase,2025-0{}-1{},\"12x24 porcelain, 320 sq ft\",3104.00\n",
            1 + n % 9,
            n % 10
        ));
    }
    let mut group = c.benchmark_group("csv");
    group.throughput(Throughput::Elements(rows));
    group.bench_function("contacts read and checked", |b| {
        b.iter(|| {
            let mut ok = 0;
            read_csv(contacts.as_bytes(), |_, row| {
                ok += usize::from(row.and_then(contact_from_record).is_ok());
                true
            })
            .expect("a header");
            assert_eq!(ok as u64, rows);
        })
    });
    group.bench_function("events read and checked", |b| {
        b.iter(|| {
            let mut ok = 0;
            read_csv(events.as_bytes(), |_, row| {
                ok += usize::from(row.and_then(event_from_record).is_ok());
                true
            })
            .expect("a header");
            assert_eq!(ok as u64, rows);
        })
    });
    group.finish();
}

criterion_group!(benches, csv);
criterion_main!(benches);
