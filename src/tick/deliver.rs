//! Delivery: render each claimed send, hand it to the transport (at the rate limit),
//! classify the result, and record outcomes in small batches. A setup failure (bad
//! credentials, TLS) pauses sending for the rest of the pass.

use futures_util::StreamExt as _;
use jiff::{SignedDuration, Timestamp};

use super::{Engine, Job, Summary};
use crate::channel::DeliveryError;
use crate::channel::email::{self, Envelope};
use crate::channel::postcard;
use crate::domain::{Channel, SendStatus};
use crate::render::MessageData;
use crate::store::Outcome;
use crate::unsubscribe;

/// At most this many delivery outcomes are written in one commit.
pub const RECORD_BATCH: usize = 64;

impl Engine {
    pub(super) async fn deliver_all(
        &self,
        jobs: Vec<Job>,
        now: Timestamp,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let concurrency = self.transport.concurrency().max(1);
        // Outcomes are recorded as they come, in batches of what is ready: one commit
        // for many sends under load, and few unrecorded sends at any moment. A crash
        // can resend at most the sends in flight plus one unrecorded batch.
        // Once stopping, sends not yet started are left out (still claimed) and their
        // claims are released below, so that the next start takes them at once.
        let mut outcomes = std::pin::pin!(
            futures_util::stream::iter(jobs)
                .filter(|_| std::future::ready(!self.is_stopping()))
                .map(|job| self.deliver(job, now))
                .buffer_unordered(concurrency)
                .ready_chunks(RECORD_BATCH)
        );
        while let Some(batch) = outcomes.next().await {
            for o in &batch {
                match o.status {
                    SendStatus::Sent => summary.sent += 1,
                    SendStatus::Retrying => summary.retrying += 1,
                    SendStatus::Failed => summary.failed += 1,
                    _ => {}
                }
            }
            // A card's manifest line is written before its send is recorded `sent`.
            self.postcards.commit().await?;
            self.store.record(&batch, now).await?;
        }
        self.postcards.flush().await?;
        if self.is_stopping() {
            self.store.release_leases(&self.owner).await?;
        }
        Ok(())
    }

    async fn deliver(&self, job: Job, now: Timestamp) -> Outcome {
        let row = &job.row;
        let email = row.channel == Channel::Email.as_str();
        let result = match self.pause_reason() {
            // A pause is about the SMTP server; postcards go on.
            Some(reason) if email => Err(DeliveryError::Paused(reason)),
            _ => {
                if email && let Some(limiter) = &self.limiter {
                    limiter.until_ready().await;
                }
                self.attempt(&job, now).await
            }
        };
        let (status, reason, reply, next_attempt_at) = match result {
            Err(DeliveryError::Paused(reason)) => {
                if let Ok(mut paused) = self.paused.lock()
                    && paused.is_none()
                {
                    tracing::error!(reason = %reason, "sending paused: fix the SMTP settings; sends are kept and retried");
                    *paused = Some(reason.clone());
                }
                let next = now + SignedDuration::from_mins(5);
                (
                    SendStatus::Retrying,
                    Some(format!("paused: {reason}")),
                    None,
                    Some(next),
                )
            }
            Ok(reply) => (SendStatus::Sent, None, Some(reply), None),
            Err(DeliveryError::Permanent(reason)) => (SendStatus::Failed, Some(reason), None, None),
            Err(DeliveryError::Transient(reason)) => {
                let due: Timestamp = row.due_at.parse().unwrap_or(now);
                let give_up = due.as_second() + self.config.email.give_up_after.seconds();
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
            status = status.as_str(), reason = reason.as_deref().unwrap_or_default(), "send");
        Outcome {
            id: row.id,
            status,
            reason,
            reply,
            next_attempt_at,
        }
    }

    /// Renders and hands over one message.
    async fn attempt(&self, job: &Job, now: Timestamp) -> Result<String, DeliveryError> {
        let row = &job.row;
        let config = &self.config;
        let cadence = config.cadence(&row.cadence).ok_or_else(|| {
            DeliveryError::Permanent(format!("cadence `{}` is no longer configured", row.cadence))
        })?;
        let contact = &job.history.contact;
        let event = row
            .event_id
            .as_ref()
            .and_then(|id| job.history.events.iter().find(|e| &e.id == id));
        let unsubscribe_url =
            unsubscribe::url(config, self.signer.as_ref(), &contact.id, cadence.channel);
        let data = MessageData {
            config,
            cadence,
            contact,
            event,
            occurrence: &row.occurrence,
            now,
            unsubscribe_url: &unsubscribe_url,
        };
        if cadence.channel == Channel::Postcard {
            let rendered = self
                .templates
                .render_postcard(&cadence.template, &data.to_json())
                .map_err(|e| DeliveryError::Permanent(e.0))?;
            let card = postcard::card(config, cadence, contact, row.id, rendered);
            return self.postcards.write(card, now).await;
        }
        let to = contact
            .email
            .as_ref()
            .ok_or_else(|| DeliveryError::Permanent("no_email".into()))?;
        let body = self
            .templates
            .render_email(&cadence.template, &data.to_json())
            .map_err(|e| DeliveryError::Permanent(e.0))?;
        let envelope = Envelope {
            business: &config.business,
            to_name: &contact.full_name(),
            to,
            message_id: &row.message_id,
            date: now,
            unsubscribe_url: &unsubscribe_url,
        };
        let message = email::build(&envelope, &body).map_err(DeliveryError::Permanent)?;
        self.transport.send(&message, &row.key().digest()).await
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
