//! `tickler tick`: one pass, then the summary line.

use std::path::Path;
use std::sync::Arc;

use super::{Failure, Outcome, load_config, load_templates, open_store, parse_now};
use crate::channel::email;
use crate::tick::Engine;

pub async fn run(path: &Path, now: Option<&str>, dry_run: bool) -> Outcome {
    let config = load_config(path)?;
    let now = parse_now(now, &config.business.zone)?;
    let templates = load_templates(&config)?;
    let store = open_store(&config).await?;
    let transport = email::transport(&config.email.transport)?;
    let engine = Engine::new(
        Arc::new(config),
        Arc::new(templates),
        store,
        Arc::from(transport),
    );
    let summary = engine.tick(now, dry_run).await?;
    println!("{summary}");
    if summary.failed > 0 {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}
