//! One pass of the pipeline: sync the CSV files, find the contacts with work due,
//! ask the planner, record skips and claim sends in the send log, deliver, and record
//! the outcomes. Claims are written before anything is handed to a transport, and
//! outcomes after, both in batches; the log's unique key makes overlapping ticks safe.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::channel::EmailTransport;
use crate::channel::postcard::PostcardOutbox;
use crate::config::Config;
use crate::domain::History;
use crate::render::Templates;
use crate::store::{SendRow, Store};
mod deliver;
mod pages;
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
const MAX_PAGE: u32 = 8000;
/// How long a claim holds before another tick may take the send over.
const LEASE: SignedDuration = SignedDuration::from_mins(10);
/// How far ahead the planner looks for a contact's next due time.
const HORIZON: SignedDuration = SignedDuration::from_hours(24 * 400);
/// How far the planner looks first: most contacts have something due within it (a
/// quarterly repeat, a birthday), and planning the whole horizon for each costs a pass
/// over a large list more than a second look at the few that have not.
const NEAR: SignedDuration = SignedDuration::from_hours(24 * 120);

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
        let fingerprint =
            hex::encode(&Sha256::digest(format!("{:?}", self.config.cadences).as_bytes())[..12]);
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
