//! The bounds a template must keep so that compiling and rendering it ends: the size
//! of its source, how deep its blocks and subexpressions nest before handlebars'
//! recursive parser sees them, and the size of the message it renders.

use std::io::{Error, ErrorKind, Write};
use std::path::Path;

use handlebars::{Context, Handlebars};

use super::failure::{RenderFailure, RenderReason};
use crate::config::{Diagnostic, Location};

/// A template file larger than this is not a message template.
pub(super) const MAX_SOURCE_BYTES: usize = 256 * 1024;

/// Blocks and partials nested deeper than this along any path are refused: rendering
/// recurses once a level, and real messages need a handful.
pub(super) const MAX_DEPTH: usize = 32;

/// `#each` blocks nested deeper than this are refused: each level multiplies the
/// iterations by the length of a list, and three levels of bounded data stay bounded.
pub(super) const MAX_EACH: usize = 3;

/// Subexpressions `(a (b ...))` nested deeper than this are refused before compiling,
/// as the parser recurses once a level.
const MAX_SUBEXPRESSION: usize = 16;

/// All parts of one message together may not render larger than this.
pub(super) const MAX_OUTPUT: usize = 1024 * 1024;

/// Why a source is refused before it is compiled: the place (line, column) and a
/// sentence.
pub(super) type Refusal = ((usize, usize), String);

/// Refuses a source too large, or nested too deep for the parser, with the place.
/// The scan is lexical and errs on the side of counting: a `{{#` inside a raw block
/// counts as an open block.
pub(super) fn scan(text: &str) -> Result<(), Refusal> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err((
            (1, 1),
            format!(
                "the template is {} KB; a template may be at most {} KB",
                text.len().div_ceil(1024),
                MAX_SOURCE_BYTES / 1024
            ),
        ));
    }
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i + 1 < bytes.len() {
        if !(bytes[i] == b'{' && bytes[i + 1] == b'{') || (i > 0 && bytes[i - 1] == b'\\') {
            i += 1;
            continue;
        }
        let start = i;
        let rest = &text[i..];
        if rest.starts_with("{{!--") {
            i += rest.find("--}}").map_or(rest.len(), |n| n + 4);
            continue;
        }
        if rest.starts_with("{{!") {
            i += rest.find("}}").map_or(rest.len(), |n| n + 2);
            continue;
        }
        i += 2;
        while i < bytes.len() && matches!(bytes[i], b'{' | b'~' | b' ') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'#') => depth += 1,
            Some(b'^') if bytes.get(i + 1).is_some_and(|b| !matches!(b, b'}' | b'~')) => depth += 1,
            Some(b'/') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err((
                place(text, start),
                format!("blocks are nested more than {MAX_DEPTH} deep"),
            ));
        }
        let mut parens = 0usize;
        let mut quote = None;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'"' || b == b'\'' => quote = Some(b),
                None if b == b'(' => {
                    parens += 1;
                    if parens > MAX_SUBEXPRESSION {
                        return Err((
                            place(text, i),
                            format!("subexpressions are nested more than {MAX_SUBEXPRESSION} deep"),
                        ));
                    }
                }
                None if b == b')' => parens = parens.saturating_sub(1),
                None if b == b'}' && bytes.get(i + 1) == Some(&b'}') => break,
                None => {}
            }
            i += 1;
        }
    }
    Ok(())
}

/// Line and column (both from 1, the column in characters) of byte `offset`.
fn place(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A message part's output that refuses to grow past what is left of the message's
/// budget, so that a template cannot fill the memory before it fails.
pub(super) struct Capped {
    pub buf: Vec<u8>,
    pub left: usize,
    /// Set once a write was refused, to tell the budget apart from other failures.
    pub over: bool,
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() > self.left.saturating_sub(self.buf.len()) {
            self.over = true;
            return Err(Error::new(ErrorKind::OutOfMemory, too_large()));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The reason a message over budget fails with.
fn too_large() -> String {
    RenderReason::TooLarge(MAX_OUTPUT).to_string()
}

/// Renders template `name` into what is left of the message's `budget` (all parts of
/// one message share it); `None` when the template has no such part.
pub(super) fn render_part(
    registry: &Handlebars<'static>,
    name: &str,
    context: &Context,
    budget: &mut usize,
) -> Result<Option<String>, RenderFailure> {
    if !registry.has_template(name) {
        return Ok(None);
    }
    let mut out = Capped {
        buf: Vec::new(),
        left: *budget,
        over: false,
    };
    match registry.render_with_context_to_write(name, context, &mut out) {
        Ok(()) => {}
        Err(_) if out.over => {
            return Err(RenderFailure::of(name, RenderReason::TooLarge(MAX_OUTPUT)));
        }
        Err(e) => return Err(RenderFailure::from_handlebars(&e, name)),
    }
    *budget = budget.saturating_sub(out.buf.len());
    String::from_utf8(out.buf)
        .map(Some)
        .map_err(|_| RenderFailure::of(name, RenderReason::NotUtf8))
}

pub(super) fn refused(file: &Path, ((line, col), message): Refusal) -> Diagnostic {
    Diagnostic {
        location: Location {
            file: file.to_owned(),
            line,
            col,
        },
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_deep_nesting_before_the_parser_sees_it() {
        let blocks = "{{#if a}}".repeat(MAX_DEPTH + 1);
        let (at, message) = scan(&format!("x\n  {blocks}")).unwrap_err();
        assert_eq!(at, (2, 3 + 9 * MAX_DEPTH));
        assert!(message.contains("nested more than 32"), "{message}");
        let subs = format!("{{{{a {}b{}}}}}", "(c ".repeat(40), ")".repeat(40));
        assert!(scan(&subs).unwrap_err().1.contains("subexpressions"));
        // Closed blocks, else, comments and quoted parentheses do not count.
        let fine = "{{#if a}}{{else}}{{^}}{{/if}}".repeat(100)
            + "{{!-- {{#if}} --}}{{default x \"((((((((((((((((((((\"}}";
        assert_eq!(scan(&fine), Ok(()));
        assert!(scan(&"x".repeat(MAX_SOURCE_BYTES + 1)).is_err());
    }

    #[test]
    fn what_the_parser_would_overflow_on_is_refused() {
        // Far past the limits, the scan refuses what compiling would die on.
        let deep = format!(
            "{{{{a {}b{}}}}}",
            "(c ".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(scan(&deep).is_err());
        let blocks = "{{#if a}}".repeat(100_000);
        assert!(scan(&blocks).is_err());
    }

    #[test]
    fn the_budget_stops_the_output() {
        let mut out = Capped {
            buf: Vec::new(),
            left: 4,
            over: false,
        };
        assert!(out.write_all(b"abc").is_ok());
        assert!(out.write_all(b"de").is_err());
        assert!(out.over);
    }
}
