//! Delivery: compose each claimed send, hand it to its channel (at the rate limit),
//! classify the result, and record outcomes in batches. A setup failure (bad
//! credentials, TLS) pauses sending for the rest of the pass.
//!
//! Delivery runs beside the pass that feeds it: while one page's sends are composed and
//! handed over, the pass plans and claims the next page. Each send is a task of its
//! own, so that composing spreads over the runtime's threads and overlaps the waits
//! for the server; outcomes are recorded as they come, each commit taking every
//! outcome that arrived during the one before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{Engine, Job, Pass, Summary};
use crate::channel::DeliveryError;
use crate::compose::{Composed, Composer, Request};
use crate::domain::{Channel, SendStatus};
use crate::store::Outcome;

/// Sends started and not yet recorded, at most (a few more while the last ones
/// finish): a crash can resend at most these.
pub const RECORD_BATCH: usize = 64;

/// Outcomes that start a commit at once; fewer wait up to `LINGER` for company, unless
/// nothing else is being delivered.
const COMMIT_AT: usize = RECORD_BATCH / 2;
const LINGER: Duration = Duration::from_millis(50);

/// Sends under way per connection at once: one talks to the server while the others are
/// composed, ready for the connection when it is free.
const PER_CONNECTION: usize = 3;

/// The delivery half of a pass: claimed sends go in, outcomes are recorded.
pub(super) struct Deliveries {
    queue: mpsc::Sender<Job>,
    dispatcher: JoinHandle<anyhow::Result<Tally>>,
}

/// What the delivered sends came to.
#[derive(Default)]
struct Tally {
    sent: usize,
    retrying: usize,
    failed: usize,
}

/// A send's outcome, and its message packed for keeping (id, bytes) when it was sent.
type Delivered = (Outcome, Option<(i64, Vec<u8>)>);

type Recording = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

impl Deliveries {
    /// Starts delivering; `queue` sends may wait to start (the pass plans ahead by as
    /// many).
    pub(super) fn start(
        engine: &Arc<Engine>,
        pass: &Arc<Pass>,
        now: Timestamp,
        queue: usize,
    ) -> Deliveries {
        let (sender, receiver) = mpsc::channel(queue.max(1));
        let dispatcher = dispatch(engine.clone(), pass.clone(), receiver, now);
        Deliveries {
            queue: sender,
            dispatcher: pass.tasks.spawn(dispatcher),
        }
    }

    /// Queues a claimed send, waiting while the queue is full. False if delivery has
    /// stopped on an error (`finish` returns it).
    pub(super) async fn push(&self, job: Job) -> bool {
        self.queue.send(job).await.is_ok()
    }

    /// Waits until every queued send is delivered and recorded.
    pub(super) async fn finish(self, summary: &mut Summary) -> anyhow::Result<()> {
        drop(self.queue);
        let tally = match self.dispatcher.await {
            Ok(tally) => tally?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => anyhow::bail!("delivery was cancelled: {e}"),
        };
        summary.sent += tally.sent;
        summary.retrying += tally.retrying;
        summary.failed += tally.failed;
        Ok(())
    }
}

/// Runs queued sends, at most `PER_CONNECTION` per transport connection at once, and
/// records their outcomes. Once stopping, sends not yet started are left out (still
/// claimed) for the pass to release.
async fn dispatch(
    engine: Arc<Engine>,
    pass: Arc<Pass>,
    mut queue: mpsc::Receiver<Job>,
    now: Timestamp,
) -> anyhow::Result<Tally> {
    let limit = PER_CONNECTION * engine.transport.concurrency().max(1);
    let mut running = JoinSet::new();
    let mut finished: Vec<Delivered> = Vec::new();
    let mut recording: Option<Recording> = None;
    let mut recording_len = 0;
    // When the oldest unrecorded outcome came.
    let mut waiting_since = Instant::now();
    let mut open = true;
    let mut tally = Tally::default();
    loop {
        if recording.is_none()
            && !finished.is_empty()
            && (finished.len() >= COMMIT_AT
                || running.is_empty()
                || waiting_since.elapsed() >= LINGER)
        {
            let (batch, kept): (Vec<Outcome>, Vec<_>) =
                std::mem::take(&mut finished).into_iter().unzip();
            recording_len = batch.len();
            let engine = engine.clone();
            recording = Some(Box::pin(async move {
                // A card's manifest line is written before its send is recorded `sent`.
                engine.postcards.commit().await?;
                engine.store.record(&batch, now).await?;
                // Kept for the owner to read; losing them to a crash loses no send.
                let kept: Vec<(i64, Vec<u8>)> = kept.into_iter().flatten().collect();
                Ok(engine.store.keep(kept, now).await?)
            }));
        }
        if !open && running.is_empty() && recording.is_none() {
            break;
        }
        let unrecorded = running.len() + finished.len() + recording_len;
        let room = running.len() < limit && unrecorded < RECORD_BATCH;
        tokio::select! {
            job = queue.recv(), if open && room => match job {
                Some(job) if !pass.is_stopping() => {
                    let (engine, send_pass) = (engine.clone(), pass.clone());
                    running.spawn(pass.tasks.track_future(async move {
                        engine.deliver(&send_pass, job, now).await
                    }));
                }
                Some(_) => {}
                None => open = false,
            },
            Some(joined) = running.join_next() => {
                let delivered = match joined {
                    Ok(delivered) => delivered,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => anyhow::bail!("a send was cancelled: {e}"),
                };
                match delivered.0.status {
                    SendStatus::Sent => tally.sent += 1,
                    SendStatus::Retrying => tally.retrying += 1,
                    SendStatus::Failed => tally.failed += 1,
                    _ => {}
                }
                if finished.is_empty() {
                    waiting_since = Instant::now();
                }
                finished.push(delivered);
            }
            () = tokio::time::sleep_until(waiting_since + LINGER), if recording.is_none() && !finished.is_empty() => {}
            recorded = async { recording.as_mut().expect("guarded").await }, if recording.is_some() => {
                recording = None;
                recording_len = 0;
                recorded?;
            }
        }
    }
    engine.postcards.flush().await?;
    Ok(tally)
}

impl Engine {
    async fn deliver(&self, pass: &Pass, job: Job, now: Timestamp) -> Delivered {
        let row = &job.row;
        let email = row.channel == Channel::Email;
        let result = match pass.pause_reason() {
            // A pause is about the SMTP server; postcards go on.
            Some(reason) if email => Err(DeliveryError::Paused(reason.to_owned())),
            _ => {
                if email && let Some(limiter) = &self.limiter {
                    limiter.until_ready().await;
                }
                self.attempt(&job, now).await
            }
        };
        let (result, kept) = match result {
            Ok((reply, kept)) => (Ok(reply), kept),
            Err(e) => (Err(e), None),
        };
        // Counted from the first attempt, not the due time: a send that fell due during
        // downtime gets its whole retry period.
        let give_up = row.created_at.as_second() + self.config.email.give_up_after.seconds();
        let paused = matches!(result, Err(DeliveryError::Paused(_)));
        let (status, reason, reply, next_attempt_at) = match result {
            Err(DeliveryError::Paused(reason)) => {
                if pass.pause(reason.clone()) {
                    tracing::error!(reason = %crate::telemetry::redact(&reason), "sending paused: fix the SMTP settings; sends are kept and retried");
                }
                let next = now + SignedDuration::from_mins(5);
                if next.as_second() > give_up {
                    let reason = format!("gave up while sending was paused: {reason}");
                    (SendStatus::Failed, Some(reason), None, None)
                } else {
                    let reason = format!("paused: {reason}");
                    (SendStatus::Retrying, Some(reason), None, Some(next))
                }
            }
            Ok(reply) => (SendStatus::Sent, None, Some(reply), None),
            Err(DeliveryError::Permanent(reason)) => (SendStatus::Failed, Some(reason), None, None),
            Err(DeliveryError::Transient(reason)) => {
                let next = now + backoff(row.attempts + 1);
                if next.as_second() > give_up {
                    (
                        SendStatus::Failed,
                        Some(format!(
                            "gave up after {} attempts: {reason}",
                            row.attempts + 1
                        )),
                        None,
                        None,
                    )
                } else {
                    (SendStatus::Retrying, Some(reason), None, Some(next))
                }
            }
        };
        tracing::info!(contact = %row.contact, cadence = %row.cadence, occurrence = %row.occurrence,
            status = status.as_str(), reason = %crate::telemetry::redact(reason.as_deref().unwrap_or_default()), "send");
        let outcome = Outcome {
            id: row.id,
            // A pause is about the server or the setup, not this message.
            attempted: !paused,
            status,
            reason,
            reply,
            next_attempt_at,
        };
        // Only a send that went out has a message to keep.
        (outcome, kept.map(|message| (row.id, message)))
    }

    /// Composes one message and hands it to its channel: the server's reply, and the
    /// message packed for keeping when the console keeps messages.
    async fn attempt(
        &self,
        job: &Job,
        now: Timestamp,
    ) -> Result<(String, Option<Vec<u8>>), DeliveryError> {
        let row = &job.row;
        let cadence = self.config.cadence(&row.cadence).ok_or_else(|| {
            DeliveryError::Permanent(format!("cadence `{}` is no longer configured", row.cadence))
        })?;
        let composer = Composer {
            config: &self.config,
            templates: &self.templates,
            signer: self.signer.as_ref(),
            dkim: self.dkim.as_ref(),
        };
        let request = Request {
            cadence,
            contact: &job.history.contact,
            events: &job.history.events,
            event_id: row.event_id.as_deref(),
            occurrence: &row.occurrence,
            at: row.created_at,
            send_id: row.id,
            message_id: &row.message_id,
        };
        let composed = composer
            .compose(&request)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        match composed {
            Composed::Card(card) => Ok((self.postcards.write(*card, now).await?, None)),
            Composed::Email(message, kept) => {
                let reply = self.transport.send(&message, &row.key().digest()).await?;
                Ok((reply, self.keeps_messages().then(|| kept.pack())))
            }
        }
    }
}

/// Exponential backoff with jitter: about 5 minutes, doubling per attempt, at most 6 hours.
fn backoff(attempt: i64) -> SignedDuration {
    let base = 300i64
        .saturating_mul(1 << (attempt - 1).clamp(0, 10))
        .min(6 * 3600);
    let jitter = fastrand::i64(0..=base / 5);
    SignedDuration::from_secs(base - base / 10 + jitter)
}
