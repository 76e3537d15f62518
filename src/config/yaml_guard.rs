//! Limits a YAML text meets before a parser sees it. The YAML parser's work grows with
//! the square of the nesting of flow collections (`[[[...` or `{a: {a: ...` takes
//! seconds at 40,000 levels), so a file larger than [`MAX_BYTES`] or nested deeper than
//! [`MAX_DEPTH`] is refused at the place it goes too far. The same scan remembers where
//! each `[` and `{` opened, so that one never closed is reported where it opens rather
//! than where the parser gave up.

/// Larger than any configuration or cadence file a business writes.
pub const MAX_BYTES: usize = 2 << 20;
/// Deeper than any configuration needs.
pub const MAX_DEPTH: usize = 64;

/// What the scan found wrong, at (line, column), both 1-based.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub at: (usize, usize),
    pub message: String,
}

/// Refuses a text too large or nested too deep; otherwise returns where the innermost
/// unclosed `[` or `{` opens, if the scan saw one.
pub fn check(text: &str) -> Result<Option<(usize, usize)>, Refusal> {
    if text.len() > MAX_BYTES {
        return Err(Refusal {
            at: (1, 1),
            message: format!(
                "the file is {} bytes; tickler reads YAML files of at most {} MB",
                text.len(),
                MAX_BYTES >> 20
            ),
        });
    }
    let mut scan = Scan::default();
    for (i, line) in text.split('\n').enumerate() {
        scan.line(i + 1, line.strip_suffix('\r').unwrap_or(line))?;
    }
    Ok(scan.open.last().copied())
}

/// The state of a scan that follows flow collections, quoted scalars, comments and
/// block scalars, and nothing else of YAML.
#[derive(Default)]
struct Scan {
    /// Where each open `[` or `{` is.
    open: Vec<(usize, usize)>,
    /// Inside a quoted scalar that runs across lines: its quote.
    quote: Option<char>,
    /// Inside a block scalar (`|` or `>`): lines indented more than this belong to it.
    block_scalar: Option<usize>,
}

impl Scan {
    fn line(&mut self, number: usize, line: &str) -> Result<(), Refusal> {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(parent) = self.block_scalar {
            if line.trim().is_empty() || indent > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        // Whether a scalar may start here: at the start of the line's content, after
        // `- `, `: `, or inside a flow collection after `[`, `{` or `,`.
        let mut value_start = true;
        let mut i = 0;
        while i < chars.len() {
            let (_, c) = chars[i];
            let col = i + 1;
            if let Some(q) = self.quote {
                if c == '\\' && q == '"' {
                    i += 2;
                    continue;
                }
                if c == q {
                    // `''` inside a single-quoted scalar is a quote, not its end.
                    if q == '\'' && chars.get(i + 1).is_some_and(|(_, n)| *n == '\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                }
                i += 1;
                continue;
            }
            let flow = !self.open.is_empty();
            match c {
                ' ' | '\t' => {
                    i += 1;
                    continue;
                }
                '#' if i == 0 || chars[i - 1].1 == ' ' || chars[i - 1].1 == '\t' => break,
                '"' | '\'' if value_start => self.quote = Some(c),
                '[' | '{' if value_start || flow => {
                    self.open.push((number, col));
                    if self.open.len() > MAX_DEPTH {
                        return Err(Refusal {
                            at: (number, col),
                            message: format!(
                                "collections are nested more than {MAX_DEPTH} deep here"
                            ),
                        });
                    }
                    value_start = true;
                    i += 1;
                    continue;
                }
                ']' | '}' if flow => {
                    self.open.pop();
                }
                ',' if flow => {
                    value_start = true;
                    i += 1;
                    continue;
                }
                '-' | ':' | '?' if chars.get(i + 1).is_none_or(|(_, n)| *n == ' ') => {
                    value_start = true;
                    i += 1;
                    continue;
                }
                '|' | '>' if value_start && !flow => {
                    self.block_scalar = Some(indent);
                    return Ok(());
                }
                _ => {}
            }
            value_start = false;
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_where_it_goes_too_deep() {
        let text = format!("cadences: {}", "[".repeat(40_000));
        let refusal = check(&text).unwrap_err();
        assert_eq!(refusal.at, (1, 11 + MAX_DEPTH));
        let text = format!("a: {}", "{a: ".repeat(50_000));
        assert!(check(&text).is_err());
    }

    #[test]
    fn ordinary_yaml_passes() {
        let text = "business:\n  name: Tiles [north] & {south}\n  note: 'it''s [' # [\n  \
                    address: { line1: \"1 [Main\", city: Troy }\n  body: |\n    [[[ text\n  days: [mon, [tue]]\n";
        assert_eq!(check(text), Ok(None));
    }

    #[test]
    fn an_unclosed_bracket_is_found_where_it_opens() {
        let text = "a:\n  b: { c: 1, d: 2\n  e: 3\n";
        assert_eq!(check(text), Ok(Some((2, 6))));
    }
}
