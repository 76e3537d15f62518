//! The daemon: a tick at start, then one every `schedule.tick`, driven by
//! tokio-cron-scheduler, and the HTTP endpoint beside them, until the shutdown token is
//! cancelled; a reload swaps in a new configuration, cadences and templates (keeping
//! the old set if the new one is invalid). It tells systemd when it is ready, reloading
//! and stopping, and pings the watchdog from the scheduler, but only while ticks are
//! not stuck, so a hung loop gets restarted. The command line binds the endpoint and
//! turns signals into a reload or the shutdown. With `email.bounce.imap`, the bounce
//! mailbox is read at start and every `email.bounce.poll`, apart from the ticks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sd_notify::NotifyState;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bounce::poll::{Cursor, poll};
use crate::config::Config;
use crate::http;
use crate::render::Templates;
use crate::status::Status;
use crate::tick::Engine;

/// What the scheduling loop, the reloads and the HTTP endpoint share.
pub struct Daemon {
    status: Arc<Status>,
    config_path: PathBuf,
    /// Held for the length of a tick: ticks never overlap, and a reload waits for one.
    running: Mutex<()>,
    /// When the tick in progress started, for the watchdog.
    tick_started: std::sync::Mutex<Option<Instant>>,
    /// Stops the transports' own tasks (the SMTP connections), once the last tick has
    /// ended: not at the shutdown itself, which would hand the sends already given to
    /// the transport back unsent instead of letting them finish.
    transports: CancellationToken,
    /// When kept messages were last pruned.
    pruned_at: std::sync::Mutex<Option<Instant>>,
    /// Where the bounce mailbox was last read to; held while it is read.
    bounces: Mutex<Cursor>,
}

/// How often the daemon forgets the kept messages older than `console.keep_messages`.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Daemon {
    /// A daemon running `engine`, reloading from `config_path`.
    pub fn new(config_path: PathBuf, engine: Engine) -> Daemon {
        let transports = CancellationToken::new();
        engine.transport.shutdown_on(transports.clone());
        Daemon {
            status: Arc::new(Status::new(engine)),
            config_path,
            running: Mutex::new(()),
            tick_started: std::sync::Mutex::new(None),
            transports,
            pruned_at: std::sync::Mutex::new(None),
            bounces: Mutex::new(Cursor::default()),
        }
    }

    /// Reads the bounce mailbox, if one is configured; skipped while a read is running.
    async fn read_bounces(&self) {
        let Ok(mut cursor) = self.bounces.try_lock() else {
            return;
        };
        let engine = self.status.engine();
        let signer = engine.signer.as_ref();
        let now = Timestamp::now();
        match poll(
            &engine.config,
            engine.store.as_ref(),
            signer,
            &mut cursor,
            now,
        )
        .await
        {
            Ok(polled) if polled.acted + polled.left > 0 => {
                tracing::info!(
                    acted = polled.acted,
                    left = polled.left,
                    "bounce mailbox read"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "cannot read the bounce mailbox"),
        }
    }

    /// Reads the configuration, cadences and templates again; swaps them in only if all
    /// are valid.
    pub async fn reload(&self) {
        let mut states = vec![NotifyState::Reloading];
        states.extend(NotifyState::monotonic_usec_now().ok());
        let _ = sd_notify::notify(&states);
        let result = async {
            let config = Config::load(&self.config_path).map_err(|d| anyhow::anyhow!("{d}"))?;
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
                engine.transport.shutdown_on(self.transports.clone());
                // Wait for a tick in progress, so no tick mixes old and new.
                let _idle = self.running.lock().await;
                self.status.set_engine(engine);
                self.status.update(|s| s.reload_error = None);
                tracing::info!("reloaded the configuration, cadences and templates");
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::error!(error = %crate::telemetry::redact(&reason), "reload refused; still running the previous configuration");
                self.status.update(|s| s.reload_error = Some(reason));
            }
        }
        let _ = sd_notify::notify(&[NotifyState::Ready]);
    }

    async fn tick_once(&self, shutdown: &CancellationToken) {
        let Ok(_guard) = self.running.try_lock() else {
            tracing::debug!("previous tick still running");
            return;
        };
        if let Ok(mut started) = self.tick_started.lock() {
            *started = Some(Instant::now());
        }
        let engine = self.status.engine();
        let started = Instant::now();
        let now = Timestamp::now();
        match engine.tick(now, shutdown).await {
            Ok(summary) => {
                tracing::info!(%summary, elapsed_ms = started.elapsed().as_millis() as u64, "tick");
                self.status.update(|s| {
                    s.last_tick_at = Some(now);
                    s.last_tick_seconds = started.elapsed().as_secs_f64();
                    s.paused = summary.paused.clone();
                });
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "tick failed"),
        }
        self.prune_kept(&engine, now).await;
        if let Ok(mut started) = self.tick_started.lock() {
            *started = None;
        }
    }

    /// Forgets the kept messages older than `console.keep_messages`, once an hour.
    async fn prune_kept(&self, engine: &Engine, now: Timestamp) {
        let due = match self.pruned_at.lock() {
            Ok(mut at) if at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) => {
                *at = Some(Instant::now());
                true
            }
            _ => false,
        };
        if !due {
            return;
        }
        let keep = jiff::SignedDuration::from_secs(engine.config.keep_messages.seconds());
        let before = now.checked_sub(keep).unwrap_or(Timestamp::MIN);
        if let Err(e) = engine.store.prune_kept(before).await {
            tracing::warn!(error = %e, "could not prune the kept messages");
        }
    }
}

/// Runs `daemon`, and serves the endpoint on `listener` if there is one, until
/// `shutdown` is cancelled; then takes no new work, lets the tick in progress finish
/// what is in flight (it releases the rest) and returns once every task has ended,
/// the transport's included.
pub async fn run(
    daemon: Arc<Daemon>,
    listener: Option<http::Listener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let every = daemon.status.engine().config.schedule.tick;
    let tasks = TaskTracker::new();
    if let Some(listener) = listener {
        tasks.spawn(http::serve(
            listener,
            daemon.status.clone(),
            shutdown.clone(),
        ));
    }
    let (first, token) = (daemon.clone(), shutdown.clone());
    tasks.spawn(async move { first.tick_once(&token).await });
    let mut scheduler = JobScheduler::new().await?;
    let (job_daemon, token, job_tasks) = (daemon.clone(), shutdown.clone(), tasks.clone());
    scheduler
        .add(Job::new_repeated_async(every, move |_, _| {
            let (daemon, token) = (job_daemon.clone(), token.clone());
            Box::pin(job_tasks.track_future(async move {
                if !token.is_cancelled() {
                    daemon.tick_once(&token).await;
                }
            }))
        })?)
        .await?;
    if let Some(watchdog) = sd_notify::watchdog_enabled() {
        let job_daemon = daemon.clone();
        // A tick may take long (a big catch-up); it is stuck past this.
        let stuck_after = watchdog.max(every * 10);
        scheduler
            .add(Job::new_repeated_async(
                (watchdog / 3).max(Duration::from_secs(1)),
                move |_, _| {
                    let daemon = job_daemon.clone();
                    Box::pin(async move {
                        let started = daemon.tick_started.lock().ok().and_then(|s| *s);
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
    let imap = daemon.status.engine().config.email.bounce.clone();
    if let Some(poll_every) = imap.filter(|b| b.imap.is_some()).map(|b| b.poll) {
        let (job_daemon, token, job_tasks) = (daemon.clone(), shutdown.clone(), tasks.clone());
        let (first, first_token) = (daemon.clone(), shutdown.clone());
        tasks.spawn(async move {
            if !first_token.is_cancelled() {
                first.read_bounces().await;
            }
        });
        scheduler
            .add(Job::new_repeated_async(poll_every, move |_, _| {
                let (daemon, token) = (job_daemon.clone(), token.clone());
                Box::pin(job_tasks.track_future(async move {
                    if !token.is_cancelled() {
                        daemon.read_bounces().await;
                    }
                }))
            })?)
            .await?;
    }
    scheduler.start().await?;
    let _ = sd_notify::notify(&[NotifyState::Ready]);
    tracing::info!(tick = ?every, "tickler is running");

    shutdown.cancelled().await;
    tracing::info!("stopping: finishing the tick in progress");
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    scheduler.shutdown().await?;
    tasks.close();
    tasks.wait().await;
    daemon.transports.cancel();
    daemon.status.engine().transport.stopped().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// The status line and body of `GET path`.
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: tickler\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("reply");
        reply
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_in_process_answers_healthz_and_returns_when_cancelled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        write(
            root,
            "tickler.yaml",
            "business:\n  name: Test Tiles\n  email: hello@tiles.example\n  \
             address: { line1: 1 Harbour St, city: Troy, postal_code: \"12180\", country: US }\n  \
             timezone: America/New_York\nstate_dir: state\ntemplates: templates\n\
             cadences: cadences.yaml\nemail:\n  transport: file\n",
        );
        write(
            root,
            "cadences.yaml",
            "cadences:\n  - id: thanks\n    channel: email\n    template: thanks\n    \
             trigger: { after: purchase, delay: 2d }\n",
        );
        write(root, "templates/thanks.subject.hbs", "Thanks");
        write(root, "templates/thanks.txt.hbs", "Thank you.");
        let path = root.join("tickler.yaml");
        let config = Config::load(&path).expect("config");
        let templates = Templates::load(&config).expect("templates");
        let engine = Engine::build(config, templates).await.expect("engine");
        let daemon = Arc::new(Daemon::new(path, engine));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = tcp.local_addr().expect("address");
        let listener = http::Listener::new(tcp, None);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(run(daemon, Some(listener), shutdown.clone()));

        // Healthy once the first tick has run.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = get(addr, "/healthz").await;
            if reply.starts_with("HTTP/1.1 200") {
                assert!(reply.contains(r#""status":"ok""#), "{reply}");
                break;
            }
            assert!(reply.contains("starting"), "{reply}");
            assert!(Instant::now() < deadline, "never healthy: {reply}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("run returns once cancelled")
            .expect("run did not panic");
        stopped.expect("run ends cleanly");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the endpoint stopped listening"
        );
    }
}
