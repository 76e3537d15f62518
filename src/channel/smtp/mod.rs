//! SMTP: a small pool of lettre connections over sockets of our own (with
//! TCP_NODELAY, which lettre's own pool cannot set), each driven by a task of its own.
//! lettre's client still does every protocol step.
//!
//! Senders queue finished messages (`pool`); up to `max_connections` tasks (`task`)
//! take them in order, carry them over their connection (`exchange`: one round trip a
//! message where the server pipelines) and answer each sender with the server's reply.
//! They learn how many connections and how fast the server takes (`feedback`), and
//! stop taking work when told to shut down.

mod connect;
mod exchange;
mod feedback;
mod pool;
mod probe;
mod reply;
mod task;
mod tls;
mod url;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lettre::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DeliveryError, EmailTransport, Learned};
use crate::config::SmtpConfig;
use connect::Server;
use exchange::Outgoing;
use pool::{Item, Pool};
pub use probe::{Probe, probe};

/// SMTP with at most `max_connections` connections, each message under one deadline
/// from the moment a connection task takes it (connecting included).
pub(super) struct SmtpOutbox {
    pool: Arc<Pool>,
    queue: mpsc::Sender<Item>,
    tasks: Mutex<Tasks>,
    /// Every task the outbox spawns, so that a caller can wait for them to end.
    tracker: TaskTracker,
    /// Cancelled when the outbox is dropped, so that the shutdown watcher ends too.
    dropped: CancellationToken,
    max_connections: usize,
}

/// The tasks an outbox runs, started on first use and again if the runtime that ran
/// them has gone.
#[derive(Default)]
struct Tasks {
    workers: Vec<JoinHandle<()>>,
    /// The token given to `shutdown_on`, and the task that stops the pool when it is
    /// cancelled.
    shutdown: Option<CancellationToken>,
    watcher: Option<JoinHandle<()>>,
}

impl SmtpOutbox {
    pub(super) fn new(config: &SmtpConfig) -> anyhow::Result<SmtpOutbox> {
        let server = Server::configured(config)?;
        let max_connections = (config.max_connections as usize).max(1);
        let (queue, waiting) = mpsc::channel(64);
        Ok(SmtpOutbox {
            pool: Arc::new(Pool::new(server, config.timeout, max_connections, waiting)),
            queue,
            tasks: Mutex::new(Tasks::default()),
            tracker: TaskTracker::new(),
            dropped: CancellationToken::new(),
            max_connections,
        })
    }

    /// Starts the connection tasks (and the shutdown watcher) that are not running.
    fn start_tasks(&self) {
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        self.watch(&mut tasks);
        if self.pool.stop.is_cancelled() {
            return;
        }
        tasks.workers.retain(|w| !w.is_finished());
        while tasks.workers.len() < self.max_connections {
            let worker = self.tracker.spawn(task::work(self.pool.clone()));
            tasks.workers.push(worker);
        }
    }

    /// Starts the task that stops the pool when the shutdown token is cancelled.
    fn watch(&self, tasks: &mut Tasks) {
        let Some(shutdown) = &tasks.shutdown else {
            return;
        };
        if tasks.watcher.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        let (shutdown, stop, dropped) = (
            shutdown.clone(),
            self.pool.stop.clone(),
            self.dropped.clone(),
        );
        tasks.watcher = Some(self.tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => stop.cancel(),
                () = stop.cancelled() => {}
                () = dropped.cancelled() => {}
            }
        }));
    }
}

impl Drop for SmtpOutbox {
    fn drop(&mut self) {
        self.dropped.cancel();
    }
}

#[async_trait]
impl EmailTransport for SmtpOutbox {
    async fn send(&self, message: &Message, _name: &str) -> Result<String, DeliveryError> {
        if self.pool.stop.is_cancelled() {
            return Err(reply::stopped());
        }
        self.start_tasks();
        let (answer, outcome) = oneshot::channel();
        let item = Item {
            mail: Outgoing::new(message),
            answer,
        };
        if self.queue.send(item).await.is_err() {
            return Err(DeliveryError::Transient("SMTP connections stopped".into()));
        }
        outcome.await.unwrap_or_else(|_| {
            Err(DeliveryError::Transient(
                "the SMTP connection stopped before the server answered".into(),
            ))
        })
    }

    fn concurrency(&self) -> usize {
        self.max_connections
    }

    async fn close_idle(&self) {
        self.pool.close_idle().await;
        self.pool.feedback.end_of_pass();
    }

    fn learned(&self) -> Option<Learned> {
        Some(self.pool.feedback.learned())
    }

    fn shutdown_on(&self, token: CancellationToken) {
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        if let Some(watcher) = tasks.watcher.take() {
            watcher.abort();
        }
        tasks.shutdown = Some(token);
        // Outside a runtime nothing runs yet: the first send starts the watcher.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.watch(&mut tasks);
        }
    }

    async fn stopped(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}
