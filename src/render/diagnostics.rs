//! How template problems are told: handlebars' errors turned into sentences that name
//! the template, the variable and the place, and the file each one is in.

use std::path::Path;

use handlebars::{RenderError, RenderErrorReason, TemplateErrorReason};

use crate::config::{Diagnostic, Location};

/// Turns handlebars' error into a sentence that names the template and the variable.
pub(super) fn describe(err: &RenderError, fallback: &str) -> String {
    let name = err
        .template_name
        .clone()
        .unwrap_or_else(|| fallback.to_owned());
    let at = match (err.line_no, err.column_no) {
        (Some(l), Some(c)) => format!(" (line {l}, col {c})"),
        _ => String::new(),
    };
    match err.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => {
            format!("{name}.hbs{at}: missing variable `{path}`")
        }
        other => format!("{name}.hbs{at}: {other}"),
    }
}

/// The file, under the templates directory, of the template a message names: `T.txt`
/// and `layouts/L` are where their names say; any other name is a partial.
pub(super) fn template_file(message: &str, fallback: &str) -> String {
    match message.split(".hbs").next() {
        Some(name) if !name.contains(' ') => {
            if name.contains('.') || name.starts_with("layouts/") {
                format!("{name}.hbs")
            } else {
                format!("partials/{name}.hbs")
            }
        }
        _ => format!("{fallback}.hbs"),
    }
}

pub(super) fn position(message: &str) -> (usize, usize) {
    let grab = |key: &str| -> Option<usize> {
        let rest = message.split(key).nth(1)?;
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    (grab("(line").unwrap_or(1), grab(", col").unwrap_or(1))
}

pub(super) fn template_error(file: &Path, err: &handlebars::TemplateError) -> Diagnostic {
    let (line, col) = err.pos().unwrap_or((1, 1));
    Diagnostic {
        location: Location {
            file: file.to_owned(),
            line,
            col,
        },
        message: match err.reason() {
            // The parser lists every token it could have taken; what people get wrong
            // is a tag or block left open.
            TemplateErrorReason::InvalidSyntax(_) => {
                "template syntax: cannot read the template here; is a `{{` or a `{{#block}}` left open?"
                    .to_owned()
            }
            other => format!("template syntax: {other}"),
        },
    }
}

pub(super) fn file_error(file: &Path, err: &std::io::Error) -> Diagnostic {
    Diagnostic {
        location: Location {
            file: file.to_owned(),
            line: 1,
            col: 1,
        },
        message: crate::config::yaml::read_error(err),
    }
}
