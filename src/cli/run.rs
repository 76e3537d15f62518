//! `tickler run`: the daemon, with its HTTP endpoint bound and its signals set up
//! here: SIGTERM or SIGINT stops it, SIGHUP reloads it.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::{CommandResult, Failure, load_config, load_templates};
use crate::daemon::{self, Daemon};
use crate::http;
use crate::tick::Engine;

pub async fn run(path: &Path) -> CommandResult {
    let config = load_config(path)?;
    let templates = load_templates(&config)?;
    let http = config.http.clone();
    let engine = Engine::build(config, templates).await?;
    let listener = match &http {
        Some(http) => Some(http::Listener::bind(http).await?),
        None => None,
    };
    let daemon = Arc::new(Daemon::new(path.to_owned(), engine));
    // Signal handlers before the first tick: a SIGTERM during it must stop it cleanly.
    let signals = Signals::install()?;
    let shutdown = CancellationToken::new();
    let mut running = std::pin::pin!(daemon::run(daemon.clone(), listener, shutdown.clone()));
    tokio::select! {
        result = &mut running => return result.map_err(Failure::from),
        () = signals.wait(&daemon) => shutdown.cancel(),
    }
    running.await.map_err(Failure::from)
}

/// The signals the daemon acts on, registered before any work starts.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT, reloading `daemon` on each SIGHUP meanwhile.
    async fn wait(mut self, daemon: &Daemon) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => daemon.reload().await,
            }
        }
    }
}
