//! The bad-input corpus: hostile files a business could hand tickler, each with the
//! errors it must produce. Every case under `tests/bad_input/NN-name/` holds `files/`
//! (laid over the standard workspace of `helpers`) and `expect`, lines of `key: value`:
//!
//! - `setup: ARGS` runs first and must succeed; `run: ARGS` is the command under test
//!   (`--config tickler.yaml` is added unless ARGS gives its own);
//! - `exit: N` is its exit status;
//! - `error: TEXT`: one stderr line starts with `error: TEXT`, and there are exactly as
//!   many `error:` lines as these; every other stderr line is empty;
//! - `stdout: TEXT`: stdout contains TEXT;
//! - `contacts: ID...` / `events: CONTACT/ID...`: exactly these are stored afterwards,
//!   so a rejected row leaves nothing behind; `field: ID NAME=VALUE` and
//!   `event-field: CONTACT/ID NAME=VALUE` check a stored value;
//! - `remove: PATH` deletes a file of the standard workspace first.
//!
//! Whatever the case, the binary must not panic (exit 101) or hang.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tickler::domain::History;

use crate::helpers::{Run, Workspace, copy_dir, tickler_in};

#[derive(Default)]
struct Expect {
    setup: Vec<String>,
    run: String,
    exit: i32,
    errors: Vec<String>,
    stdout: Vec<String>,
    contacts: Option<BTreeSet<String>>,
    events: Option<BTreeSet<String>>,
    fields: Vec<(String, String, String)>,
    event_fields: Vec<(String, String, String)>,
    remove: Vec<String>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input")
}

fn parse_expect(text: &str) -> Result<Expect, String> {
    let mut e = Expect::default();
    let set = |v: &str| Some(v.split_whitespace().map(str::to_owned).collect());
    let field = |v: &str| -> Result<(String, String, String), String> {
        let (id, rest) = v
            .split_once(' ')
            .ok_or(format!("`{v}`: want ID NAME=VALUE"))?;
        let (name, value) = rest
            .split_once('=')
            .ok_or(format!("`{v}`: want NAME=VALUE"))?;
        Ok((id.to_owned(), name.to_owned(), value.to_owned()))
    };
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line.split_once(':').ok_or(format!("`{line}`: no key"))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        match key {
            "setup" => e.setup.push(value.to_owned()),
            "run" => e.run = value.to_owned(),
            "exit" => e.exit = value.parse().map_err(|_| format!("exit: `{value}`"))?,
            "error" => e.errors.push(value.to_owned()),
            "stdout" => e.stdout.push(value.to_owned()),
            "contacts" => e.contacts = set(value),
            "events" => e.events = set(value),
            "field" => e.fields.push(field(value)?),
            "event-field" => e.event_fields.push(field(value)?),
            "remove" => e.remove.push(value.to_owned()),
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    if e.run.is_empty() {
        return Err("no `run:` line".into());
    }
    Ok(e)
}

fn run(ws: &Workspace, args: &str) -> Run {
    let args: Vec<&str> = args.split_whitespace().collect();
    let global: &[&str] = if args.first() == Some(&"--config") {
        &[]
    } else {
        &["--config", "tickler.yaml"]
    };
    tickler_in(ws.dir.path(), global, &args, None)
}

/// Everything stored, read back through the library's own store.
fn stored(ws: &Workspace) -> Vec<History> {
    let url = format!("sqlite://{}", ws.path("state/tickler.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = tickler::store::open(&url).await.expect("open the store");
        let ids = store.contact_ids("", 10_000).await.expect("contact ids");
        store.history(&ids).await.expect("history")
    })
}

fn contact_value(h: &History, name: &str) -> Option<String> {
    let c = &h.contact;
    Some(match name {
        "first_name" => c.first_name.clone(),
        "last_name" => c.last_name.clone(),
        "email" => c.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        "timezone" => c.timezone.clone().unwrap_or_default(),
        other => c.fields.map().ok()?.remove(other)?,
    })
}

/// Runs one case; returns what is wrong with the outcome.
fn check_case(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("expect")).map_err(|e| format!("expect: {e}"))?;
    let expect = parse_expect(&text)?;
    let ws = Workspace::new(None);
    for path in &expect.remove {
        std::fs::remove_file(ws.path(path)).map_err(|e| format!("remove {path}: {e}"))?;
    }
    if dir.join("files").is_dir() {
        copy_dir(&dir.join("files"), ws.dir.path());
    }
    for args in &expect.setup {
        let r = run(&ws, args);
        if r.code != 0 {
            return Err(format!("setup `{args}` failed:\n{}", r.stderr));
        }
    }
    let r = run(&ws, &expect.run);
    let shown = format!(
        "exit {}\nstdout:\n{}stderr:\n{}",
        r.code, r.stdout, r.stderr
    );
    let mut problems = Vec::new();
    if r.code != expect.exit {
        problems.push(format!("exit {} instead of {}", r.code, expect.exit));
    }
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if let Some(stray) = lines.iter().find(|l| !l.starts_with("error: ")) {
        problems.push(format!(
            "a stderr line that is not an `error:` line: {stray:?}"
        ));
    }
    if lines.len() != expect.errors.len() {
        problems.push(format!(
            "{} error lines instead of {}",
            lines.len(),
            expect.errors.len()
        ));
    }
    for want in &expect.errors {
        let prefix = format!("error: {want}");
        if !lines.iter().any(|l| l.starts_with(&prefix)) {
            problems.push(format!("no line starting {prefix:?}"));
        }
    }
    for want in &expect.stdout {
        if !r.stdout.contains(want.as_str()) {
            problems.push(format!("stdout lacks {want:?}"));
        }
    }
    let needs_store = expect.contacts.is_some()
        || expect.events.is_some()
        || !expect.fields.is_empty()
        || !expect.event_fields.is_empty();
    if needs_store {
        let histories = stored(&ws);
        let contacts: BTreeSet<String> = histories.iter().map(|h| h.contact.id.clone()).collect();
        if let Some(want) = expect.contacts.as_ref().filter(|w| **w != contacts) {
            problems.push(format!("stored contacts {contacts:?} instead of {want:?}"));
        }
        let events: BTreeSet<String> = histories
            .iter()
            .flat_map(|h| {
                h.events
                    .iter()
                    .map(|e| format!("{}/{}", e.contact_id, e.id))
            })
            .collect();
        if let Some(want) = expect.events.as_ref().filter(|w| **w != events) {
            problems.push(format!("stored events {events:?} instead of {want:?}"));
        }
        for (id, name, value) in &expect.fields {
            let got = histories
                .iter()
                .find(|h| &h.contact.id == id)
                .and_then(|h| contact_value(h, name));
            if got.as_deref() != Some(value.as_str()) {
                problems.push(format!("contact {id} {name} is {got:?}, not {value:?}"));
            }
        }
        for (key, name, value) in &expect.event_fields {
            let got = histories
                .iter()
                .flat_map(|h| &h.events)
                .find(|e| &format!("{}/{}", e.contact_id, e.id) == key)
                .and_then(|e| e.fields.map().ok()?.remove(name));
            if got.as_deref() != Some(value.as_str()) {
                problems.push(format!("event {key} {name} is {got:?}, not {value:?}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{shown}", problems.join("\n")))
    }
}

#[test]
fn every_bad_input_gets_its_error() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus())
        .expect("tests/bad_input")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    // Cases are independent; two threads halve the wait without crowding the machine.
    let run_all = |part: &[&PathBuf]| -> Vec<String> {
        part.iter()
            .filter_map(|dir| {
                let name = dir.file_name().unwrap_or_default().to_string_lossy();
                check_case(dir).err().map(|e| format!("--- {name}: {e}"))
            })
            .collect()
    };
    let (odd, even): (Vec<&PathBuf>, Vec<&PathBuf>) = cases
        .iter()
        .partition(|dir| cases.iter().position(|c| c == *dir).unwrap_or(0) % 2 == 1);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let other = scope.spawn(|| run_all(&odd));
        let mut failures = run_all(&even);
        failures.extend(other.join().expect("no panic"));
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Peak resident memory of a running process, from /proc (kB).
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A 200 MB export (made here, never committed) imports whole, with memory far below
/// the file's size: the import streams it instead of reading it in. The rows carry a
/// long quoted note with commas and quotes in it, as exports of notes fields do.
#[test]
fn a_200_mb_contacts_file_imports_in_bounded_memory() {
    use std::io::Write;
    const ROWS: usize = 220_000;
    // SQLite's import page cache (32 MB) and a few chunks of rows in flight: about
    // 120 MB, whatever the file's size. Holding the file would take more than the file.
    const LIMIT_KB: u64 = 160 * 1024;
    let ws = Workspace::new(None);
    let path = ws.path("big.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(
        out,
        "id,first_name,last_name,email,address_line1,city,postal_code,tags,note"
    )
    .expect("write");
    let pad = "tires rotated, brakes checked, wipers replaced; ".repeat(17);
    for i in 0..ROWS {
        writeln!(
            out,
            "C{i:08},Firstname{i},Lastname,c{i}@example.com,{i} Long Street Name,Troy,12180,customer,\"Visit {i}, \"\"90-day\"\" service: {pad}\""
        )
        .expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    let size = std::fs::metadata(&path).expect("size").len();
    assert!(size > 200_000_000, "{size} bytes");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tickler"))
        .args(["--config", "tickler.yaml", "import", "contacts", "big.csv"])
        .current_dir(ws.dir.path())
        // Files, not pipes: nothing reads a pipe until the end, and a full one would
        // stop the import.
        .stdout(std::fs::File::create(ws.path("out.txt")).expect("out"))
        .stderr(std::fs::File::create(ws.path("err.txt")).expect("err"))
        .spawn()
        .expect("tickler starts");
    let pid = child.id();
    let mut peak = 0;
    let started = std::time::Instant::now();
    // VmHWM only grows, so the last reading before exit is the peak (within 20 ms).
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(peak_kb(pid).unwrap_or(0));
        if started.elapsed() > std::time::Duration::from_secs(900) {
            let _ = child.kill();
            panic!("the import did not finish in 15 minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().expect("exit");
    let stdout = std::fs::read_to_string(ws.path("out.txt")).expect("out");
    let stderr = std::fs::read_to_string(ws.path("err.txt")).expect("err");
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("imported {ROWS} contacts")),
        "{stdout}"
    );
    assert!(
        peak < LIMIT_KB,
        "peak memory {} MB for a {} MB file (limit {} MB)",
        peak / 1024,
        size / 1_000_000,
        LIMIT_KB / 1024
    );
}
