//! Time simulated in-process: random contact histories, zones and tick sequences (with
//! outages longer than `max_lateness`), and a year of daily ticks over the shipped
//! examples. The engine runs for real against SQLite; only the email transport is a
//! recorder at its trait boundary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use tickler::channel::{DeliveryError, EmailTransport};
use tickler::cli::upcoming;
use tickler::config::Config;
use tickler::domain::SendStatus;
use tickler::render::Templates;
use tickler::store::{SendFilter, SendRow};
use tickler::tick::{Engine, Summary};
use tokio_util::sync::CancellationToken;

/// Records each message's Message-ID.
#[derive(Default)]
struct Recorder {
    ids: Mutex<Vec<String>>,
}

#[async_trait]
impl EmailTransport for Recorder {
    async fn send(&self, message: &lettre::Message, _name: &str) -> Result<String, DeliveryError> {
        let formatted = String::from_utf8_lossy(&message.formatted()).into_owned();
        let id = formatted
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .unwrap_or_default()
            .to_owned();
        self.ids.lock().expect("lock").push(id);
        Ok("250 recorded".into())
    }
    fn concurrency(&self) -> usize {
        4
    }
}

pub(crate) struct Sim {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) engine: Arc<Engine>,
    recorder: Arc<Recorder>,
}

impl Sim {
    fn new(config_path: &std::path::Path) -> Sim {
        Sim::with_database(config_path, None)
    }

    /// A simulation on the database at `url` instead of the configured one.
    pub(crate) fn with_database(config_path: &std::path::Path, url: Option<String>) -> Sim {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = Config::load(config_path).unwrap_or_else(|e| panic!("{e}"));
        if let Some(url) = url {
            config.database_url = url;
        }
        let templates = Templates::load(&config).unwrap_or_else(|e| panic!("{e:?}"));
        let store = rt
            .block_on(tickler::store::open(&config.database_url))
            .expect("store");
        let recorder = Arc::new(Recorder::default());
        let engine = Arc::new(Engine::new(
            Arc::new(config),
            Arc::new(templates),
            store,
            recorder.clone(),
        ));
        Sim {
            rt,
            engine,
            recorder,
        }
    }

    pub(crate) fn tick(&self, now: Timestamp) -> Summary {
        self.rt
            .block_on(self.engine.tick(now, &CancellationToken::new()))
            .expect("tick")
    }

    pub(crate) fn sends(&self) -> Vec<SendRow> {
        self.rt
            .block_on(self.engine.store.sends(&SendFilter::default()))
            .expect("sends")
    }

    /// (contact, cadence, occurrence) of what `plan` says goes out exactly at `now`.
    fn planned_now(&self, now: Timestamp) -> BTreeSet<(String, String, String)> {
        let planned = self
            .rt
            .block_on(upcoming(
                &self.engine.config,
                self.engine.store.as_ref(),
                now,
                now,
            ))
            .expect("forecast");
        planned
            .into_iter()
            .filter(|p| p.send_at == now)
            .map(|p| (p.contact, p.cadence, p.occurrence))
            .collect()
    }
}

pub(crate) fn key(row: &SendRow) -> (String, String, String) {
    (
        row.contact.clone(),
        row.cadence.clone(),
        row.occurrence.clone(),
    )
}

const ZONES: [&str; 7] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",
    "UTC",
];

const CADENCES: &str = "\
cadences:
  - id: thanks
    channel: email
    template: t
    trigger: { after: purchase, delay: 2d }
    days: [mon, tue, wed, thu, fri]
  - id: nudge
    channel: email
    template: t
    trigger: { after: inquiry, delay: 0d }
    send_window: \"22:00-07:00\"
    unless: [purchase]
  - id: service
    channel: email
    template: t
    trigger: { every: 10d, since: service }
  - id: bday
    channel: email
    template: t
    trigger: { yearly: birthday, lead: 1d, feb29: FEB29 }
  - id: soon
    channel: email
    template: t
    trigger: { after: purchase, delay: 5h }
    send_window: \"00:00-24:00\"
";

#[derive(Clone, Debug)]
struct Person {
    zone: Option<usize>,
    birthday: (u8, u8),
    events: Vec<(usize, u32)>, // (kind, minutes after the start)
}

fn person() -> impl Strategy<Value = Person> {
    (
        proptest::option::of(0..ZONES.len()),
        prop_oneof![(1u8..=12, 1u8..=28), Just((2u8, 29u8))],
        proptest::collection::vec((0usize..3, 0u32..60 * 24 * 60), 0..5),
    )
        .prop_map(|(zone, birthday, events)| Person {
            zone,
            birthday,
            events,
        })
}

/// Gaps between ticks, in minutes; 4 days is longer than `max_lateness`.
fn gaps() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(
        prop_oneof![
            Just(30u32),
            Just(180),
            Just(540),
            Just(1440),
            Just(2880),
            Just(5760)
        ],
        20..80,
    )
}

fn write_world(
    dir: &std::path::Path,
    business_zone: &str,
    feb29: &str,
    people: &[Person],
    start: Timestamp,
) {
    let config = format!(
        "business:\n  name: Sim Shop\n  email: shop@example.com\n  address: {{ line1: 1 Main St, city: Troy }}\n  \
         timezone: {business_zone}\nstate_dir: state\ntemplates: templates\ncadences: cadences.yaml\n\
         schedule:\n  max_lateness: 3d\n  send_window: \"09:00-18:00\"\n"
    );
    std::fs::write(dir.join("tickler.yaml"), config).expect("write");
    std::fs::write(dir.join("cadences.yaml"), CADENCES.replace("FEB29", feb29)).expect("write");
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("templates/t.subject.hbs"),
        "Hi {{contact.first_name}}",
    )
    .expect("write");
    std::fs::write(
        dir.join("templates/t.txt.hbs"),
        "Hi. {{business.address_line}} {{unsubscribe_url}}",
    )
    .expect("write");
    let mut contacts = String::from("id,first_name,email,birthday,timezone\n");
    let mut events = String::from("id,contact_id,kind,at\n");
    for (i, p) in people.iter().enumerate() {
        let zone = p.zone.map_or("", |z| ZONES[z]);
        contacts.push_str(&format!(
            "P{i},Pat,p{i}@example.com,{:02}-{:02},{zone}\n",
            p.birthday.0, p.birthday.1
        ));
        for (j, (kind, minutes)) in p.events.iter().enumerate() {
            let kind = ["purchase", "service", "inquiry"][*kind];
            let at = start + SignedDuration::from_mins(i64::from(*minutes));
            events.push_str(&format!("E{i}-{j},P{i},{kind},{at}\n"));
        }
    }
    std::fs::write(dir.join("contacts.csv"), contacts).expect("write");
    std::fs::write(dir.join("events.csv"), events).expect("write");
}

fn import(sim: &Sim, dir: &std::path::Path) {
    let config = &sim.engine.config;
    for (kind, file) in [
        (tickler::sync::Kind::Contacts, "contacts.csv"),
        (tickler::sync::Kind::Events, "events.csv"),
    ] {
        let input = std::fs::File::open(dir.join(file)).expect("open");
        let report = sim
            .rt
            .block_on(tickler::sync::import(
                sim.engine.store.as_ref(),
                kind,
                input,
                &config.business.zone,
                Timestamp::UNIX_EPOCH,
            ))
            .expect("import");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_occurrence_is_recorded_once_inside_its_window_as_planned(
        business_zone in 0..ZONES.len(),
        feb29 in prop_oneof![Just("feb28"), Just("mar1"), Just("skip")],
        people in proptest::collection::vec(person(), 1..4),
        gaps in gaps(),
        start_offset in 0u32..(3 * 24 * 60),
    ) {
        simulate(business_zone, feb29, &people, &gaps, start_offset)?;
    }
}

/// A case the simulation found: a purchase's thank-you falls due on a Wednesday, every
/// tick after it comes in the evening, and on Friday evening the next opening (Monday)
/// is past `max_lateness`. It must be recorded as stale, not left waiting for Monday.
#[test]
fn a_send_whose_next_opening_is_too_late_is_recorded_stale() {
    let people = [Person {
        zone: None,
        birthday: (1, 1),
        events: vec![(0, 40620)],
    }];
    let gaps = [
        540, 5760, 180, 1440, 180, 5760, 5760, 1440, 2880, 180, 180, 2880, 540, 2880, 1440, 5760,
        2880, 1440, 1440, 1440, 2880,
    ];
    simulate(0, "feb28", &people, &gaps, 3976).expect("simulation");
}

/// Imports `people`, ticks after each of `gaps` (minutes) from `start_offset`, and checks
/// the send log against the planner.
fn simulate(
    business_zone: usize,
    feb29: &str,
    people: &[Person],
    gaps: &[u32],
    start_offset: u32,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let start: Timestamp = "2027-02-01T00:00:00Z".parse().expect("ts");
    write_world(dir.path(), ZONES[business_zone], feb29, people, start);
    let sim = Sim::new(&dir.path().join("tickler.yaml"));
    import(&sim, dir.path());

    let config = sim.engine.config.clone();
    let mut now = start + SignedDuration::from_mins(i64::from(start_offset));
    let first = now;
    let mut ticks = Vec::new();
    for gap in gaps {
        // What plan says goes out at this instant is exactly what the tick sends.
        let predicted = sim.planned_now(now);
        let before: BTreeSet<_> = sim.sends().iter().map(key).collect();
        let summary = sim.tick(now);
        let after = sim.sends();
        let sent_now: BTreeSet<_> = after
            .iter()
            .filter(|r| r.status == SendStatus::Sent && !before.contains(&key(r)))
            .map(key)
            .collect();
        prop_assert_eq!(&sent_now, &predicted, "at {}", now);
        prop_assert_eq!(summary.sent, sent_now.len());
        prop_assert_eq!(summary.failed + summary.retrying, 0);
        ticks.push(now);
        now += SignedDuration::from_mins(i64::from(*gap));
    }
    let last = *ticks.last().expect("ticks");

    let rows = sim.sends();
    // One row per occurrence (the key is unique), and one message per sent row.
    let ids: BTreeSet<String> = sim
        .recorder
        .ids
        .lock()
        .expect("lock")
        .iter()
        .cloned()
        .collect();
    prop_assert_eq!(
        ids.len(),
        sim.recorder.ids.lock().expect("lock").len(),
        "a message went out twice"
    );
    prop_assert_eq!(
        ids.len(),
        rows.iter().filter(|r| r.status == SendStatus::Sent).count()
    );

    // Every occurrence the planner owes, due early enough to have been decided by
    // the last tick, is in the log; nothing else is.
    let mut owed: BTreeMap<(String, String, String), Timestamp> = BTreeMap::new();
    let store = sim.engine.store.clone();
    let ids: Vec<String> = (0..people.len()).map(|i| format!("P{i}")).collect();
    let histories = sim.rt.block_on(store.history(&ids)).expect("history");
    for h in &histories {
        for cadence in &config.cadences {
            let frame = tickler::plan::Frame {
                now: first,
                until: last,
                business_zone: &config.business.zone,
            };
            for due in tickler::plan::occurrences(cadence, &h.contact, &h.events, frame) {
                owed.insert(
                    (
                        h.contact.id.clone(),
                        cadence.id.clone(),
                        due.occurrence.clone(),
                    ),
                    due.due_at,
                );
            }
        }
    }
    let logged: BTreeMap<_, _> = rows.iter().map(|r| (key(r), r)).collect();
    for (k, due_at) in &owed {
        let lateness = SignedDuration::from_hours(72);
        if *due_at + lateness < last {
            prop_assert!(
                logged.contains_key(k),
                "{:?} due {} was never recorded",
                k,
                due_at
            );
        }
    }
    for (k, row) in &logged {
        prop_assert!(owed.contains_key(k), "{:?} recorded but not owed", k);
        let due_at: Timestamp = row.due_at;
        prop_assert_eq!(due_at, owed[k], "{:?}", k);
        let cadence = config.cadence(&row.cadence).expect("cadence");
        let contact = &histories
            .iter()
            .find(|h| h.contact.id == row.contact)
            .expect("contact")
            .contact;
        let zone = contact.zone(&config.business.zone);
        let at: Timestamp = row.updated_at;
        match (row.status.as_str(), row.reason.as_deref()) {
            ("sent", _) => {
                prop_assert!(
                    cadence.opening.is_open(at, &zone),
                    "{:?} sent outside its window at {}",
                    k,
                    at
                );
                prop_assert!(
                    at >= due_at && at.duration_since(due_at) <= SignedDuration::from_hours(72),
                    "{:?} sent at {} due {}",
                    k,
                    at,
                    due_at
                );
            }
            ("skipped", Some("stale")) => {
                // Stale only if no tick found the window open while it was on time.
                let on_time = ticks.iter().any(|t| {
                    *t >= due_at
                        && t.duration_since(due_at) <= SignedDuration::from_hours(72)
                        && cadence.opening.is_open(*t, &zone)
                });
                prop_assert!(
                    !on_time,
                    "{:?} due {} went stale though a tick could send it",
                    k,
                    due_at
                );
            }
            ("skipped", Some("superseded")) => {
                // Only where a later (or as late) occurrence of the cadence went out
                // in the same tick: one message of a cadence at once.
                let later_sent = rows.iter().any(|r| {
                    r.contact == row.contact
                        && r.cadence == row.cadence
                        && r.status == SendStatus::Sent
                        && r.updated_at == row.updated_at
                        && r.due_at >= due_at
                });
                prop_assert!(later_sent, "{:?} superseded by nothing", k);
            }
            ("skipped", Some(reason)) => {
                prop_assert!(reason.starts_with("unless:"), "{:?}: {}", k, reason)
            }
            (status, reason) => prop_assert!(false, "{:?}: unexpected {} {:?}", k, status, reason),
        }
    }
    Ok(())
}
