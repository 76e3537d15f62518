//! What the connection tasks share: the queue of messages, the idle connections, the
//! window of connections the server takes (`feedback`), and when a message starts
//! again on another connection instead of failing.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::connect::{Connection, Opening, Server};
use super::exchange::Outgoing;
use super::feedback::{AfterRefusal, Feedback};
use super::reply::{Failed, stopped};
use crate::channel::DeliveryError;

/// A connection idle longer than this is closed instead of reused (servers drop idle
/// clients after a few minutes; Postfix after 300 s).
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A connection idle longer than this is checked with NOOP before it carries a message.
/// Under load connections come back within milliseconds and skip the round trip.
const CHECK_AFTER: Duration = Duration::from_secs(2);
/// Times a message starts again on another connection before its failure is its own.
const MAX_RESTARTS: u8 = 3;
/// Times a message waits out the server's rate limit before its refusal is its own.
const MAX_RATE_RESTARTS: u8 = 12;

/// What the connection tasks share.
pub(super) struct Pool {
    pub(super) server: Server,
    pub(super) timeout: Duration,
    /// How many connections the server takes, and how fast.
    pub(super) feedback: Arc<Feedback>,
    idle: Mutex<Vec<(Connection, Instant)>>,
    /// Messages waiting for a connection. A task without work holds the lock while it
    /// waits, so a busy task finds the lock free only when every task is busy.
    waiting: tokio::sync::Mutex<mpsc::Receiver<Item>>,
    /// Cancelled when sending shuts down: each task finishes the message it has under
    /// way, then closes its connection instead of taking another.
    pub(super) stop: CancellationToken,
}

/// A message waiting for a connection, and where its outcome goes.
pub(super) struct Item {
    pub(super) mail: Outgoing,
    pub(super) answer: oneshot::Sender<Result<String, DeliveryError>>,
}

/// A message's outcome, for its sender.
pub(super) type Answer = (
    oneshot::Sender<Result<String, DeliveryError>>,
    Result<String, DeliveryError>,
);

/// A message taken by a connection task, and when its time is up.
pub(super) struct Taken {
    pub(super) item: Item,
    pub(super) deadline: Instant,
    /// Times the message started again because of its connection, not of itself.
    restarts: u8,
}

impl Taken {
    fn new(item: Item, timeout: Duration) -> Taken {
        Taken {
            item,
            deadline: Instant::now() + timeout,
            restarts: 0,
        }
    }

    /// The message with its deadline counted from now, as it starts.
    pub(super) fn starting(self, timeout: Duration) -> Taken {
        Taken {
            deadline: Instant::now() + timeout,
            ..self
        }
    }

    /// The message again, to start over (its deadline is set anew when it starts).
    fn again(self) -> Taken {
        Taken {
            restarts: self.restarts + 1,
            ..self
        }
    }
}

impl Pool {
    pub(super) fn new(
        server: Server,
        timeout: Duration,
        max_connections: usize,
        waiting: mpsc::Receiver<Item>,
    ) -> Pool {
        Pool {
            server,
            timeout,
            feedback: Arc::new(Feedback::new(max_connections)),
            idle: Mutex::new(Vec::new()),
            waiting: tokio::sync::Mutex::new(waiting),
            stop: CancellationToken::new(),
        }
    }

    /// The next queued message, once there is one; None when the outbox is dropped.
    pub(super) async fn next(&self) -> Option<Taken> {
        let item = self.waiting.lock().await.recv().await?;
        Some(Taken::new(item, self.timeout))
    }

    /// A queued message, if one is waiting, every connection task is busy, and sending
    /// goes on.
    pub(super) fn ready(&self) -> Option<Taken> {
        if self.stop.is_cancelled() {
            return None;
        }
        let item = self.waiting.try_lock().ok()?.try_recv().ok()?;
        Some(Taken::new(item, self.timeout))
    }

    /// Runs `wait` unless sending shuts down first; false if it did.
    pub(super) async fn unless_stopped(&self, wait: impl Future<Output = ()>) -> bool {
        tokio::select! {
            biased;
            () = wait => true,
            () = self.stop.cancelled() => false,
        }
    }

    /// Keeps a connection that finished its messages for the next ones.
    pub(super) fn park(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((connection, Instant::now()));
        }
    }

    /// Closes the idle connections with QUIT; a server that does not answer it must
    /// not hold the caller up.
    pub(super) async fn close_idle(&self) {
        let idle = self
            .idle
            .lock()
            .map(|mut idle| std::mem::take(&mut *idle))
            .unwrap_or_default();
        for (mut connection, _) in idle {
            let _ = tokio::time::timeout(self.timeout, connection.smtp.quit()).await;
        }
    }

    /// After a shutdown: the queue takes no more messages, those in it are answered as
    /// not sent, and the idle connections are closed.
    pub(super) async fn wind_down(&self) {
        {
            let mut waiting = self.waiting.lock().await;
            waiting.close();
            while let Ok(item) = waiting.try_recv() {
                let _ = item.answer.send(Err(stopped()));
            }
        }
        self.close_idle().await;
    }

    /// A refusal of `taken` before or after its data: a rate limit or a lost
    /// connection starts it again (after the server's pause), and it is returned;
    /// anything else is the message's own outcome.
    pub(super) fn restart(
        &self,
        taken: Taken,
        failed: Failed,
        answers: &mut Vec<Answer>,
    ) -> Option<Taken> {
        let waiting = !taken.item.answer.is_closed();
        if waiting && failed.rate_limit && taken.restarts < MAX_RATE_RESTARTS {
            self.feedback.rate_limited(&failed.error.to_string());
            return Some(taken.again());
        }
        if waiting && failed.connection_lost && taken.restarts < MAX_RESTARTS {
            return Some(taken.again());
        }
        answers.push((taken.item.answer, Err(failed.error)));
        None
    }

    /// The most recently used idle connection that still works, or a new one when the
    /// server's window has room. A refused connection shrinks the window and the
    /// message waits for one that works; when none can be had, sending pauses.
    pub(super) async fn checkout(&self) -> Result<Connection, DeliveryError> {
        loop {
            if self.stop.is_cancelled() {
                return Err(stopped());
            }
            if let Some(reason) = self.feedback.down() {
                return Err(DeliveryError::Paused(reason));
            }
            if let Some(connection) = self.idle_connection().await {
                return Ok(connection);
            }
            let Some(slot) = self.feedback.try_open() else {
                self.unless_stopped(self.feedback.changed()).await;
                continue;
            };
            let opened =
                tokio::time::timeout(self.timeout, self.server.connect(self.timeout, slot))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Opening::Refused(format!(
                            "no greeting within {}s",
                            self.timeout.as_secs()
                        )))
                    });
            match opened {
                Ok(connection) => {
                    self.feedback.connected();
                    return Ok(connection);
                }
                Err(Opening::Failed(error)) => return Err(error),
                Err(Opening::Refused(reason)) => match self.feedback.refused(&reason) {
                    AfterRefusal::Wait => {
                        self.unless_stopped(self.feedback.changed()).await;
                    }
                    AfterRefusal::RetryAfter(wait) => {
                        self.unless_stopped(tokio::time::sleep(wait)).await;
                    }
                    AfterRefusal::Down(reason) => return Err(DeliveryError::Paused(reason)),
                },
            }
        }
    }

    /// The most recently used idle connection that still works.
    async fn idle_connection(&self) -> Option<Connection> {
        loop {
            let (mut connection, since) = self.idle.lock().ok().and_then(|mut idle| idle.pop())?;
            let idle_for = since.elapsed();
            let check = Instant::now() + self.timeout;
            if idle_for < CHECK_AFTER
                || (idle_for < IDLE_LIMIT
                    && tokio::time::timeout_at(check.into(), connection.smtp.test_connected())
                        .await
                        .unwrap_or(false))
            {
                return Some(connection);
            }
            let _ = tokio::time::timeout_at(check.into(), connection.smtp.abort()).await;
        }
    }
}
