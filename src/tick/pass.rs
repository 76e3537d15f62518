//! What one pass carries: the state its claiming and its deliveries share, and the
//! summary it ends with.

use std::fmt;
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The counts `tick` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sent: usize,
    pub failed: usize,
    pub retrying: usize,
    pub skipped: usize,
    pub deferred: usize,
    /// Why sending stopped as a whole in this pass (bad credentials, TLS failure).
    pub paused: Option<String>,
    /// In a dry run, each send the pass would make or skip, in the order it met them.
    pub would: Vec<Would>,
}

/// One send a dry run would make, or skip and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Would {
    /// RFC 3339 in the contact's zone.
    pub due_at: String,
    pub contact: String,
    pub cadence: String,
    pub channel: String,
    pub occurrence: String,
    /// Why it would be skipped; `None` when it would be sent.
    pub skip: Option<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent={} failed={} retrying={} skipped={} deferred={}",
            self.sent, self.failed, self.retrying, self.skipped, self.deferred
        )
    }
}

/// What one pass shares between its claiming and its deliveries.
pub(super) struct Pass {
    /// Cancelled on shutdown: take no new work, finish what is in flight, release the rest.
    stop: CancellationToken,
    /// Why sending stopped for the rest of the pass (bad credentials, TLS), once it has.
    paused: OnceLock<String>,
    /// The pass's delivery tasks; the pass ends when every one has.
    pub(super) tasks: TaskTracker,
}

impl Pass {
    pub(super) fn new(stop: CancellationToken) -> Pass {
        Pass {
            stop,
            paused: OnceLock::new(),
            tasks: TaskTracker::new(),
        }
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    pub(super) fn pause_reason(&self) -> Option<&str> {
        self.paused.get().map(String::as_str)
    }

    /// Pauses sending for the rest of the pass; true for the first reason given.
    pub(super) fn pause(&self, reason: String) -> bool {
        self.paused.set(reason).is_ok()
    }
}
