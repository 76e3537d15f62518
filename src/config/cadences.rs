//! Cadence files: each cadence is read on its own, so that one bad cadence does not hide
//! the errors of the next, and validated into a [`Cadence`].

use std::path::{Path, PathBuf};

use super::raw::{self, RawCadence, RawCadenceFile};
use super::{CadenceSource, Diagnostic, Document, Schedule, Validator};
use crate::domain::{Cadence, Channel, Days, Feb29, Opening, Period, Trigger, Window};

/// Reads a cadence file, or every `*.yaml` in a directory, in name order.
pub(super) fn load(
    path: &Path,
    defaults: &Schedule,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<Cadence>, Vec<CadenceSource>) {
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut cadences: Vec<Cadence> = Vec::new();
    let mut sources: Vec<CadenceSource> = Vec::new();
    for file in files {
        match Document::read(&file) {
            Ok(doc) => read_document(&doc, defaults, errors, &mut cadences, &mut sources),
            Err(d) => errors.push(d),
        }
    }
    (cadences, sources)
}

/// The cadences of one parsed file.
pub(super) fn from_document(
    doc: &Document,
    defaults: &Schedule,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<Cadence>, Vec<CadenceSource>) {
    let (mut cadences, mut sources) = (Vec::new(), Vec::new());
    read_document(doc, defaults, errors, &mut cadences, &mut sources);
    (cadences, sources)
}

/// Adds the cadences of `doc` to those of the files read before it, whose ids they
/// must not reuse.
fn read_document(
    doc: &Document,
    defaults: &Schedule,
    errors: &mut Vec<Diagnostic>,
    cadences: &mut Vec<Cadence>,
    sources: &mut Vec<CadenceSource>,
) {
    let list: RawCadenceFile = match doc.deserialize("", doc.value.clone()) {
        Ok(list) => list,
        Err(d) => {
            errors.push(d);
            return;
        }
    };
    for (i, value) in list.cadences.into_iter().enumerate() {
        let path = format!("cadences[{i}]");
        let raw: RawCadence = match doc.deserialize(&path, value) {
            Ok(raw) => raw,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        let mut v = Validator { doc, errors };
        if let Some(first) = cadences.iter().position(|c| c.id == raw.id) {
            v.push(
                &format!("{path}.id"),
                &format!(
                    "cadence id `{}` is used twice (first at {})",
                    raw.id, sources[first].cadence
                ),
            );
            continue;
        }
        if let Some(cadence) = cadence(&mut v, &path, raw, defaults) {
            sources.push(CadenceSource {
                cadence: doc.locate(&path),
                template: doc.locate(&format!("{path}.template")),
            });
            cadences.push(cadence);
        }
    }
}

fn cadence(
    v: &mut Validator<'_>,
    path: &str,
    raw: RawCadence,
    defaults: &Schedule,
) -> Option<Cadence> {
    let id_ok = raw
        .id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && raw
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_ok {
        v.push(
            &format!("{path}.id"),
            &format!(
                "{path}.id: `{}` must be letters, digits, `-`, `_` or `.`",
                raw.id
            ),
        );
    }
    let template_ok = !raw.template.is_empty()
        && raw
            .template
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !template_ok {
        v.push(
            &format!("{path}.template"),
            &format!(
                "{path}.template: `{}` must be a plain template name such as thank-you",
                raw.template
            ),
        );
    }
    let channel = v.check(&format!("{path}.channel"), Channel::parse(&raw.channel));
    if raw.front_image.is_some() && channel != Some(Channel::Postcard) {
        v.push(
            &format!("{path}.front_image"),
            &format!("{path}.front_image: only postcards have a front"),
        );
    }
    if let Some(topic) = &raw.topic {
        let count = topic.trim().chars().count();
        if count == 0 || count > 60 || topic.chars().any(char::is_control) {
            v.push(
                &format!("{path}.topic"),
                &format!("{path}.topic: a topic is a short name (1 to 60 characters) such as \"Care tips\""),
            );
        }
    }
    let trigger = trigger(v, &format!("{path}.trigger"), &raw.trigger);
    let unless = raw.unless.unwrap_or_default();
    if !unless.is_empty() && trigger.as_ref().is_some_and(|t| t.event_kind().is_none()) {
        v.push(
            &format!("{path}.unless"),
            &format!("{path}.unless: needs an event trigger (after or every) to compare with"),
        );
    }
    let window = match &raw.send_window {
        Some(w) => v.check(&format!("{path}.send_window"), Window::parse(w)),
        None => Some(defaults.opening.window),
    };
    let days = match &raw.days {
        Some(d) => v.check(&format!("{path}.days"), Days::parse(d)),
        None => Some(defaults.opening.days),
    };
    let max_lateness = v.period(
        &format!("{path}.max_lateness"),
        raw.max_lateness.as_deref(),
        defaults.max_lateness,
    );
    if !id_ok || !template_ok {
        return None;
    }
    Some(Cadence {
        id: raw.id,
        channel: channel?,
        template: raw.template,
        trigger: trigger?,
        tags: raw.where_.and_then(|w| w.tags).unwrap_or_default(),
        unless,
        opening: Opening {
            window: window?,
            days: days?,
        },
        max_lateness: max_lateness?,
        transactional: raw.transactional.unwrap_or(false),
        enabled: raw.enabled.unwrap_or(true),
        front_image: raw.front_image,
        topic: raw.topic.map(|t| t.trim().to_owned()),
    })
}

fn trigger(v: &mut Validator<'_>, path: &str, raw: &raw::RawTrigger) -> Option<Trigger> {
    let given = [
        raw.after.is_some(),
        raw.every.is_some(),
        raw.yearly.is_some(),
        raw.cron.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        v.push(
            path,
            &format!("{path}: give exactly one of after, every, yearly or cron"),
        );
        return None;
    }
    let stray = |name: &str, present: bool, v: &mut Validator<'_>| {
        if present {
            v.push(
                &format!("{path}.{name}"),
                &format!("{path}.{name}: does not belong to this kind of trigger"),
            );
        }
    };
    if let Some(kind) = &raw.after {
        stray("since", raw.since.is_some(), v);
        stray("lead", raw.lead.is_some(), v);
        stray("feb29", raw.feb29.is_some(), v);
        let delay = match raw.delay.as_deref() {
            Some(d) => v.check(&format!("{path}.delay"), Period::parse(d)),
            None => {
                v.push(
                    path,
                    &format!("{path}: `after` needs a `delay` (0d sends at the next opening)"),
                );
                None
            }
        };
        return Some(Trigger::After {
            kind: event_kind(v, &format!("{path}.after"), kind)?,
            delay: delay?,
        });
    }
    if let Some(every) = &raw.every {
        stray("delay", raw.delay.is_some(), v);
        stray("lead", raw.lead.is_some(), v);
        stray("feb29", raw.feb29.is_some(), v);
        let period = v.check(&format!("{path}.every"), Period::parse(every));
        if period.is_some_and(|p| p.is_zero()) {
            v.push(
                &format!("{path}.every"),
                &format!("{path}.every: must be positive"),
            );
            return None;
        }
        let since = match &raw.since {
            Some(s) => event_kind(v, &format!("{path}.since"), s),
            None => {
                v.push(
                    path,
                    &format!("{path}: `every` needs `since` (the event kind it counts from)"),
                );
                None
            }
        };
        return Some(Trigger::Every {
            every: period?,
            since: since?,
        });
    }
    if let Some(field) = &raw.yearly {
        stray("delay", raw.delay.is_some(), v);
        stray("since", raw.since.is_some(), v);
        if field != "birthday" {
            v.push(
                &format!("{path}.yearly"),
                &format!("{path}.yearly: `{field}` is not a contact date; use birthday"),
            );
        }
        let lead = v.period(
            &format!("{path}.lead"),
            raw.lead.as_deref(),
            Period::days(0),
        );
        let feb29 = match raw.feb29.as_deref() {
            Some(p) => v.check(&format!("{path}.feb29"), Feb29::parse(p)),
            None => Some(Feb29::default()),
        };
        return Some(Trigger::Yearly {
            field: field.clone(),
            lead: lead?,
            feb29: feb29?,
        });
    }
    let expr = raw.cron.clone().unwrap_or_default();
    stray("delay", raw.delay.is_some(), v);
    stray("since", raw.since.is_some(), v);
    stray("lead", raw.lead.is_some(), v);
    stray("feb29", raw.feb29.is_some(), v);
    v.check(
        &format!("{path}.cron"),
        crate::plan::cron::parse_checked(&expr),
    )?;
    Some(Trigger::Cron { expr })
}

fn event_kind(v: &mut Validator<'_>, path: &str, kind: &str) -> Option<String> {
    let ok = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !ok {
        v.push(
            path,
            &format!("{path}: `{kind}` is not an event kind (a single word such as purchase)"),
        );
    }
    ok.then(|| kind.to_owned())
}
