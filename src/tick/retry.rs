//! Retries: sends whose next attempt has come, and claims whose process died, taken
//! again and delivered under the same Message-ID.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::deliver::Deliveries;
use super::pass::Pass;
use super::{Engine, Job, LEASE, PAGE, Summary};
use crate::domain::{Channel, History, SendStatus, Suppression};
use crate::store::Outcome;

impl Engine {
    /// Retrying sends whose time has come, and pending ones whose lease ran out (their
    /// process died): claimed again and delivered with the same Message-ID.
    pub(super) async fn retry_due(
        &self,
        pass: &Pass,
        now: Timestamp,
        dry_run: bool,
        deliveries: &Deliveries,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        if dry_run {
            return Ok(());
        }
        loop {
            let rows = self
                .store
                .claim_retries(now, now + LEASE, &self.owner, PAGE)
                .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut ids: Vec<String> = rows.iter().map(|r| r.contact.clone()).collect();
            ids.sort();
            ids.dedup();
            let histories: HashMap<String, Arc<History>> = self
                .store
                .history(&ids)
                .await?
                .into_iter()
                .map(|h| (h.contact.id.clone(), Arc::new(h)))
                .collect();
            let mut jobs = Vec::new();
            let mut settled = Vec::new();
            for row in rows {
                match histories.get(&row.contact) {
                    // Suppressed since its first attempt (a bounce, a complaint): no more.
                    Some(history)
                        if row.channel == Channel::Email && history.suppressed.is_some() =>
                    {
                        summary.skipped += 1;
                        settled.push(Outcome {
                            id: row.id,
                            attempted: false,
                            status: SendStatus::Skipped,
                            reason: history.suppressed.as_deref().map(Suppression::skip_reason),
                            reply: None,
                            next_attempt_at: None,
                        });
                    }
                    Some(history) => jobs.push(Job {
                        row,
                        history: history.clone(),
                    }),
                    None => settled.push(Outcome {
                        id: row.id,
                        attempted: true,
                        status: SendStatus::Failed,
                        reason: Some("contact no longer exists".into()),
                        reply: None,
                        next_attempt_at: None,
                    }),
                }
            }
            summary.failed += settled
                .iter()
                .filter(|o| o.status == SendStatus::Failed)
                .count();
            self.store.record(&settled, now).await?;
            for job in jobs {
                if !deliveries.push(job).await {
                    return Ok(());
                }
            }
            if pass.pause_reason().is_some() || pass.is_stopping() {
                return Ok(());
            }
        }
    }
}
