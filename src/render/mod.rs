//! Templates: handlebars in strict mode, one registry that HTML-escapes (for HTML
//! bodies) and one that does not (subjects and text bodies), sharing partials,
//! layouts and helpers. A missing variable is an error, never a blank in a
//! customer's mail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars};
use serde_json::Value;

use crate::config::{Config, Diagnostic};
use crate::domain::Channel;

mod diagnostics;
mod failure;
mod graph;
mod helpers;
mod limits;
mod partials;
use diagnostics::{file_error, template_error};
pub use failure::{RenderFailure, RenderReason};
use helpers::registry;

/// An email, rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedEmail {
    /// One line: newlines and runs of spaces are folded into single spaces.
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// A postcard's text, rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedCard {
    /// The message side (`T.postcard.hbs`).
    pub message: String,
    /// The front (`T.front.hbs`), when the template has one: text, or an SVG document
    /// (rendered with its values escaped) when the template begins with markup.
    pub front: Option<String>,
}

/// The compiled templates of one configuration.
pub struct Templates {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
    /// Template names the cadences use, for `check`'s count.
    names: BTreeSet<String>,
}

impl Templates {
    /// Compiles the partials, layouts and every template the cadences name. Reports
    /// each missing file and each syntax error, with its position.
    pub fn load(config: &Config) -> Result<Templates, Vec<Diagnostic>> {
        let dir = &config.templates_dir;
        let mut errors = Vec::new();
        let mut text = registry(false);
        let mut html = registry(true);
        let mut sources = Vec::new();
        for (sub, prefix) in [("partials", ""), ("layouts", "layouts/")] {
            for file in hbs_files(&dir.join(sub)) {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let name = format!("{prefix}{}", name.trim_end_matches(".hbs"));
                match std::fs::read_to_string(&file) {
                    Ok(source) => {
                        if let Err(refusal) = limits::scan(&source) {
                            errors.push(limits::refused(&file, refusal));
                            continue;
                        }
                        for registry in [&mut text, &mut html] {
                            if let Err(e) = registry.register_partial(&name, &source) {
                                errors.push(template_error(&file, &e));
                                break;
                            }
                        }
                        sources.push(partials::Source {
                            name,
                            file,
                            text: source,
                            partial: true,
                        });
                    }
                    Err(e) => errors.push(file_error(&file, &e)),
                }
            }
        }
        let mut names = BTreeSet::new();
        for (cadence, source) in config.cadences.iter().zip(&config.cadence_sources) {
            if let Some(image) = &cadence.front_image
                && let Err(message) = front_image_ok(dir, Path::new(image))
            {
                errors.push(Diagnostic {
                    location: source.cadence.clone(),
                    message: format!("cadence `{}`: front_image: {message}", cadence.id),
                });
            }
            if !names.insert(cadence.template.clone()) {
                continue;
            }
            let parts: &[(&str, bool)] = match cadence.channel {
                Channel::Email => &[("subject", true), ("txt", true), ("html", false)],
                Channel::Postcard => &[("postcard", true), ("front", false)],
            };
            for &(part, required) in parts {
                let file = dir.join(format!("{}.{part}.hbs", cadence.template));
                if !file.exists() {
                    if required {
                        errors.push(Diagnostic {
                            location: source.template.clone(),
                            message: format!(
                                "cadence `{}`: template file {} does not exist",
                                cadence.id,
                                file.display()
                            ),
                        });
                    }
                    continue;
                }
                match std::fs::read_to_string(&file) {
                    Ok(body) => {
                        if let Err(refusal) = limits::scan(&body) {
                            errors.push(limits::refused(&file, refusal));
                            continue;
                        }
                        let name = format!("{}.{part}", cadence.template);
                        // A front that is an SVG document is markup: its values are
                        // escaped, as an HTML body's are.
                        let markup = part == "html"
                            || (part == "front" && body.trim_start().starts_with('<'));
                        let registry = if markup { &mut html } else { &mut text };
                        if let Err(e) = registry.register_template_string(&name, &body) {
                            errors.push(template_error(&file, &e));
                        }
                        sources.push(partials::Source {
                            name,
                            file,
                            text: body,
                            partial: false,
                        });
                    }
                    Err(e) => errors.push(file_error(&file, &e)),
                }
            }
        }
        errors.extend(partials::diagnose(&sources));
        if errors.is_empty() {
            Ok(Templates { text, html, names })
        } else {
            Err(errors)
        }
    }

    /// Templates compiled from text instead of files: partials by name, and the parts
    /// (`subject`, `txt`, `html`) of the email template `name`. Lets the fuzzers and
    /// tests compile hostile sources without a directory; the first syntax error wins.
    pub fn from_sources(
        partials: &[(&str, &str)],
        name: &str,
        parts: &[(&str, &str)],
    ) -> Result<Templates, String> {
        let mut text = registry(false);
        let mut html = registry(true);
        let mut sources = Vec::new();
        for (partial, source) in partials {
            limits::scan(source).map_err(|(_, m)| format!("partial {partial}: {m}"))?;
            for registry in [&mut text, &mut html] {
                registry
                    .register_partial(partial, source)
                    .map_err(|e| format!("partial {partial}: {}", e.reason()))?;
            }
            sources.push(partials::Source {
                name: partial.to_string(),
                file: PathBuf::from(format!("partials/{partial}.hbs")),
                text: source.to_string(),
                partial: true,
            });
        }
        for (part, source) in parts {
            let registry = if *part == "html" {
                &mut html
            } else {
                &mut text
            };
            let full = format!("{name}.{part}");
            limits::scan(source).map_err(|(_, m)| format!("{full}: {m}"))?;
            registry
                .register_template_string(&full, source)
                .map_err(|e| format!("{full}: {}", e.reason()))?;
            sources.push(partials::Source {
                file: PathBuf::from(format!("{full}.hbs")),
                name: full,
                text: source.to_string(),
                partial: false,
            });
        }
        if let Some(d) = partials::diagnose(&sources).first() {
            return Err(d.to_string());
        }
        Ok(Templates {
            text,
            html,
            names: BTreeSet::from([name.to_owned()]),
        })
    }

    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// Renders the parts of email template `template` against `data` (taken whole:
    /// handlebars would otherwise copy it for each part).
    pub fn render_email(
        &self,
        template: &str,
        data: Value,
    ) -> Result<RenderedEmail, RenderFailure> {
        let context = Context::from(data);
        let mut budget = limits::MAX_OUTPUT;
        let mut render = |registry: &Handlebars<'static>, part: &str| {
            limits::render_part(
                registry,
                &format!("{template}.{part}"),
                &context,
                &mut budget,
            )
        };
        let absent =
            |part: &str| RenderFailure::of(&format!("{template}.{part}"), RenderReason::NotLoaded);
        let subject = render(&self.text, "subject")?.ok_or_else(|| absent("subject"))?;
        let text = render(&self.text, "txt")?.ok_or_else(|| absent("txt"))?;
        Ok(RenderedEmail {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text,
            html: render(&self.html, "html")?,
        })
    }

    pub fn render_postcard(
        &self,
        template: &str,
        data: Value,
    ) -> Result<RenderedCard, RenderFailure> {
        let context = Context::from(data);
        let mut budget = limits::MAX_OUTPUT;
        let mut render = |registry: &Handlebars<'static>, part: &str| {
            let name = format!("{template}.{part}");
            limits::render_part(registry, &name, &context, &mut budget)
                .map(|text| text.map(|t| t.trim().to_owned()))
        };
        let message = render(&self.text, "postcard")?.ok_or_else(|| {
            RenderFailure::of(&format!("{template}.postcard"), RenderReason::NotLoaded)
        })?;
        let front = match render(&self.html, "front")? {
            Some(svg) => Some(svg),
            None => render(&self.text, "front")?,
        };
        Ok(RenderedCard { message, front })
    }
}

/// A front image must be a PNG or JPEG file inside the templates directory `dir`
/// (symbolic links followed), so that a cadence cannot print any file on the machine.
fn front_image_ok(dir: &Path, image: &Path) -> Result<(), String> {
    let path = dir.join(image);
    let inside = match (dir.canonicalize(), path.canonicalize()) {
        (Ok(d), Ok(p)) => p.starts_with(d),
        _ => true,
    };
    if !inside {
        return Err(format!(
            "{} is outside the templates directory `{}`; put the image there",
            image.display(),
            dir.display()
        ));
    }
    let mut head = [0u8; 4];
    std::fs::File::open(&path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if head.starts_with(b"\x89PNG") || head.starts_with(&[0xff, 0xd8, 0xff]) {
        Ok(())
    } else {
        Err(format!("{} is not a PNG or JPEG image", path.display()))
    }
}

fn hbs_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "hbs"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
