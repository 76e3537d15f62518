//! `tickler tick`: one pass, then the summary line.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{CommandResult, Failure, load_config, load_templates, parse_now, print_table};
use crate::bounce::poll::{Cursor, poll};
use crate::tick::{Engine, Would};
use crate::timeline::reason_in_words;

pub async fn run(path: &Path, now: Option<&str>, dry_run: bool) -> CommandResult {
    let config = load_config(path)?;
    let now = parse_now(now, &config.business.zone)?;
    let templates = load_templates(&config)?;
    let engine = Arc::new(Engine::build(config, templates).await?);
    let summary = if dry_run {
        engine.dry_run(now).await?
    } else {
        // What came back since the last pass counts before this one decides.
        let mut cursor = Cursor::default();
        let signer = engine.signer.as_ref();
        match poll(
            &engine.config,
            engine.store.as_ref(),
            signer,
            &mut cursor,
            now,
        )
        .await
        {
            Ok(polled) if polled.acted + polled.left > 0 => eprintln!(
                "bounce mailbox: {} reports acted on, {} messages left in place",
                polled.acted, polled.left
            ),
            Ok(_) => {}
            Err(e) => eprintln!(
                "warning: bounce mailbox: {}",
                super::plain(&format!("{e:#}"))
            ),
        }
        // One pass to its end: nothing cancels it.
        engine.tick(now, &CancellationToken::new()).await?
    };
    if dry_run {
        print_would(&summary.would)?;
        super::say!("would: {summary}");
    } else {
        super::say!("{summary}");
    }
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

/// Each send a dry run would make or skip, as `plan` lists them, with the skip's reason.
fn print_would(would: &[Would]) -> CommandResult {
    if would.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = would
        .iter()
        .map(|w| {
            vec![
                w.due_at.clone(),
                w.contact.clone(),
                w.cadence.clone(),
                w.channel.clone(),
                w.occurrence.clone(),
                match &w.skip {
                    None => "send".to_owned(),
                    Some(reason) => format!("skip: {}", reason_in_words(reason)),
                },
            ]
        })
        .collect();
    print_table(
        &[
            "due_at",
            "contact",
            "cadence",
            "channel",
            "occurrence",
            "would",
        ],
        &rows,
    )
}
