//! CSV that a spreadsheet opens as data. A cell beginning with `=`, `+`, `-`, `@`, a tab
//! or a carriage return is a formula to Excel and LibreOffice, and customers' names and
//! ids come from outside: such a cell is written with a leading `'` (SPEC section 9).

use std::borrow::Cow;
use std::io::Write;

/// `cell` as a spreadsheet shows it literally.
pub fn defuse(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A CSV writer whose every cell goes through [`defuse`]; records are serialized with
/// serde as `csv::Writer` does (a header row from the first one).
pub struct Writer<W: Write> {
    out: csv::Writer<W>,
    /// Where a record is serialized before its cells are defused.
    scratch: csv::Writer<Vec<u8>>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer {
            out: csv::Writer::from_writer(out),
            scratch: csv::Writer::from_writer(Vec::new()),
        }
    }

    /// Writes one row of plain cells.
    pub fn write_record<'a>(
        &mut self,
        cells: impl IntoIterator<Item = &'a str>,
    ) -> csv::Result<()> {
        let cells: Vec<Cow<'_, str>> = cells.into_iter().map(defuse).collect();
        self.out.write_record(cells.iter().map(|c| c.as_bytes()))
    }

    /// Writes `record` (and the header row before the first one).
    pub fn serialize<T: serde::Serialize>(&mut self, record: &T) -> csv::Result<()> {
        self.scratch.serialize(record)?;
        self.scratch.flush()?;
        let scratch = std::mem::replace(
            &mut self.scratch,
            csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new()),
        );
        let bytes = scratch.into_inner().map_err(|e| e.into_error())?;
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        for row in rows.records() {
            let row = row?;
            self.write_record(row.iter())?;
        }
        Ok(())
    }

    pub fn into_inner(self) -> std::io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_written_as_text() {
        let mut w = Writer::new(Vec::new());
        w.write_record([
            "=HYPERLINK(\"x\")",
            "+cmd",
            "@SUM(A1)",
            "-C-ID",
            "plain",
            "",
        ])
        .unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "\"'=HYPERLINK(\"\"x\"\")\",'+cmd,'@SUM(A1),'-C-ID,plain,\n"
        );
    }

    #[test]
    fn serialized_records_keep_one_header() {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            contact: &'a str,
            n: u32,
        }
        let mut w = Writer::new(Vec::new());
        w.serialize(&Row {
            contact: "=1+1",
            n: 1,
        })
        .unwrap();
        w.serialize(&Row {
            contact: "K-2",
            n: 2,
        })
        .unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text, "contact,n\n'=1+1,1\nK-2,2\n");
    }
}
