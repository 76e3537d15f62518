//! The daemon: a tick at start, then one every `schedule.tick`, driven by
//! tokio-cron-scheduler, until SIGTERM or SIGINT. A tick in progress when the signal
//! comes is finished (its claims and outcomes recorded) before the process exits.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::render::Templates;
use crate::tick::Engine;

pub async fn run(config: Config, templates: Templates) -> anyhow::Result<()> {
    let every = config.schedule.tick;
    let engine = Arc::new(Engine::build(config, templates).await?);
    let shutdown = CancellationToken::new();
    // Held for the length of a tick: a tick that runs long makes the next one wait
    // its turn instead of overlapping, and shutdown waits for it.
    let running = Arc::new(Mutex::new(()));

    tick_once(&engine, &running).await;
    let mut scheduler = JobScheduler::new().await?;
    let (engine_job, running_job, token) = (engine.clone(), running.clone(), shutdown.clone());
    scheduler
        .add(Job::new_repeated_async(every, move |_, _| {
            let (engine, running, token) = (engine_job.clone(), running_job.clone(), token.clone());
            Box::pin(async move {
                if !token.is_cancelled() {
                    tick_once(&engine, &running).await;
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    tracing::info!(tick = ?every, "tickler is running");

    wait_for_signal().await;
    tracing::info!("stopping: finishing the tick in progress");
    shutdown.cancel();
    scheduler.shutdown().await?;
    let _idle = running.lock().await;
    tracing::info!("stopped");
    Ok(())
}

async fn tick_once(engine: &Engine, running: &Mutex<()>) {
    let Ok(_guard) = running.try_lock() else {
        tracing::debug!("previous tick still running");
        return;
    };
    let started = std::time::Instant::now();
    match engine.tick(jiff::Timestamp::now(), false).await {
        Ok(summary) => {
            tracing::info!(%summary, elapsed_ms = started.elapsed().as_millis() as u64, "tick")
        }
        Err(e) => tracing::error!(error = format!("{e:#}"), "tick failed"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
