//! `check`'s rules for one cadence: every template renders against a sample contact, a
//! commercial email shows the business's postal address and the unsubscribe link, and
//! a postcard fits its card in the card's font.

use crate::channel::postcard::pdf;
use crate::config::{Config, Diagnostic, Location};
use crate::domain::{Cadence, Channel};
use crate::render::{RenderedCard, RenderedEmail, Templates};

use super::card::card;
use super::sample::{SAMPLE_UNSUBSCRIBE, custom_field, fill, sample_contact, sample_data};

/// Custom fields filled in, at most, while looking for the next missing one.
const MAX_FIELDS: usize = 64;

/// Renders every template of `cadence` against a sample contact, as `check` does.
/// Custom fields are open (they come from the data), so each one the template asks
/// for is filled in with a sample value; any other missing variable is an error.
pub fn check_cadence(
    config: &Config,
    templates: &Templates,
    cadence: &Cadence,
    at: &Location,
) -> Vec<Diagnostic> {
    let mut data = sample_data(config, cadence);
    for _ in 0..MAX_FIELDS {
        let result = match cadence.channel {
            Channel::Email => templates
                .render_email(&cadence.template, data.clone())
                .map(|email| commercial_requirements(config, cadence, &email, at)),
            Channel::Postcard => templates
                .render_postcard(&cadence.template, data.clone())
                .map(|card| card_layout(config, cadence, card, at)),
        };
        let failure = match result {
            Ok(missing) => return missing,
            Err(failure) => failure,
        };
        match custom_field(&failure) {
            Some(path) if fill(&mut data, path) => continue,
            _ => {
                let file = failure
                    .file()
                    .unwrap_or_else(|| format!("{}.hbs", cadence.template).into());
                let (line, col) = failure.at.unwrap_or((1, 1));
                return vec![Diagnostic {
                    location: Location {
                        file: config.templates_dir.join(file),
                        line,
                        col,
                    },
                    message: format!("cadence `{}` (see {at}): {failure}", cadence.id),
                }];
            }
        }
    }
    Vec::new()
}

/// A commercial email must show the business's postal address and the unsubscribe
/// link (in the text body, and in the HTML body when there is one).
fn commercial_requirements(
    config: &Config,
    cadence: &Cadence,
    email: &RenderedEmail,
    at: &Location,
) -> Vec<Diagnostic> {
    if cadence.transactional {
        return Vec::new();
    }
    let line1 = &config.business.address.line1;
    let mut bodies = vec![("txt", email.text.as_str())];
    if let Some(html) = &email.html {
        bodies.push(("html", html.as_str()));
    }
    let mut out = Vec::new();
    for (part, body) in bodies {
        let missing: Vec<&str> = [
            (!body.contains(line1.as_str()))
                .then_some("the business's postal address (business.address_line)"),
            (!body.contains(SAMPLE_UNSUBSCRIBE))
                .then_some("the unsubscribe link ({{unsubscribe_url}})"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !missing.is_empty() {
            out.push(Diagnostic {
                location: Location { file: config.templates_dir.join(format!("{}.{part}.hbs", cadence.template)), line: 1, col: 1 },
                message: format!(
                    "cadence `{}` (see {at}): a commercial email must show {}; mark the cadence `transactional: true` if it is not commercial",
                    cadence.id,
                    missing.join(" and ")
                ),
            });
        }
    }
    out
}

/// A postcard must fit its card (the message and address in their zones, a designed
/// front's text inside the safe area) and use only characters the card's font can
/// print; `check` sets the sample card to find out.
fn card_layout(
    config: &Config,
    cadence: &Cadence,
    rendered: RenderedCard,
    at: &Location,
) -> Vec<Diagnostic> {
    let contact = sample_contact(cadence);
    let card = card(config, cadence, &contact, 0, rendered);
    match pdf::render(&[card]) {
        Ok(_) => Vec::new(),
        Err(message) => vec![Diagnostic {
            location: Location {
                file: config.templates_dir.join(format!(
                    "{}.{}.hbs",
                    cadence.template,
                    if message.starts_with("the front") {
                        "front"
                    } else {
                        "postcard"
                    }
                )),
                line: 1,
                col: 1,
            },
            message: format!("cadence `{}` (see {at}): {message}", cadence.id),
        }],
    }
}
