//! `tickler tick`: one pass, then the summary line.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{CommandResult, Failure, load_config, load_templates, parse_now};
use crate::tick::Engine;

pub async fn run(path: &Path, now: Option<&str>, dry_run: bool) -> CommandResult {
    let config = load_config(path)?;
    let now = parse_now(now, &config.business.zone)?;
    let templates = load_templates(&config)?;
    let engine = Arc::new(Engine::build(config, templates).await?);
    let summary = if dry_run {
        engine.dry_run(now).await?
    } else {
        // One pass to its end: nothing cancels it.
        engine.tick(now, &CancellationToken::new()).await?
    };
    super::say!("{summary}");
    if let Some(reason) = summary.paused {
        return Err(Failure::Errors(vec![format!(
            "sending paused: {reason}; the sends are kept and retried once the SMTP settings work"
        )]));
    }
    if summary.failed > 0 {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}
