//! Reading a CSV file row by row, never whole: each row is handed on with its line
//! number as borrowed text, or as the reason it cannot be read (not UTF-8, wrong
//! number of fields), which is reported rather than fatal.

use std::io::{BufRead, BufReader, Read};

use super::Fields;

/// One CSV row, borrowed from the reader's buffer.
pub struct CsvRow<'a> {
    names: &'a [String],
    values: &'a [&'a str],
}

impl Fields for CsvRow<'_> {
    fn get(&self, name: &str) -> &str {
        self.names
            .iter()
            .position(|n| n == name)
            .map_or("", |i| self.values[i].trim())
    }

    fn columns(&self) -> impl Iterator<Item = (&str, &str)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied())
    }
}

/// Calls `each` with every row of `input` in order, until it returns `false`. Fails
/// only when the header row cannot be read.
pub fn read_csv(
    input: impl Read,
    mut each: impl FnMut(u64, Result<&CsvRow<'_>, String>) -> bool,
) -> Result<(), String> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    // The csv crate counts the `\n` of a `\r\n` ending as part of the next row, whose
    // line it then gives as one too low. A file whose header ends in `\r\n` (Windows,
    // Excel) gets its rows' lines counted up by one.
    let crlf = match input.fill_buf() {
        Ok(head) => head
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|i| i > 0 && head[i - 1] == b'\r'),
        Err(e) => return Err(format!("cannot read the header row: {e}")),
    };
    let shift = u64::from(crlf);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(input);
    let headers = reader
        .byte_headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .clone();
    let mut names = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        let h = std::str::from_utf8(h).map_err(|_| "the header row is not UTF-8".to_owned())?;
        let h = if i == 0 {
            h.trim_start_matches('\u{feff}')
        } else {
            h
        };
        let name = h.trim().to_owned();
        // Two columns of one name: which one would be meant is a guess.
        if !name.is_empty() && names.contains(&name) {
            return Err(format!("the header names the column `{name}` twice"));
        }
        names.push(name);
    }
    if names.iter().all(|n| n.is_empty()) {
        return Err("the header row is empty".into());
    }
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() + shift;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line() + shift);
                if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                    continue;
                }
                let more = if record.len() != names.len() {
                    each(
                        line,
                        Err(format!(
                            "has {} fields, the header has {}{}",
                            record.len(),
                            names.len(),
                            // A quote never closed swallows the lines after it into one field.
                            if record.iter().any(|f| f.contains(&b'\n')) {
                                " (is a quote left open?)"
                            } else {
                                ""
                            }
                        )),
                    )
                } else {
                    match utf8_fields(&names, &record) {
                        Ok(values) => each(
                            line,
                            Ok(&CsvRow {
                                names: &names,
                                values: &values,
                            }),
                        ),
                        Err(reason) => each(line, Err(reason)),
                    }
                };
                if !more {
                    break;
                }
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line() + shift);
                let more = each(line, Err(format!("unreadable CSV: {e}")));
                if !more
                    || !matches!(
                        e.kind(),
                        csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                    )
                {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The row's fields as text; the last field that is not UTF-8 makes the reason.
fn utf8_fields<'r>(names: &[String], record: &'r csv::ByteRecord) -> Result<Vec<&'r str>, String> {
    let mut values = Vec::with_capacity(names.len());
    let mut bad = None;
    for (name, value) in names.iter().zip(record.iter()) {
        match std::str::from_utf8(value) {
            Ok(v) => values.push(v),
            Err(_) => {
                bad = Some(format!(
                    "{name}: is not UTF-8 text (save the file as UTF-8)"
                ))
            }
        }
    }
    bad.map_or(Ok(values), Err)
}
