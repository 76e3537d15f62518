//! How problems found while loading the templates are told: each a sentence at the
//! file, line and column it is about.

use std::path::Path;

use handlebars::TemplateErrorReason;

use crate::config::{Diagnostic, Location};

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
