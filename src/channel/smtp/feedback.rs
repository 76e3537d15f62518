//! What the SMTP connections learn from the server they send to, in the manner of
//! Postfix's destination concurrency feedback: how many connections it accepts (a
//! window that halves to what works when a connection is refused and grows by one
//! after a run of deliveries), and how fast it takes mail (a pause and a spacing
//! between messages, learned from its rate-limit replies). A refusal that is about
//! the client is never charged to a message: the message waits and goes out on a
//! connection that works, at a pace the server takes.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::channel::Learned;

/// Refusals in a row, with no connection open, before sending pauses for the pass.
const LONELY_REFUSALS: u32 = 3;
/// The first pause after a rate-limit reply; it doubles while they go on.
const FIRST_PAUSE: Duration = Duration::from_secs(10);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// Deliveries since the last refusal that say how fast the server takes mail; fewer
/// mean the server's counting window and ours were out of step.
const RATE_SAMPLE: usize = 20;
/// Deliveries per allowed connection before one more connection is tried.
const GROW_AFTER: usize = 10;

/// Shared by the connection tasks of one outbox.
pub(super) struct Feedback {
    /// `email.smtp.max_connections`: the window never grows past it.
    max: usize,
    state: Mutex<State>,
    /// Woken when a connection closes or the window grows.
    changed: Notify,
}

struct State {
    /// Connections the server is believed to accept at once.
    window: usize,
    /// Connections open or being opened.
    open: usize,
    /// Deliveries since the window last changed.
    delivered: usize,
    /// Refusals in a row while no connection was open.
    lonely: u32,
    /// Why no connection could be had at all, until the end of the pass.
    down: Option<String>,
    /// No message starts before this.
    resume_at: Instant,
    /// The learned spacing between message starts (zero: as fast as the server goes).
    gap: Duration,
    /// When the next message may start, at `gap` from the last.
    next_start: Instant,
    /// The current pause after a rate-limit reply.
    pause: Duration,
    /// Deliveries since the last rate-limit reply, when the first of them was.
    burst: (usize, Option<Instant>),
}

/// What a connection task does after its server refused a connection.
pub(super) enum AfterRefusal {
    /// Other connections work: wait for one of them.
    Wait,
    /// None is open: try again after this long.
    RetryAfter(Duration),
    /// No connection can be had: sending pauses for the pass.
    Down(String),
}

/// A place in the window, held by an open connection; given back when it drops.
pub(super) struct Slot(Arc<Feedback>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.lock().open -= 1;
        self.0.changed.notify_waiters();
    }
}

impl Feedback {
    pub(super) fn new(max: usize) -> Feedback {
        let now = Instant::now();
        Feedback {
            max,
            state: Mutex::new(State {
                window: max,
                open: 0,
                delivered: 0,
                lonely: 0,
                down: None,
                resume_at: now,
                gap: Duration::ZERO,
                next_start: now,
                pause: FIRST_PAUSE,
                burst: (0, None),
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more connection, when the window has room.
    pub(super) fn try_open(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.lock();
        (state.open < state.window).then(|| {
            state.open += 1;
            Slot(self.clone())
        })
    }

    /// Waits until a connection closes or the window grows (or a moment passes).
    pub(super) async fn changed(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(200), self.changed.notified()).await;
    }

    /// Why sending is down for this pass, if it is.
    pub(super) fn down(&self) -> Option<String> {
        self.lock().down.clone()
    }

    pub(super) fn connected(&self) {
        self.lock().lonely = 0;
    }

    /// The server refused a connection (at connect, at its greeting, or with
    /// "too many connections"): the window shrinks to the connections that work.
    pub(super) fn refused(&self, reason: &str) -> AfterRefusal {
        let mut state = self.lock();
        let window = state.open.max(1);
        if window < state.window {
            tracing::warn!(
                connections = window,
                reason = %crate::telemetry::redact(reason),
                "the SMTP server refused a connection; using fewer"
            );
        }
        state.window = window;
        state.delivered = 0;
        if state.open > 0 {
            return AfterRefusal::Wait;
        }
        state.lonely += 1;
        if state.lonely > LONELY_REFUSALS {
            let why = format!("no connection to the SMTP server can be had: {reason}");
            state.down = Some(why.clone());
            return AfterRefusal::Down(why);
        }
        AfterRefusal::RetryAfter(Duration::from_secs(1 << (state.lonely - 1)))
    }

    /// A message was delivered: after a run of them the window grows by one, and the
    /// spacing learned from a rate limit shrinks a little.
    pub(super) fn delivered(&self) {
        let mut state = self.lock();
        state.delivered += 1;
        let (count, first) = state.burst;
        state.burst = (count + 1, first.or_else(|| Some(Instant::now())));
        state.gap = state.gap.mul_f64(0.99);
        if state.delivered >= state.window * GROW_AFTER && state.window < self.max {
            state.window += 1;
            state.delivered = 0;
            drop(state);
            self.changed.notify_waiters();
        } else if state.gap < Duration::from_millis(1) {
            state.gap = Duration::ZERO;
        }
    }

    /// The server refused a message for its rate: every connection pauses, then
    /// messages go out spaced so that the deliveries it took before fill the pause.
    pub(super) fn rate_limited(&self, reply: &str) {
        let mut state = self.lock();
        let now = Instant::now();
        if now < state.resume_at {
            // Another connection's refusal already set this pause.
            return;
        }
        let pause = state.pause;
        let (count, _) = state.burst;
        // A short run says nothing of the rate: the spacing stays, and the pause grows.
        let spread = if count >= RATE_SAMPLE {
            pause.div_f64(count as f64 * 0.9)
        } else {
            state.gap.max(Duration::from_millis(100))
        };
        state.gap = state.gap.max(spread).min(LONGEST_PAUSE);
        state.resume_at = now + pause;
        state.next_start = state.resume_at;
        state.pause = (pause * 2).min(LONGEST_PAUSE);
        state.burst = (0, None);
        tracing::warn!(
            pause_s = pause.as_secs(),
            gap_ms = state.gap.as_millis() as u64,
            reply = %crate::telemetry::redact(reply),
            "the SMTP server limits the sending rate: pausing, then sending more slowly"
        );
    }

    /// Waits until a message may start: after a pause, and at the learned spacing.
    pub(super) async fn pace(&self) {
        let at = {
            let mut state = self.lock();
            let now = Instant::now();
            if state.burst.0 >= RATE_SAMPLE && state.pause > FIRST_PAUSE {
                // A run of deliveries since the last refusal: the next pause starts short.
                state.pause = FIRST_PAUSE;
            }
            let at = state.next_start.max(state.resume_at).max(now);
            state.next_start = at + state.gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Whether a message may start now without waiting (to pipeline it behind another).
    pub(super) fn may_start_now(&self) -> bool {
        let state = self.lock();
        state.gap.is_zero() && Instant::now() >= state.resume_at
    }

    /// The end of a pass: what was learned of the server stays; a down server is tried
    /// again at the next pass.
    pub(super) fn end_of_pass(&self) {
        let mut state = self.lock();
        state.down = None;
        state.lonely = 0;
    }

    pub(super) fn learned(&self) -> Learned {
        let state = self.lock();
        Learned {
            connections: state.window,
            gap: state.gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_window_shrinks_to_what_works_and_grows_back() {
        let feedback = Arc::new(Feedback::new(4));
        let a = feedback.try_open().expect("slot");
        let b = feedback.try_open().expect("slot");
        let c = feedback.try_open().expect("slot");
        drop(c);
        // The third was refused: two work.
        assert!(matches!(feedback.refused("421"), AfterRefusal::Wait));
        assert_eq!(feedback.learned().connections, 2);
        assert!(feedback.try_open().is_none());
        for _ in 0..2 * GROW_AFTER {
            feedback.delivered();
        }
        assert_eq!(feedback.learned().connections, 3);
        assert!(feedback.try_open().is_some());
        drop((a, b));
    }

    #[tokio::test]
    async fn with_no_connection_at_all_sending_goes_down_after_a_few_tries() {
        let feedback = Arc::new(Feedback::new(2));
        for _ in 0..LONELY_REFUSALS {
            assert!(matches!(
                feedback.refused("connection refused"),
                AfterRefusal::RetryAfter(_)
            ));
        }
        assert!(matches!(feedback.refused("x"), AfterRefusal::Down(_)));
        assert!(feedback.down().is_some());
        feedback.end_of_pass();
        assert!(feedback.down().is_none());
    }

    #[tokio::test]
    async fn a_rate_limit_pauses_and_spaces_what_follows() {
        let feedback = Feedback::new(2);
        for _ in 0..100 {
            feedback.delivered();
        }
        feedback.rate_limited("450 4.7.1 too much mail");
        let learned = feedback.learned();
        // 100 deliveries spread over the 10 s pause.
        assert!(learned.gap >= Duration::from_millis(100), "{learned:?}");
        assert!(!feedback.may_start_now());
    }

    /// A refusal just after a pause (the server's window began later than ours) must
    /// not space messages seconds apart.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_right_after_a_pause_keeps_the_spacing() {
        let feedback = Feedback::new(2);
        for _ in 0..100 {
            feedback.delivered();
        }
        feedback.rate_limited("450 4.7.1 too much mail");
        let spaced = feedback.learned().gap;
        feedback.pace().await;
        feedback.delivered();
        feedback.rate_limited("450 4.7.1 too much mail");
        let learned = feedback.learned();
        assert!(learned.gap <= spaced, "{learned:?} after {spaced:?}");
        // The second pause is longer than the first.
        let start = Instant::now();
        feedback.pace().await;
        assert!(start.elapsed() >= 2 * FIRST_PAUSE, "{:?}", start.elapsed());
    }
}
