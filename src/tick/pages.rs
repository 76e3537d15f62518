//! A pass's walk through the due contacts, a page at a time: each page is read and
//! marked, then planned, then its send-log rows and next due times are written. Three
//! pages are in flight at once, so that the database's writes (one page's records and
//! the mark of the page after the next) run while the page between them is read and
//! planned on other threads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;

use super::deliver::Deliveries;
use super::pass::{Pass, Summary, Would};
use super::{Engine, HORIZON, Job, LEASE, MAX_PAGE, NEAR, PAGE};
use crate::agenda::{Decision, Verdict, agenda};
use crate::config::Config;
use crate::domain::{History, SendKey, SendStatus};
use crate::store::{NewSend, NextDue, PassToken, SendRow};

/// Rows to add to the send log, and each contact's next due time.
type Evaluation = (Vec<NewSend>, Vec<NextDue>);

/// A page of due contacts, read and (unless in a dry run) marked, waiting to be planned.
struct Marked {
    ids: Vec<String>,
    /// The pass as it marked this page: the page's due times are written under that mark.
    mark: PassToken,
}

/// A page planned, waiting to be written.
struct Planned {
    sends: Vec<NewSend>,
    next_due: Vec<NextDue>,
    histories: Vec<History>,
    mark: PassToken,
}

impl Engine {
    /// Pages through the due contacts, records what the planner decides, and hands the
    /// claimed sends to `deliveries`; then the same for retries.
    pub(super) async fn claim_and_deliver(
        &self,
        state: &Pass,
        now: Timestamp,
        dry_run: bool,
        deliveries: &Deliveries,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let mut pass = self.store.begin_pass();
        let mut size = PAGE;
        let mut ahead = self.next_page(state, &mut pass, size, now, dry_run).await?;
        let mut planned: Option<Planned> = None;
        while ahead.is_some() || planned.is_some() {
            let page = ahead.take();
            let read_on = page.is_some();
            let to_write = planned.take();
            let planning = async {
                match page {
                    Some(page) => self.plan(page, now).await.map(Some),
                    None => Ok(None),
                }
            };
            let writing = async {
                let written = match to_write {
                    Some(page) => Some(self.write_page(page, now).await?),
                    None => None,
                };
                if let Some((inserted, _)) = &written {
                    size = if inserted.is_empty() {
                        (size * 2).min(MAX_PAGE)
                    } else {
                        PAGE
                    };
                }
                let next = match read_on {
                    true => self.next_page(state, &mut pass, size, now, dry_run).await?,
                    false => None,
                };
                anyhow::Ok((written, next))
            };
            let (plan, write) = tokio::join!(planning, writing);
            let (written, next) = write?;
            if let Some((inserted, histories)) = written
                && !self
                    .hand_over(inserted, histories, deliveries, summary)
                    .await
            {
                return Ok(());
            }
            ahead = next;
            let Some((page, deferred)) = plan? else {
                continue;
            };
            summary.deferred += deferred;
            if dry_run {
                self.list_would(&page.histories, page.sends, summary);
                continue;
            }
            if state.pause_reason().is_some() {
                // The pages read stay marked, and so due, for the next pass.
                break;
            }
            planned = Some(page);
        }
        if state.pause_reason().is_none() && !state.is_stopping() {
            self.retry_due(state, now, dry_run, deliveries, summary)
                .await?;
        }
        Ok(())
    }

    /// The next page of due contacts, marked unless in a dry run; `None` when none is
    /// left or the pass is stopping.
    async fn next_page(
        &self,
        state: &Pass,
        pass: &mut PassToken,
        size: u32,
        now: Timestamp,
        dry_run: bool,
    ) -> anyhow::Result<Option<Marked>> {
        if state.is_stopping() {
            return Ok(None);
        }
        // Pages in (due time, id) order: a contact handled in this pass is not met
        // again in it.
        let ids = self.store.next_due(pass, now, size).await?;
        if ids.is_empty() {
            return Ok(None);
        }
        if !dry_run {
            self.store.mark_due(&ids, pass, now).await?;
        }
        Ok(Some(Marked {
            ids,
            mark: pass.clone(),
        }))
    }

    /// Reads a marked page's histories and plans them, on a blocking thread so that the
    /// page being written meanwhile is not held up; also returns the deferrals counted.
    async fn plan(&self, page: Marked, now: Timestamp) -> anyhow::Result<(Planned, usize)> {
        let mut histories = self.store.history(&page.ids).await?;
        let config = Arc::clone(&self.config);
        let (histories, (sends, next_due), deferred) = tokio::task::spawn_blocking(move || {
            let mut deferred = 0;
            let (sends, next_due) = evaluate(&config, &histories, now, &mut deferred);
            // Only the contacts with something to send or skip are needed further; the
            // rest are let go here, off the pass's path.
            let named: HashSet<&str> = sends.iter().map(|s| s.key.contact.as_str()).collect();
            histories.retain(|h| named.contains(h.contact.id.as_str()));
            (histories, (sends, next_due), deferred)
        })
        .await
        .map_err(|e| anyhow::anyhow!("planning stopped: {e}"))?;
        Ok((
            Planned {
                sends,
                next_due,
                histories,
                mark: page.mark,
            },
            deferred,
        ))
    }

    /// Records a planned page: its sends and skips, then each contact's next due time.
    async fn write_page(
        &self,
        page: Planned,
        now: Timestamp,
    ) -> anyhow::Result<(Vec<SendRow>, Vec<History>)> {
        let lease_until = now + LEASE;
        let inserted = self
            .store
            .insert_sends(&page.sends, now, lease_until, &self.owner)
            .await?;
        self.store.set_next_due(&page.next_due, &page.mark).await?;
        Ok((inserted, page.histories))
    }

    /// Counts the skips among `inserted` and queues the claimed sends for delivery;
    /// false once delivery has stopped.
    async fn hand_over(
        &self,
        inserted: Vec<SendRow>,
        histories: Vec<History>,
        deliveries: &Deliveries,
        summary: &mut Summary,
    ) -> bool {
        let wanted: HashSet<&str> = inserted
            .iter()
            .filter(|row| row.status != SendStatus::Skipped)
            .map(|row| row.contact.as_str())
            .collect();
        let histories: HashMap<String, Arc<History>> = histories
            .into_iter()
            .filter(|h| wanted.contains(h.contact.id.as_str()))
            .map(|h| (h.contact.id.clone(), Arc::new(h)))
            .collect();
        for row in inserted {
            if row.status == SendStatus::Skipped {
                summary.skipped += 1;
                tracing::info!(contact = %row.contact, cadence = %row.cadence, occurrence = %row.occurrence,
                    status = "skipped", reason = row.reason.as_deref().unwrap_or_default(), "send");
            } else if let Some(history) = histories.get(row.contact.as_str()) {
                let job = Job {
                    row,
                    history: Arc::clone(history),
                };
                if !deliveries.push(job).await {
                    return false;
                }
            }
        }
        true
    }

    /// Counts and lists what a dry run would send or skip.
    fn list_would(&self, histories: &[History], sends: Vec<NewSend>, summary: &mut Summary) {
        let zones: HashMap<&str, jiff::tz::TimeZone> = histories
            .iter()
            .map(|h| {
                (
                    h.contact.id.as_str(),
                    h.contact.zone(&self.config.business.zone),
                )
            })
            .collect();
        for send in sends {
            let skip = match send.status {
                SendStatus::Skipped => send.reason.or_else(|| Some(String::new())),
                _ => None,
            };
            match skip {
                Some(_) => summary.skipped += 1,
                None => summary.sent += 1,
            }
            let zone = zones
                .get(send.key.contact.as_str())
                .cloned()
                .unwrap_or_else(|| self.config.business.zone.clone());
            summary.would.push(Would {
                due_at: crate::domain::time::rfc3339(send.due_at, &zone),
                contact: send.key.contact,
                cadence: send.key.cadence,
                channel: send.channel.to_string(),
                occurrence: send.key.occurrence,
                skip,
            });
        }
    }
}

/// For each contact: the rows to add to the send log now, and when to look again.
fn evaluate(
    config: &Config,
    histories: &[History],
    now: Timestamp,
    deferred: &mut usize,
) -> Evaluation {
    let mut sends = Vec::new();
    let mut next_due = Vec::new();
    for h in histories {
        // Up to `NEAR` first. Occurrences due later sort after all those due by then, so
        // they change nothing in the rows written now, nor a next look found by then.
        let mut verdicts = agenda(config, h, now, now + NEAR);
        let mut next = next_look(&verdicts, now);
        if next.is_none_or(|look| look > now + NEAR) {
            verdicts = agenda(config, h, now, now + HORIZON);
            next = next_look(&verdicts, now);
        }
        for verdict in verdicts {
            let (status, reason) = match verdict.decision {
                Decision::Send => (SendStatus::Pending, None),
                Decision::Skip(reason) => (SendStatus::Skipped, Some(reason)),
                Decision::Wait(_) | Decision::Later(_) => {
                    if verdict.deferred_from.is_some_and(|from| from <= now) {
                        *deferred += 1;
                    }
                    continue;
                }
            };
            let key = SendKey {
                contact: h.contact.id.clone(),
                cadence: verdict.cadence.id.clone(),
                occurrence: verdict.due.occurrence.clone(),
            };
            sends.push(NewSend {
                message_id: key.message_id(config.business.email.domain()),
                key,
                channel: verdict.cadence.channel,
                status,
                reason,
                event_id: verdict.due.event_id.clone(),
                due_at: verdict.due.due_at,
            });
        }
        // Nothing ahead within the horizon: look again when it has moved on.
        next_due.push((h.contact.id.clone(), Some(next.unwrap_or(now + HORIZON))));
    }
    (sends, next_due)
}

/// The earliest time one of `verdicts` asks the pass to look again. A deferred send is
/// looked at when it was due as well as at its new time, so that the tick at which it
/// fell due counts the deferral.
fn next_look(verdicts: &[Verdict<'_>], now: Timestamp) -> Option<Timestamp> {
    verdicts
        .iter()
        .filter_map(|verdict| match verdict.decision {
            Decision::Wait(at) | Decision::Later(at) => Some(match verdict.deferred_from {
                Some(from) if from > now => from.min(at),
                _ => at,
            }),
            Decision::Send | Decision::Skip(_) => None,
        })
        .min()
}
