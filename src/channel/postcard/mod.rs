//! The postcard channel: each card becomes a print-ready PDF in the day's batch
//! directory under `postcards.dir`, listed in the day's `manifest.csv`, and the day's
//! cards are gathered into one combined PDF for the print shop.
//!
//! Order of writes, each file replaced atomically (temporary file, fsync, rename):
//! the card's source (`.cards/NAME.json`) and PDF when it is delivered; its manifest
//! line before its send is recorded `sent` (`commit`); the combined PDF at the end of
//! the pass (`flush`), and again at the next pass if a crash came first (`repair`).
//! A crash therefore leaves at worst a PDF without its manifest line, whose send is
//! still `pending` and is written again, to the same file and line, on restart.

mod back;
mod batch;
mod card;
mod front;
pub mod pdf;
mod picture;
mod proof;
mod svg;
mod text;
pub mod zones;

pub use card::{Card, Logo};
pub use picture::logo as check_logo;
pub use proof::proofs;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::DeliveryError;

/// Writes postcards into daily batches.
pub struct PostcardOutbox {
    dir: PathBuf,
    /// Batches are the business's days.
    zone: TimeZone,
    /// Cards whose PDF is written and whose manifest line is not yet.
    written: Mutex<Vec<(PathBuf, Card)>>,
    /// Day directories whose combined PDF is behind their manifest.
    stale: Mutex<BTreeSet<PathBuf>>,
}

impl PostcardOutbox {
    pub fn new(dir: PathBuf, zone: TimeZone) -> PostcardOutbox {
        PostcardOutbox {
            dir,
            zone,
            written: Mutex::new(Vec::new()),
            stale: Mutex::new(BTreeSet::new()),
        }
    }

    /// The batch directory of the business's day at `now`.
    pub fn day_dir(&self, now: Timestamp) -> PathBuf {
        let date = now.to_zoned(self.zone.clone()).date();
        self.dir.join(date.to_string())
    }

    /// Writes the card's PDF durably and returns where it is. Its manifest line is
    /// written by the next `commit`. A card already in the previous day's batch (its
    /// send was not recorded before a crash) is not printed twice.
    pub async fn write(&self, card: Card, now: Timestamp) -> Result<String, DeliveryError> {
        let day = self.day_dir(now);
        let yesterday = self.day_dir(now - jiff::SignedDuration::from_hours(24));
        let (day, card, file) = tokio::task::spawn_blocking(move || {
            if let Some(file) = batch::listed(&yesterday, card.send_id)? {
                return Ok((None, card, file));
            }
            let pdf = pdf::render(std::slice::from_ref(&card)).map_err(DeliveryError::Permanent)?;
            let file = batch::write_card(&day, &card, &pdf)?;
            Ok::<_, DeliveryError>((Some(day), card, file))
        })
        .await
        .map_err(|e| DeliveryError::Transient(format!("postcard writer stopped: {e}")))??;
        if let Some(day) = day
            && let Ok(mut written) = self.written.lock()
        {
            written.push((day, card));
        }
        Ok(file.display().to_string())
    }

    /// Adds the manifest lines of the cards written since the last commit: one atomic
    /// rewrite of each day's manifest. Runs before those sends are recorded `sent`.
    pub async fn commit(&self) -> std::io::Result<()> {
        let cards = match self.written.lock() {
            Ok(mut written) => std::mem::take(&mut *written),
            Err(_) => return Err(std::io::Error::other("postcard outbox poisoned")),
        };
        if cards.is_empty() {
            return Ok(());
        }
        let days = tokio::task::spawn_blocking(move || batch::add_to_manifests(&cards))
            .await
            .map_err(std::io::Error::other)??;
        if let Ok(mut stale) = self.stale.lock() {
            stale.extend(days);
        }
        Ok(())
    }

    /// Sets the combined PDF of every day whose manifest changed in this pass.
    pub async fn flush(&self) -> std::io::Result<()> {
        let days = match self.stale.lock() {
            Ok(mut stale) => std::mem::take(&mut *stale),
            Err(_) => return Err(std::io::Error::other("postcard outbox poisoned")),
        };
        tokio::task::spawn_blocking(move || {
            days.iter()
                .try_for_each(|day| batch::combine(day).map(|_| ()))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Finds the recent days whose combined PDF a crash left behind their manifest, so
    /// that the next `flush` sets them again, and removes the temporary files of
    /// writes a crash cut short.
    pub async fn repair(&self, now: Timestamp) {
        let days: Vec<PathBuf> = (0..3)
            .map(|n| self.day_dir(now - jiff::SignedDuration::from_hours(24 * n)))
            .filter(|day| day.exists())
            .inspect(|day| batch::sweep(day))
            .filter(|day| batch::combined_is_stale(day))
            .collect();
        if let Ok(mut stale) = self.stale.lock() {
            stale.extend(days);
        }
    }
}
