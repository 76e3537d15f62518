//! `tickler check`: every problem in the configuration, cadences and templates.

use std::path::Path;

use super::{Failure, Outcome};
use crate::config::Config;
use crate::render::Templates;

pub fn run(path: &Path) -> Outcome {
    let config = Config::load(path)
        .map_err(|d| Failure::Errors(d.0.iter().map(ToString::to_string).collect()))?;
    let templates = Templates::load(&config)
        .map_err(|d| Failure::Errors(d.iter().map(ToString::to_string).collect()))?;
    let mut errors = Vec::new();
    for (cadence, source) in config.cadences.iter().zip(&config.cadence_sources) {
        if cadence.channel == crate::domain::Channel::Postcard {
            errors.push(format!(
                "{}: cadence `{}`: the postcard channel is not available in this version",
                source.cadence, cadence.id
            ));
            continue;
        }
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
    println!(
        "ok: {} cadences, {} templates",
        config.cadences.len(),
        templates.count()
    );
    Ok(())
}
