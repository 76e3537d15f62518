//! YAML reading with positions. serde tells *what* is wrong with a document; this
//! module tells *where*: it indexes the line and column of every node by its path
//! (`cadences[2].trigger.delay`), so that each error names the file, line and column.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser};
use serde::de::DeserializeOwned;

/// A place in a file, printed as `FILE:LINE:COL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem found in the configuration, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// A parsed YAML file: its text, its value tree and the position of every node.
pub struct Document {
    pub file: PathBuf,
    pub value: serde_yaml::Value,
    /// Path of a node -> (line, column) of its value, both 1-based.
    nodes: HashMap<String, (usize, usize)>,
    /// Path of a mapping entry -> (line, column) of its key.
    keys: HashMap<String, (usize, usize)>,
}

impl Document {
    /// Reads and parses `file`; a syntax error is returned as the one diagnostic.
    pub fn read(file: &Path) -> Result<Document, Diagnostic> {
        let at = |line, col| Location {
            file: file.to_owned(),
            line,
            col,
        };
        let text = std::fs::read_to_string(file).map_err(|e| Diagnostic {
            location: at(1, 1),
            message: read_error(&e),
        })?;
        Document::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Document, Diagnostic> {
        let at = |(line, col): (usize, usize)| Location {
            file: file.to_owned(),
            line,
            col,
        };
        let unclosed = super::yaml_guard::check(text).map_err(|refusal| Diagnostic {
            location: at(refusal.at),
            message: format!("YAML syntax: {}", refusal.message),
        })?;
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
            let error = syntax_error(file, text, &e);
            match unclosed {
                // The parser notices an unclosed bracket only where it gives up.
                Some(open) => Diagnostic {
                    location: at(open),
                    message: format!("{} (this bracket is never closed)", error.message),
                },
                None => error,
            }
        })?;
        let (mut nodes, mut keys, _) = index(text);
        let end = End::of(text);
        for at in nodes.values_mut().chain(keys.values_mut()) {
            *at = end.clamp(*at);
        }
        Ok(Document {
            file: file.to_owned(),
            value,
            nodes,
            keys,
        })
    }

    /// Where the node at `path` is; falls back to its nearest indexed ancestor.
    pub fn locate(&self, path: &str) -> Location {
        let mut path = path.to_owned();
        loop {
            if let Some(&(line, col)) = self.nodes.get(&path) {
                return Location {
                    file: self.file.clone(),
                    line,
                    col,
                };
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path.truncate(cut),
                None => {
                    return Location {
                        file: self.file.clone(),
                        line: 1,
                        col: 1,
                    };
                }
            }
        }
    }

    /// Where the key of the mapping entry at `path` is.
    pub fn locate_key(&self, path: &str) -> Location {
        match self.keys.get(path) {
            Some(&(line, col)) => Location {
                file: self.file.clone(),
                line,
                col,
            },
            None => self.locate(path),
        }
    }

    pub fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            location: self.locate(path),
            message: message.into(),
        }
    }

    /// Deserializes the node at `path` (a value taken from this document) into `T`,
    /// turning serde's complaint into a diagnostic at the field it is about.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        path: &str,
        value: serde_yaml::Value,
    ) -> Result<T, Diagnostic> {
        serde_path_to_error::deserialize(value).map_err(|err| {
            let inner = join(path, &err.path().to_string());
            let message = strip_location(&err.inner().to_string());
            let location = match unknown_field(&message) {
                // serde_path_to_error's path may or may not end with the unknown key.
                Some(field) if inner == field || inner.ends_with(&format!(".{field}")) => {
                    self.locate_key(&inner)
                }
                Some(field) => self.locate_key(&join(&inner, field)),
                None => self.locate(&inner),
            };
            let message = readable(&message);
            let field = if inner.is_empty() {
                String::new()
            } else {
                format!("{inner}: ")
            };
            Diagnostic {
                location,
                message: format!("{field}{message}"),
            }
        })
    }
}

/// Why a text file could not be read, in words that say what to do about it.
pub fn read_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData {
        "cannot read the file: it is not UTF-8 text (save it as UTF-8)".to_owned()
    } else {
        format!("cannot read the file: {e}")
    }
}

fn join(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty() || rest == ".") {
        (_, true) => base.to_owned(),
        (true, false) => rest.to_owned(),
        (false, false) if rest.starts_with('[') => format!("{base}{rest}"),
        (false, false) => format!("{base}.{rest}"),
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// serde's words for our raw types, in the words of the YAML file.
fn readable(message: &str) -> String {
    let mut out = message
        .replacen("unknown field", "unknown key", 1)
        .replacen("missing field", "missing key", 1);
    // `expected struct RawTrigger` means a mapping of keys was expected.
    while let Some(start) = out.find("struct Raw") {
        let name = start + "struct ".len();
        let end = out[name..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(out.len(), |n| name + n);
        out.replace_range(start..end, "a mapping of keys");
    }
    out
}

/// A syntax error at its line and column. Some of serde_yaml's errors only point at the
/// start of the document: a byte offset (`at position N`) is turned into a line and
/// column, and a duplicate key is found by indexing the text.
fn syntax_error(file: &Path, text: &str, err: &serde_yaml::Error) -> Diagnostic {
    let mut message = strip_location(&err.to_string());
    let mut at = err.location().map(|l| (l.line(), l.column()));
    if let Some(cut) = message.find(" at position ") {
        // Its location, if any, is only the start of the document.
        let offset = message[cut + 13..].trim().parse::<usize>().ok();
        at = offset.map(|o| line_col(text, o)).or(at);
        message.truncate(cut);
    }
    if message.contains("duplicate entry") {
        at = index(text).2.first().copied().or(at);
    }
    let (line, col) = End::of(text).clamp(at.unwrap_or((1, 1)));
    Diagnostic {
        location: Location {
            file: file.to_owned(),
            line,
            col,
        },
        message: format!("YAML syntax: {}", readable(&message)),
    }
}

/// Where a text ends: its number of lines (as YAML counts them) and the length of the
/// last one.
struct End {
    lines: usize,
    last: usize,
}

impl End {
    fn of(text: &str) -> End {
        let normalized = text.replace("\r\n", "\n");
        let last = normalized.rsplit(['\r', '\n']).next().unwrap_or_default();
        End {
            lines: normalized.matches(['\r', '\n']).count() + 1,
            last: last.chars().count(),
        }
    }

    /// The position itself, or the end of the text when the parser reports one past it
    /// (something found at the end of a file with no final newline).
    fn clamp(&self, (line, col): (usize, usize)) -> (usize, usize) {
        if line > self.lines {
            (self.lines, self.last + 1)
        } else {
            (line.max(1), col.max(1))
        }
    }
}

/// Line and column (1-based) of a byte offset, counting line breaks as YAML does.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut col) = (1, 1);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if i >= offset {
            break;
        }
        let crlf = c == '\r' && chars.peek().is_some_and(|(_, n)| *n == '\n');
        if (c == '\n' || c == '\r') && !crlf {
            line += 1;
            col = 1;
        } else if !crlf {
            col += 1;
        }
    }
    (line, col)
}

/// serde_yaml appends " at line L column C"; we print the location in front instead.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

type Positions = HashMap<String, (usize, usize)>;

/// Walks the parser's events, recording where each node and each key starts, and where
/// a key repeats one before it in the same mapping.
fn index(text: &str) -> (Positions, Positions, Vec<(usize, usize)>) {
    let mut nodes = HashMap::new();
    let mut keys = HashMap::new();
    let mut repeated = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let at = (span.start.line(), span.start.col() + 1);
        let starts_node = matches!(
            event,
            Event::Scalar(..)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
                | Event::Alias(..)
        );
        if starts_node {
            // A scalar where a mapping expects a key is that key.
            if let (
                Some(Frame::Map {
                    path,
                    key: key @ None,
                }),
                Event::Scalar(name, ..),
            ) = (stack.last_mut(), &event)
            {
                if keys.insert(join(path, name), at).is_some() {
                    repeated.push(at);
                }
                *key = Some(name.to_string());
                continue;
            }
            let path = match stack.last_mut() {
                None => String::new(),
                Some(Frame::Map { path, key }) => join(path, &key.take().unwrap_or_default()),
                Some(Frame::Seq { path, next }) => {
                    *next += 1;
                    format!("{path}[{}]", *next - 1)
                }
            };
            nodes.entry(path.clone()).or_insert(at);
            match event {
                Event::MappingStart(..) => stack.push(Frame::Map { path, key: None }),
                Event::SequenceStart(..) => stack.push(Frame::Seq { path, next: 0 }),
                _ => {}
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
        }
    }
    (nodes, keys, repeated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_keys_are_located() {
        let text = "a: 1\ncadences:\n  - id: x\n    trigger: { after: purchase, delay: 2d }\n";
        let doc = Document::parse(Path::new("c.yaml"), text).unwrap();
        assert_eq!(doc.locate("cadences[0].id").to_string(), "c.yaml:3:9");
        assert_eq!(
            doc.locate("cadences[0].trigger.delay").to_string(),
            "c.yaml:4:40"
        );
        assert_eq!(
            doc.locate_key("cadences[0].trigger").to_string(),
            "c.yaml:4:5"
        );
        assert_eq!(doc.locate("cadences[0].nope").to_string(), "c.yaml:3:5");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = Document::parse(Path::new("c.yaml"), "a: [1, 2\nb: 3\n")
            .err()
            .unwrap();
        assert_eq!(err.location.file, Path::new("c.yaml"));
        assert!(err.location.line >= 1);
        assert!(err.message.starts_with("YAML syntax"));
    }

    #[test]
    fn errors_without_a_location_get_one() {
        let err = Document::parse(Path::new("c.yaml"), "a: 1\nb:\n  c: 2\n  c: 3\n")
            .err()
            .unwrap();
        assert_eq!(err.location.to_string(), "c.yaml:4:3", "{err}");
        assert!(err.message.contains("duplicate entry"), "{err}");
        let err = Document::parse(Path::new("c.yaml"), "a: 1\r\nb: x\u{0}y\n")
            .err()
            .unwrap();
        assert_eq!(err.location.to_string(), "c.yaml:2:5", "{err}");
        assert!(!err.message.contains("position"), "{err}");
    }

    #[test]
    fn an_error_at_the_end_points_at_the_last_line() {
        // Found by fuzzing: the parser reported line 3 of a two-line file. An unclosed
        // bracket is reported where it opens (the innermost one).
        let err = Document::parse(Path::new("c.yaml"), "a: { b: [1,\n  ")
            .err()
            .unwrap();
        assert_eq!(err.location.to_string(), "c.yaml:1:9", "{err}");
        let err = Document::parse(Path::new("c.yaml"), "a: 'open\n  ")
            .err()
            .unwrap();
        assert_eq!(err.location.line, 2, "{err}");
        // And a node there: `---` alone is an empty document, located on line 1.
        let doc = Document::parse(Path::new("c.yaml"), "---").unwrap();
        assert_eq!(doc.locate("").to_string(), "c.yaml:1:4");
    }

    #[test]
    fn raw_type_names_do_not_reach_the_user() {
        assert_eq!(
            readable("invalid type: string \"x\", expected struct RawTrigger"),
            "invalid type: string \"x\", expected a mapping of keys"
        );
        assert_eq!(readable("missing field `id`"), "missing key `id`");
    }
}
