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
    // Rows read with their line endings as LF: the csv crate counts the `\n` of a
    // `\r\n` as part of the next row, whose line it would give one too low.
    let input = CrlfToLf {
        inner: BufReader::with_capacity(1 << 16, input),
        cr_pending: false,
    };
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
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
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
                let line = e.position().map_or(line, |p| p.line());
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

/// A reader that turns each `\r\n` into `\n` (a lone `\r` is kept).
struct CrlfToLf<R> {
    inner: R,
    /// A `\r` that ended the last buffer: it is dropped if a `\n` follows.
    cr_pending: bool,
}

impl<R: BufRead> Read for CrlfToLf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let mut written = 0;
            if self.cr_pending {
                self.cr_pending = false;
                if self.inner.fill_buf()?.first() != Some(&b'\n') {
                    out[0] = b'\r';
                    written = 1;
                }
            }
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(written);
            }
            let take = buf.len().min(out.len() - written);
            let mut used = 0;
            while used < take {
                let rest = &buf[used..take];
                let Some(at) = memchr::memchr(b'\r', rest) else {
                    out[written..written + rest.len()].copy_from_slice(rest);
                    written += rest.len();
                    used = take;
                    break;
                };
                out[written..written + at].copy_from_slice(&rest[..at]);
                written += at;
                let cr = used + at;
                match buf.get(cr + 1) {
                    Some(b'\n') => {}
                    Some(_) => {
                        out[written] = b'\r';
                        written += 1;
                    }
                    None => self.cr_pending = true,
                }
                used = cr + 1;
            }
            self.inner.consume(used);
            if written > 0 {
                return Ok(written);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads through a `CrlfToLf` whose inner buffer holds `chunk` bytes at a time.
    fn normalized(text: &[u8], chunk: usize, out: usize) -> Vec<u8> {
        let mut reader = CrlfToLf {
            inner: BufReader::with_capacity(chunk, text),
            cr_pending: false,
        };
        let mut all = Vec::new();
        let mut buf = vec![0; out];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn crlf_becomes_lf_across_buffer_boundaries() {
        let text = b"a,b\r\n1,2\r\n3,\r4\r\r\n\r";
        for chunk in 1..8 {
            for out in 1..8 {
                assert_eq!(normalized(text, chunk, out), b"a,b\n1,2\n3,\r4\r\n\r");
            }
        }
    }

    #[test]
    fn lines_are_right_whatever_the_line_endings() {
        let text = "id,name\n1,a\r\n2,b\r\n3,\"c\nd\"\n4,e\r\n";
        let mut lines = Vec::new();
        read_csv(text.as_bytes(), |line, row| {
            lines.push((line, row.map(|r| r.get("id").to_owned())));
            true
        })
        .unwrap();
        let ids: Vec<(u64, String)> = lines.into_iter().map(|(l, r)| (l, r.unwrap())).collect();
        assert_eq!(
            ids,
            [
                (2, "1".into()),
                (3, "2".into()),
                (4, "3".into()),
                (6, "4".into())
            ]
        );
    }
}
