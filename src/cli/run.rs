//! `tickler run`: the daemon.

use std::path::Path;

use super::{Failure, Outcome, load_config, load_templates};
use crate::daemon;

pub async fn run(path: &Path) -> Outcome {
    let config = load_config(path)?;
    let templates = load_templates(&config)?;
    daemon::run(path.to_owned(), config, templates)
        .await
        .map_err(Failure::from)
}
