//! Why a message could not be rendered, as data: the template that failed, the place
//! and the reason, so that `check` can point at the file and fill in a missing custom
//! field. Its text is the send's `failed` reason and the heart of `check`'s message.

use std::fmt;
use std::path::PathBuf;

use handlebars::{RenderError, RenderErrorReason};

/// A template that failed to render.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderFailure {
    /// The registered name of the template or partial that failed: `T.txt`,
    /// `layouts/base`, or a partial's own name such as `footer`.
    pub template: String,
    /// Line and column in it, when handlebars knows them.
    pub at: Option<(usize, usize)>,
    pub reason: RenderReason,
}

/// What went wrong in the template.
#[derive(Clone, Debug, PartialEq)]
pub enum RenderReason {
    /// Strict mode met a variable the data does not have, named by its path
    /// (`contact.fields.note`).
    MissingVariable(String),
    /// The configuration has no such template part.
    NotLoaded,
    /// The message would outgrow its budget, in bytes.
    TooLarge(usize),
    NotUtf8,
    /// Any other error, as handlebars tells it.
    Other(String),
}

impl RenderFailure {
    /// handlebars' error; `fallback` names the template when handlebars does not.
    pub(super) fn from_handlebars(err: &RenderError, fallback: &str) -> RenderFailure {
        let reason = match err.reason() {
            RenderErrorReason::MissingVariable(Some(path)) => {
                RenderReason::MissingVariable(path.clone())
            }
            other => RenderReason::Other(other.to_string()),
        };
        RenderFailure {
            template: err
                .template_name
                .clone()
                .unwrap_or_else(|| fallback.to_owned()),
            at: err.line_no.zip(err.column_no),
            reason,
        }
    }

    /// A failure of template `template` with no place in it.
    pub(super) fn of(template: &str, reason: RenderReason) -> RenderFailure {
        RenderFailure {
            template: template.to_owned(),
            at: None,
            reason,
        }
    }

    /// The file of the failed template, under the templates directory: `T.txt` and
    /// `layouts/L` are where their names say, any other name is a partial. None for a
    /// template that is not loaded.
    pub fn file(&self) -> Option<PathBuf> {
        if self.reason == RenderReason::NotLoaded {
            return None;
        }
        let name = &self.template;
        Some(PathBuf::from(
            if name.contains('.') || name.starts_with("layouts/") {
                format!("{name}.hbs")
            } else {
                format!("partials/{name}.hbs")
            },
        ))
    }
}

impl fmt::Display for RenderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == RenderReason::NotLoaded {
            return write!(f, "template {}.hbs is not loaded", self.template);
        }
        write!(f, "{}.hbs", self.template)?;
        if let Some((line, col)) = self.at {
            write!(f, " (line {line}, col {col})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RenderFailure {}

impl fmt::Display for RenderReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderReason::MissingVariable(path) => write!(f, "missing variable `{path}`"),
            RenderReason::NotLoaded => f.write_str("the template is not loaded"),
            RenderReason::TooLarge(budget) => write!(
                f,
                "the message would be larger than {} MB",
                budget / (1024 * 1024)
            ),
            RenderReason::NotUtf8 => f.write_str("the output is not UTF-8"),
            RenderReason::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_the_send_reason_and_points_at_the_file() {
        let missing = RenderFailure {
            template: "footer".into(),
            at: Some((3, 7)),
            reason: RenderReason::MissingVariable("contact.fields.note".into()),
        };
        assert_eq!(
            missing.to_string(),
            "footer.hbs (line 3, col 7): missing variable `contact.fields.note`"
        );
        assert_eq!(missing.file(), Some(PathBuf::from("partials/footer.hbs")));
        let large = RenderFailure::of("t.html", RenderReason::TooLarge(1024 * 1024));
        assert_eq!(
            large.to_string(),
            "t.html.hbs: the message would be larger than 1 MB"
        );
        assert_eq!(large.file(), Some(PathBuf::from("t.html.hbs")));
        let absent = RenderFailure::of("t.subject", RenderReason::NotLoaded);
        assert_eq!(absent.to_string(), "template t.subject.hbs is not loaded");
        assert_eq!(absent.file(), None);
        let layout = RenderFailure::of("layouts/base", RenderReason::NotUtf8);
        assert_eq!(layout.file(), Some(PathBuf::from("layouts/base.hbs")));
    }
}
