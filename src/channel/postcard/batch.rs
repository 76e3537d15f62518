//! The files of a day's batch: the cards' PDFs and sources, `manifest.csv`, and the
//! combined `batch-DATE.pdf`. Every file is replaced atomically (temporary file, fsync,
//! rename, fsync of the directory), and the manifest and combined PDF are rewritten under
//! a lock on the day directory, so that two processes writing one day lose nothing.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::card::Card;
use super::pdf;
use crate::channel::DeliveryError;
use crate::files::{open_lock_file, write_atomic};

const MANIFEST: &str = "manifest.csv";
const BOM: &str = "\u{feff}";
const SOURCES: &str = ".cards";
const COLUMNS: [&str; 11] = [
    "send_id",
    "contact_id",
    "cadence",
    "name",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "file",
];

fn transient(what: &Path, e: io::Error) -> DeliveryError {
    DeliveryError::Transient(format!("{}: {e}", what.display()))
}

/// Writes the card's source and PDF into `day`; returns the PDF's path.
pub fn write_card(day: &Path, card: &Card, pdf: &[u8]) -> Result<PathBuf, DeliveryError> {
    let sources = day.join(SOURCES);
    fs::create_dir_all(&sources).map_err(|e| transient(&sources, e))?;
    let file = day.join(card.file_name());
    let source = sources.join(format!("{}.json", card.file_name()));
    let json =
        serde_json::to_vec_pretty(card).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    write_atomic(&source, &json).map_err(|e| transient(&source, e))?;
    write_atomic(&file, pdf).map_err(|e| transient(&file, e))?;
    Ok(file)
}

/// The PDF of send `send_id` when `day`'s manifest already lists it.
pub fn listed(day: &Path, send_id: i64) -> Result<Option<PathBuf>, DeliveryError> {
    let path = day.join(MANIFEST);
    if send_id == 0 || !path.exists() {
        return Ok(None);
    }
    let rows = read_manifest(&path).map_err(|e| transient(&path, e))?;
    Ok(rows
        .into_iter()
        .find(|row| row.first() == Some(&send_id.to_string()))
        .and_then(|row| row.get(10).map(|file| day.join(file))))
}

fn read_manifest(path: &Path) -> io::Result<Vec<Vec<String>>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::Reader::from_path(path).map_err(io::Error::other)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(io::Error::other)?;
        rows.push(record.iter().map(str::to_owned).collect::<Vec<_>>());
    }
    Ok(rows)
}

fn manifest_row(card: &Card) -> Vec<String> {
    let a = &card.address;
    [
        card.send_id.to_string(),
        card.contact.clone(),
        card.cadence.clone(),
        card.name.clone(),
        a.line1.clone(),
        a.line2.clone(),
        a.city.clone(),
        a.region.clone(),
        a.postal_code.clone(),
        a.country.clone(),
        card.file_name(),
    ]
    .to_vec()
}

/// Holds the day's lock until dropped.
fn lock(day: &Path) -> io::Result<File> {
    fs::create_dir_all(day)?;
    let file = open_lock_file(&day.join(".lock"))?;
    file.lock()?;
    Ok(file)
}

/// Adds (or replaces, for a card written again) each card's line in its day's
/// manifest. Returns the days changed.
pub fn add_to_manifests(cards: &[(PathBuf, Card)]) -> io::Result<BTreeSet<PathBuf>> {
    let days: BTreeSet<PathBuf> = cards.iter().map(|(day, _)| day.clone()).collect();
    for day in &days {
        let _lock = lock(day)?;
        let path = day.join(MANIFEST);
        let mut rows = read_manifest(&path)?;
        for (_, card) in cards.iter().filter(|(d, _)| d == day) {
            let row = manifest_row(card);
            match rows.iter_mut().find(|r| r.first() == row.first()) {
                Some(existing) => *existing = row,
                None => rows.push(row),
            }
        }
        // Print order: the order the sends were planned in.
        rows.sort_by_key(|r| r.first().and_then(|id| id.parse::<i64>().ok()));
        // A BOM, so that spreadsheets read the names as UTF-8; cells they would run as
        // formulas are defused.
        let mut writer = crate::csv_safe::Writer::new(BOM.as_bytes().to_vec());
        writer.write_record(COLUMNS).map_err(io::Error::other)?;
        for row in &rows {
            writer
                .write_record(row.iter().map(String::as_str))
                .map_err(io::Error::other)?;
        }
        write_atomic(&path, &writer.into_inner()?)?;
    }
    Ok(days)
}

fn combined_name(day: &Path) -> String {
    let date = day.file_name().unwrap_or_default().to_string_lossy();
    format!("batch-{date}.pdf")
}

/// Sets the day's combined PDF: every card of the manifest, in its order. Returns how
/// many cards it holds.
pub fn combine(day: &Path) -> io::Result<usize> {
    let _lock = lock(day)?;
    let mut cards = Vec::new();
    for row in read_manifest(&day.join(MANIFEST))? {
        let file = row.get(10).map_or("", String::as_str);
        let source = day.join(SOURCES).join(format!("{file}.json"));
        let bytes = fs::read(&source)?;
        let card: Card = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::other(format!("{}: {e}", source.display())))?;
        cards.push(card);
    }
    let bytes = pdf::render(&cards).map_err(io::Error::other)?;
    write_atomic(&day.join(combined_name(day)), &bytes)?;
    Ok(cards.len())
}

/// Whether `day` has a manifest newer than its combined PDF (or none).
pub fn combined_is_stale(day: &Path) -> bool {
    let modified = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
    match modified(day.join(MANIFEST)) {
        None => false,
        Some(manifest) => modified(day.join(combined_name(day))).is_none_or(|c| c < manifest),
    }
}

/// Removes temporary files that a process killed mid-write left in `day` (and its
/// sources); a live process's are left alone.
pub fn sweep(day: &Path) {
    for dir in [day.to_path_buf(), day.join(SOURCES)] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_suffix(".tmp") else {
                continue;
            };
            let pid = rest.rsplit('.').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}
