//! `tickler check`: every problem in the configuration, cadences and templates.

use std::path::Path;

use super::{Failure, Outcome, load_config, load_templates};

pub fn run(path: &Path) -> Outcome {
    let config = load_config(path)?;
    let templates = load_templates(&config)?;
    let mut errors = Vec::new();
    for (cadence, source) in config.cadences.iter().zip(&config.cadence_sources) {
        errors.extend(
            templates
                .check_cadence(&config, cadence, &source.cadence)
                .iter()
                .map(ToString::to_string),
        );
    }
    if !errors.is_empty() {
        return Err(Failure::Errors(errors));
    }
    super::say!(
        "ok: {} cadences, {} templates",
        config.cadences.len(),
        templates.count()
    );
    Ok(())
}
