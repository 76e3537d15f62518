//! The running daemon's state as others see it: the engine it runs now and what
//! `/healthz` and `/metrics` report. The daemon's ticks and reloads write it; the HTTP
//! endpoint reads it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;

use crate::tick::Engine;

/// The engine in use and the last pass's report, shared by the daemon and the endpoint.
pub struct Status {
    /// Swapped whole on reload, so a tick or a request always sees one consistent set.
    engine: RwLock<Arc<Engine>>,
    report: Mutex<Report>,
}

/// What `/healthz` and `/metrics` report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub last_tick_at: Option<Timestamp>,
    pub last_tick_seconds: f64,
    /// Why the last reload was refused, until one succeeds.
    pub reload_error: Option<String>,
    /// Why sending was paused in the last tick.
    pub paused: Option<String>,
}

impl Status {
    /// The state before the first tick; also lets the HTTP router be driven without a
    /// daemon (the fuzz targets).
    pub fn new(engine: Engine) -> Status {
        Status {
            engine: RwLock::new(Arc::new(engine)),
            report: Mutex::new(Report::default()),
        }
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn report(&self) -> Report {
        self.report.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn set_engine(&self, engine: Engine) {
        if let Ok(mut current) = self.engine.write() {
            *current = Arc::new(engine);
        }
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut Report)) {
        if let Ok(mut report) = self.report.lock() {
            change(&mut report);
        }
    }
}

/// How long a tick may be silent before `/healthz` says so.
pub(crate) fn stale_after(engine: &Engine) -> Duration {
    engine.config.schedule.tick * 3
}
