//! One pass of the pipeline: sync the CSV files, find the contacts with work due,
//! ask the planner, record skips and claim sends in the send log, deliver, and record
//! the outcomes. Claims are written before anything is handed to a transport, and
//! outcomes after, both in batches; the log's unique key makes overlapping ticks safe.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::agenda::{Decision, agenda};
use crate::channel::EmailTransport;
use crate::channel::postcard::PostcardOutbox;
use crate::config::Config;
use crate::domain::History;
use crate::domain::{SendKey, SendStatus};
use crate::render::Templates;
use crate::store::{NewSend, NextDue, PassToken, SendRow, Store};
mod deliver;
mod pass;
mod retry;

use deliver::Deliveries;
pub use deliver::RECORD_BATCH;
use pass::Pass;
pub use pass::{Summary, Would};

use crate::sync;
use crate::unsubscribe::{self, Signer};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// Contacts looked at per batch; a page that adds nothing to the send log (a first pass
/// planning a new list ahead) lets the next be twice as large, up to `MAX_PAGE`, so
/// that a large pass costs fewer statements and transactions.
const PAGE: u32 = 500;
const MAX_PAGE: u32 = 2000;
/// How long a claim holds before another tick may take the send over.
const LEASE: SignedDuration = SignedDuration::from_mins(10);
/// How far ahead the planner looks for a contact's next due time.
const HORIZON: SignedDuration = SignedDuration::from_hours(24 * 400);

/// Rows to add to the send log, and each contact's next due time.
type Evaluation = (Vec<NewSend>, Vec<NextDue>);

/// A page of contacts, marked and planned, waiting to be written.
struct Planned {
    sends: Vec<NewSend>,
    next_due: Vec<NextDue>,
    histories: Vec<History>,
    /// The pass as it marked this page: its due times are written under that mark.
    mark: PassToken,
}

/// A claimed send with what rendering it needs.
pub(crate) struct Job {
    row: SendRow,
    history: Arc<History>,
}

/// The pipeline's parts, fixed for the engine's life; cheap to share between the
/// daemon's ticks.
pub struct Engine {
    pub config: Arc<Config>,
    pub(crate) templates: Arc<Templates>,
    pub store: Arc<dyn Store>,
    pub(crate) transport: Arc<dyn EmailTransport>,
    /// Where postcards go: the day's batch under `postcards.dir`.
    pub(crate) postcards: PostcardOutbox,
    /// Names this process in leases: `HOST:PID:RANDOM`.
    pub(crate) owner: String,
    /// Signs unsubscribe links and return paths, when either is configured.
    pub(crate) signer: Option<Signer>,
    /// Signs each email, when `email.dkim` is set.
    pub(crate) dkim: Option<crate::channel::dkim::Signer>,
    /// `email.rate_limit`.
    limiter: Option<DefaultDirectRateLimiter>,
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        templates: Arc<Templates>,
        store: Arc<dyn Store>,
        transport: Arc<dyn EmailTransport>,
    ) -> Engine {
        let owner = format!(
            "{}:{}:{:08x}",
            host_name(),
            std::process::id(),
            fastrand::u32(..)
        );
        let limiter = config.email.rate_limit.and_then(|(n, per)| {
            let n = NonZeroU32::new(n)?;
            Quota::with_period(per / n.get()).map(|q| RateLimiter::direct(q.allow_burst(n)))
        });
        let postcards =
            PostcardOutbox::new(config.postcards_dir.clone(), config.business.zone.clone());
        Engine {
            config,
            templates,
            store,
            transport,
            postcards,
            owner,
            signer: None,
            dkim: None,
            limiter,
        }
    }

    /// The engine for `config`: its database (migrated), transport and signers.
    pub async fn build(config: Config, templates: Templates) -> anyhow::Result<Engine> {
        let store = crate::store::open(&config.database_url).await?;
        let transport = crate::channel::transport(&config.email.transport)?;
        let signer = unsubscribe::signer(&config)?;
        let dkim = crate::channel::dkim::Signer::configured(&config).map_err(anyhow::Error::msg)?;
        Ok(Engine::new(
            Arc::new(config),
            Arc::new(templates),
            store,
            Arc::from(transport),
        )
        .with_signers(signer, dkim))
    }

    /// Whether sent emails are kept for the console to show (`console.keep_messages`).
    pub fn keeps_messages(&self) -> bool {
        let console = self.config.http.as_ref().is_some_and(|h| h.console);
        console && !self.config.keep_messages.is_zero()
    }

    /// Signs links and return paths with `signer`, and emails with `dkim`.
    fn with_signers(
        mut self,
        signer: Option<Signer>,
        dkim: Option<crate::channel::dkim::Signer>,
    ) -> Engine {
        self.signer = signer;
        self.dkim = dkim;
        self
    }

    /// Sends claimed by processes of this host that no longer exist (killed, crashed)
    /// are released now instead of when their lease runs out; their resend carries the
    /// same Message-ID.
    async fn release_dead_claims(&self) -> anyhow::Result<()> {
        let host = host_name();
        for owner in self.store.lease_holders().await? {
            let mut parts = owner.split(':');
            let (Some(h), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            let alive = pid
                .parse::<u32>()
                .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if h == host && !alive && owner != self.owner {
                tracing::warn!(owner = %owner, "releasing the sends of a process that died");
                self.store.release_leases_of(&owner).await?;
            }
        }
        Ok(())
    }

    /// One full pass at `now`. Once `stop` is cancelled the pass takes no new work,
    /// finishes what is in flight and releases the rest of its claims.
    pub async fn tick(
        self: &Arc<Self>,
        now: Timestamp,
        stop: &CancellationToken,
    ) -> anyhow::Result<Summary> {
        self.run_pass(now, false, stop.clone()).await
    }

    /// What a pass at `now` would do: nothing is synced, written or sent; the summary
    /// counts what would happen.
    pub async fn dry_run(self: &Arc<Self>, now: Timestamp) -> anyhow::Result<Summary> {
        self.run_pass(now, true, CancellationToken::new()).await
    }

    async fn run_pass(
        self: &Arc<Self>,
        now: Timestamp,
        dry_run: bool,
        stop: CancellationToken,
    ) -> anyhow::Result<Summary> {
        let pass = Arc::new(Pass::new(stop));
        let result = self.sync_claim_deliver(&pass, now, dry_run).await;
        // Every delivery task has ended before the claims are given back.
        pass.tasks.close();
        pass.tasks.wait().await;
        // Connections to the SMTP server are not kept between passes.
        self.transport.close_idle().await;
        if result.is_err() && !dry_run {
            // A pass that failed midway (a database error, a deadlock between
            // instances) gives its unfinished claims back at once, for the next pass of
            // any instance, instead of leaving them to wait out their lease.
            if let Err(e) = self.store.release_leases_of(&self.owner).await {
                tracing::warn!(error = format!("{e:#}"), "could not release claims");
            }
        }
        result
    }

    /// The steps of a pass: sync, claim and deliver what is due, record the outcomes.
    async fn sync_claim_deliver(
        self: &Arc<Self>,
        pass: &Arc<Pass>,
        now: Timestamp,
        dry_run: bool,
    ) -> anyhow::Result<Summary> {
        if !dry_run {
            self.sync_files(now).await;
            self.notice_cadence_changes().await?;
            self.release_dead_claims().await?;
            self.postcards.repair(now).await;
        }
        let mut summary = Summary::default();
        // Delivery runs beside the claiming, which stays at most a page ahead of it.
        let deliveries = Deliveries::start(self, pass, now, PAGE as usize);
        let claimed = self
            .claim_and_deliver(pass, now, dry_run, &deliveries, &mut summary)
            .await;
        // Even after an error, what was handed over is delivered and recorded before
        // the pass gives its remaining claims back.
        let delivered = deliveries.finish(&mut summary).await;
        claimed?;
        delivered?;
        if pass.is_stopping() && !dry_run {
            self.store.release_leases_of(&self.owner).await?;
        }
        summary.paused = pass.pause_reason().map(str::to_owned);
        Ok(summary)
    }

    /// Pages through the due contacts, records what the planner decides, and hands the
    /// claimed sends to `deliveries`; then the same for retries. A page's writes run
    /// beside the reading and planning of the next one.
    async fn claim_and_deliver(
        &self,
        state: &Pass,
        now: Timestamp,
        dry_run: bool,
        deliveries: &Deliveries,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let mut pass = self.store.begin_pass();
        let mut size = PAGE;
        let mut planned: Option<Planned> = None;
        loop {
            let reading = self.read_and_plan(state, &mut pass, size, now, dry_run, summary);
            let writing = async {
                match planned.take() {
                    Some(page) => self.write_page(page, now).await.map(Some),
                    None => Ok(None),
                }
            };
            let (read, written) = tokio::join!(reading, writing);
            if let Some((inserted, histories)) = written? {
                size = if inserted.is_empty() {
                    (size * 2).min(MAX_PAGE)
                } else {
                    PAGE
                };
                if !self
                    .hand_over(inserted, histories, deliveries, summary)
                    .await
                {
                    return Ok(());
                }
            }
            let Some(page) = read? else { break };
            if dry_run {
                self.list_would(&page.histories, page.sends, summary);
                continue;
            }
            if state.pause_reason().is_some() {
                // The page stays marked, and so due, for the next pass.
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

    /// The next page of due contacts, marked (unless a dry run) and planned; `None` when
    /// none is left or the pass is stopping.
    async fn read_and_plan(
        &self,
        state: &Pass,
        pass: &mut PassToken,
        size: u32,
        now: Timestamp,
        dry_run: bool,
        summary: &mut Summary,
    ) -> anyhow::Result<Option<Planned>> {
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
        let histories = self.store.history(&ids).await?;
        let (sends, next_due) = self.evaluate(&histories, now, summary);
        Ok(Some(Planned {
            sends,
            next_due,
            histories,
            mark: pass.clone(),
        }))
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
        let wanted: std::collections::HashSet<&str> = inserted
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

    /// For each contact: the rows to add to the send log now, and when to look again.
    fn evaluate(&self, histories: &[History], now: Timestamp, summary: &mut Summary) -> Evaluation {
        let config = &self.config;
        let mut sends = Vec::new();
        let mut next_due = Vec::new();
        for h in histories {
            let mut next: Option<Timestamp> = None;
            for verdict in agenda(config, h, now, now + HORIZON) {
                let (status, reason) = match verdict.decision {
                    Decision::Send => (SendStatus::Pending, None),
                    Decision::Skip(reason) => (SendStatus::Skipped, Some(reason)),
                    Decision::Wait(at) | Decision::Later(at) => {
                        // A deferral is counted once, by the tick at which the send
                        // fell due; so look again then, as well as at the new time.
                        let look = match verdict.deferred_from {
                            Some(from) if from <= now => {
                                summary.deferred += 1;
                                at
                            }
                            Some(from) => from.min(at),
                            None => at,
                        };
                        next = Some(next.map_or(look, |n| n.min(look)));
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

    async fn sync_files(&self, now: Timestamp) {
        let files = [
            (sync::Kind::Contacts, &self.config.contacts_sync),
            (sync::Kind::Events, &self.config.events_sync),
        ];
        let mut changed = false;
        for path in files.iter().filter_map(|(_, p)| p.as_ref()) {
            changed |= sync::changed(self.store.as_ref(), path)
                .await
                .unwrap_or(true);
        }
        if !changed {
            return;
        }
        // Instances sharing a database sync once for the group, and both files under
        // one lock: events synced before their contacts would be rejected. The others
        // skip this tick's sync and find the files synced at their next one.
        let _exclusive = match self.store.exclusive("csv-sync").await {
            Ok(Some(guard)) => guard,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "sync failed");
                return;
            }
        };
        for (kind, path) in files {
            let Some(path) = path else { continue };
            match sync::sync_file(
                self.store.as_ref(),
                kind,
                path,
                &self.config.business.zone,
                now,
            )
            .await
            {
                Ok(Some(report)) => {
                    for (line, reason) in &report.rejected {
                        tracing::warn!(file = %path.display(), line, reason = %crate::telemetry::redact(reason), "row rejected");
                    }
                    tracing::info!(file = %path.display(), accepted = report.accepted, changed = report.changed,
                        rejected = report.rejected.len(), "synced");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(file = %path.display(), error = format!("{e:#}"), "sync failed")
                }
            }
        }
    }

    /// When the cadences changed, every contact's next due time may have too.
    async fn notice_cadence_changes(&self) -> anyhow::Result<()> {
        use sha2::{Digest, Sha256};
        let fingerprint: String = Sha256::digest(format!("{:?}", self.config.cadences).as_bytes())
            [..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if self.store.meta("cadences").await?.as_deref() != Some(fingerprint.as_str()) {
            self.store.mark_all_due().await?;
            self.store.set_meta("cadences", &fingerprint).await?;
        }
        Ok(())
    }
}

/// This machine's name, as leases record it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}
