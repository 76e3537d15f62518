//! The header blocks that carry a report's machine-readable fields: `message/delivery-status`
//! (one block for the message, then one per recipient, separated by blank lines) and
//! `message/feedback-report` (one block). mail-parser reads these parts as opaque bytes,
//! and its header reader stops at the first blank line, so the blocks are split here.

/// Fields kept from one block; a longer block is cut here (real blocks have about ten).
const MAX_FIELDS: usize = 64;
/// Bytes kept of one field's value; the typed readers bound further.
const MAX_VALUE: usize = 2048;

/// One header block: names lowercased, folded lines joined, values trimmed.
#[derive(Debug, Default)]
pub(super) struct Fields {
    fields: Vec<(String, String)>,
}

impl Fields {
    /// The first value of the field `name` (lowercase).
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Appends a line: a new field, or the continuation of the last one.
    fn push_line(&mut self, line: &str) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = self.fields.last_mut() {
                push_bounded(value, " ");
                push_bounded(value, line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':')
            && self.fields.len() < MAX_FIELDS
        {
            let mut kept = String::new();
            push_bounded(&mut kept, value.trim());
            self.fields.push((name.trim().to_ascii_lowercase(), kept));
        }
    }
}

/// The non-empty header blocks of `body`, in order, CRLF or LF. Lazy, so that a caller
/// that needs a bounded number of blocks reads no further.
pub(super) fn blocks(body: &str) -> impl Iterator<Item = Fields> + '_ {
    let mut lines = body.lines();
    std::iter::from_fn(move || {
        let mut block = Fields::default();
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                if block.is_empty() {
                    continue;
                }
                return Some(block);
            }
            block.push_line(line);
        }
        (!block.is_empty()).then_some(block)
    })
}

/// Appends `text` to `value` while `value` stays within `MAX_VALUE` bytes.
fn push_bounded(value: &mut String, text: &str) {
    let room = MAX_VALUE.saturating_sub(value.len());
    value.push_str(super::report::prefix(text, room));
}

/// A typed field's value (`rfc822; a@example.com`, `smtp; 550 ...`) split into its type,
/// if it has one, and the rest.
pub(super) fn typed(value: &str) -> (Option<&str>, &str) {
    match value.split_once(';') {
        Some((kind, rest)) if is_type_name(kind.trim()) => (Some(kind.trim()), rest.trim()),
        _ => (None, value.trim()),
    }
}

/// An address or diagnostic type: an atom such as `rfc822`, `smtp` or `X-Postfix`.
fn is_type_name(kind: &str) -> bool {
    !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
