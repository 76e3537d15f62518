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
            message: format!("cannot read the file: {e}"),
        })?;
        Document::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Document, Diagnostic> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Diagnostic {
            location: error_location(file, &e),
            message: format!("YAML syntax: {}", strip_location(&e.to_string())),
        })?;
        let (nodes, keys) = index(text);
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
            let message = message.replacen("unknown field", "unknown key", 1);
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

fn error_location(file: &Path, err: &serde_yaml::Error) -> Location {
    let (line, col) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
    Location {
        file: file.to_owned(),
        line,
        col,
    }
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

/// Walks the parser's events, recording where each node and each key starts.
fn index(text: &str) -> (Positions, Positions) {
    let mut nodes = HashMap::new();
    let mut keys = HashMap::new();
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
                keys.insert(join(path, name), at);
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
    (nodes, keys)
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
}
