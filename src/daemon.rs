//! The daemon: a tick at start, then one every `schedule.tick`, driven by
//! tokio-cron-scheduler, until SIGTERM or SIGINT; SIGHUP reloads the configuration,
//! cadences and templates (keeping the old set if the new one is invalid). It tells
//! systemd when it is ready, reloading and stopping, and pings the watchdog from the
//! scheduler, but only while ticks are not stuck, so a hung loop gets restarted.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sd_notify::NotifyState;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::render::Templates;
use crate::tick::Engine;

/// What the scheduling loop, the signal handlers and the HTTP endpoint share.
pub struct Shared {
    /// Swapped whole on reload, so a tick always sees one consistent set.
    engine: RwLock<Arc<Engine>>,
    config_path: PathBuf,
    /// Held for the length of a tick: ticks never overlap, and shutdown waits for one.
    running: Mutex<()>,
    /// When the tick in progress started, for the watchdog.
    tick_started: std::sync::Mutex<Option<Instant>>,
    pub status: std::sync::Mutex<Status>,
}

/// What `/healthz` and `/metrics` report.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub last_tick_at: Option<Timestamp>,
    pub last_tick_seconds: f64,
    /// Why the last reload was refused, until one succeeds.
    pub reload_error: Option<String>,
    /// Why sending was paused in the last tick.
    pub paused: Option<String>,
}

impl Shared {
    /// A daemon's shared state before its first tick; also lets the HTTP router be
    /// driven without a daemon (the fuzz targets).
    pub fn new(config_path: PathBuf, engine: Engine) -> Shared {
        Shared {
            engine: RwLock::new(Arc::new(engine)),
            config_path,
            running: Mutex::new(()),
            tick_started: std::sync::Mutex::new(None),
            status: std::sync::Mutex::new(Status::default()),
        }
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_status(&self, change: impl FnOnce(&mut Status)) {
        if let Ok(mut status) = self.status.lock() {
            change(&mut status);
        }
    }
}

pub async fn run(config_path: PathBuf, config: Config, templates: Templates) -> anyhow::Result<()> {
    let every = config.schedule.tick;
    let http = config.http.clone();
    let engine = Engine::build(config, templates).await?;
    let shared = Arc::new(Shared::new(config_path, engine));
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    if let Some(http) = http {
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .map_err(|e| anyhow::anyhow!("http.listen {}: {e}", http.listen))?;
        tracing::info!(listen = %listener.local_addr()?, "HTTP endpoint listening");
        let api_token = read_api_token(http.api_token_file.as_deref())?;
        let (shared, token) = (shared.clone(), shutdown.clone());
        tasks.push(tokio::spawn(crate::http::serve(
            listener, shared, api_token, token,
        )));
    }

    // Signal handlers first: a SIGTERM during the first tick must stop it cleanly.
    let signals = Signals::install()?;
    let first = shared.clone();
    let token = shutdown.clone();
    tasks.push(tokio::spawn(async move { tick_once(&first, &token).await }));
    let mut scheduler = JobScheduler::new().await?;
    let (job_shared, token) = (shared.clone(), shutdown.clone());
    scheduler
        .add(Job::new_repeated_async(every, move |_, _| {
            let (shared, token) = (job_shared.clone(), token.clone());
            Box::pin(async move {
                if !token.is_cancelled() {
                    tick_once(&shared, &token).await;
                }
            })
        })?)
        .await?;
    if let Some(watchdog) = sd_notify::watchdog_enabled() {
        let job_shared = shared.clone();
        // A tick may take long (a big catch-up); it is stuck past this.
        let stuck_after = watchdog.max(every * 10);
        scheduler
            .add(Job::new_repeated_async(
                (watchdog / 3).max(Duration::from_secs(1)),
                move |_, _| {
                    let shared = job_shared.clone();
                    Box::pin(async move {
                        let started = shared.tick_started.lock().ok().and_then(|s| *s);
                        if started.is_none_or(|s| s.elapsed() < stuck_after) {
                            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                        } else {
                            tracing::error!("a tick has been running too long; no watchdog ping");
                        }
                    })
                },
            )?)
            .await?;
    }
    scheduler.start().await?;
    let _ = sd_notify::notify(&[NotifyState::Ready]);
    tracing::info!(tick = ?every, "tickler is running");

    signals.wait(&shared).await;
    tracing::info!("stopping: finishing the tick in progress");
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    shutdown.cancel();
    scheduler.shutdown().await?;
    let _idle = shared.running.lock().await;
    for task in tasks {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The signals the daemon acts on, registered before any work starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, reloading on each SIGHUP meanwhile.
    async fn wait(mut self, shared: &Shared) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => reload(shared).await,
            }
        }
    }
}

/// Reads the configuration, cadences and templates again; swaps them in only if all
/// are valid.
async fn reload(shared: &Shared) {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    let _ = sd_notify::notify(&states);
    let result = async {
        let config = Config::load(&shared.config_path).map_err(|d| anyhow::anyhow!("{d}"))?;
        let templates = Templates::load(&config).map_err(|d| {
            anyhow::anyhow!(
                "{}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        Engine::build(config, templates).await
    }
    .await;
    match result {
        Ok(engine) => {
            // Wait for a tick in progress, so no tick mixes old and new.
            let _idle = shared.running.lock().await;
            if let Ok(mut current) = shared.engine.write() {
                *current = Arc::new(engine);
            }
            shared.set_status(|s| s.reload_error = None);
            tracing::info!("reloaded the configuration, cadences and templates");
        }
        Err(e) => {
            let reason = format!("{e:#}");
            tracing::error!(error = %crate::telemetry::redact(&reason), "reload refused; still running the previous configuration");
            shared.set_status(|s| s.reload_error = Some(reason));
        }
    }
    let _ = sd_notify::notify(&[NotifyState::Ready]);
}

async fn tick_once(shared: &Shared, shutdown: &CancellationToken) {
    let Ok(_guard) = shared.running.try_lock() else {
        tracing::debug!("previous tick still running");
        return;
    };
    if let Ok(mut started) = shared.tick_started.lock() {
        *started = Some(Instant::now());
    }
    let engine = shared.engine();
    let started = Instant::now();
    let now = Timestamp::now();
    match engine.tick(now, shutdown).await {
        Ok(summary) => {
            tracing::info!(%summary, elapsed_ms = started.elapsed().as_millis() as u64, "tick");
            shared.set_status(|s| {
                s.last_tick_at = Some(now);
                s.last_tick_seconds = started.elapsed().as_secs_f64();
                s.paused = summary.paused.clone();
            });
        }
        Err(e) => tracing::error!(error = format!("{e:#}"), "tick failed"),
    }
    if let Ok(mut started) = shared.tick_started.lock() {
        *started = None;
    }
}

/// The API's bearer token; the API is off without one.
fn read_api_token(path: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let token = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("http.api_token_file {}: {e}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(
        token.len() >= 16,
        "http.api_token_file {}: the token must be at least 16 characters",
        path.display()
    );
    Ok(Some(token))
}

/// How long a tick may be silent before `/healthz` says so.
pub fn stale_after(engine: &Engine) -> Duration {
    engine.config.schedule.tick * 3
}
