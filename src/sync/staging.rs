//! The event rows of an import, held until the whole file is read, then handed back
//! sorted by contact (each contact's rows in line order), so that the events index and
//! the contacts are each visited once, in order, however the file is ordered.
//!
//! Rows are sorted in runs of `RUN_ROWS`, each appended to an unnamed temporary file (in
//! `TMPDIR`, else /tmp; gone when closed or when the process dies), and merged a piece
//! of each run at a time: memory stays at about one run whatever the file's size.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::thread::JoinHandle;

use tokio::sync::mpsc::{Receiver, Sender, channel};

use super::PendingEvent;

/// Rows sorted in memory and written together (about 15 MB of parsed rows).
const RUN_ROWS: usize = 65_536;
/// Bytes of all runs read back at a time, shared among the runs.
const READ_AHEAD: usize = 4 << 20;

/// A row of the file with its line.
pub(super) type Row = (u64, PendingEvent);

pub(super) struct Staging {
    /// Rows not yet handed to the writer, in line order.
    gathering: Vec<Row>,
    /// Full runs to the thread that sorts and writes them, so that gathering goes on
    /// meanwhile (the import's reader would otherwise wait for every run).
    runs: Option<Sender<Vec<Row>>>,
    writer: Option<JoinHandle<anyhow::Result<Written>>>,
}

/// The temporary file and the byte range of each sorted run in it.
type Written = (File, Vec<(u64, u64)>);

impl Staging {
    pub(super) fn open() -> anyhow::Result<Staging> {
        let file = tempfile::tempfile()
            .map_err(|e| anyhow::anyhow!("cannot make a temporary file for the import: {e}"))?;
        let (runs, mut to_write) = channel(1);
        let writer = std::thread::Builder::new()
            .name("import-staging".into())
            .spawn(move || write_runs(file, &mut to_write))?;
        Ok(Staging {
            gathering: Vec::with_capacity(RUN_ROWS),
            runs: Some(runs),
            writer: Some(writer),
        })
    }

    /// Adds rows, which come in line order.
    pub(super) async fn add(&mut self, rows: Vec<Row>) -> anyhow::Result<()> {
        self.gathering.extend(rows);
        if self.gathering.len() >= RUN_ROWS {
            let run = self.take_run();
            let handed = match &self.runs {
                Some(runs) => runs.send(run).await.is_ok(),
                None => false,
            };
            if !handed {
                // The writer stopped: its error says why.
                self.finish()?;
            }
        }
        Ok(())
    }

    fn take_run(&mut self) -> Vec<Row> {
        std::mem::replace(&mut self.gathering, Vec::with_capacity(RUN_ROWS))
    }

    /// Waits for the writer to write every run handed over.
    fn finish(&mut self) -> anyhow::Result<Written> {
        self.runs = None;
        self.writer
            .take()
            .ok_or_else(|| anyhow::anyhow!("the import's temporary file is closed"))?
            .join()
            .map_err(|_| anyhow::anyhow!("the writer of the import's temporary file stopped"))?
    }

    /// Every row added, sorted by contact and line. It blocks: call it off the runtime.
    pub(super) fn sorted(mut self) -> anyhow::Result<Sorted> {
        if !self.gathering.is_empty() {
            let run = self.take_run();
            let handed = self
                .runs
                .as_ref()
                .is_some_and(|runs| runs.blocking_send(run).is_ok());
            if !handed {
                self.finish()?;
            }
        }
        let (file, runs) = self.finish()?;
        let batch = (READ_AHEAD / runs.len().max(1)).max(1 << 12);
        let mut sorted = Sorted {
            file,
            runs: runs
                .into_iter()
                .map(|(next, end)| Run {
                    next,
                    end,
                    buffer: Vec::new(),
                    rows: VecDeque::new(),
                })
                .collect(),
            fronts: BinaryHeap::new(),
            batch,
        };
        for run in 0..sorted.runs.len() {
            sorted.advance(run)?;
        }
        Ok(sorted)
    }
}

/// Sorts and writes each run handed over, until the sender goes.
fn write_runs(file: File, to_write: &mut Receiver<Vec<Row>>) -> anyhow::Result<Written> {
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut written = 0;
    let mut runs = Vec::new();
    let mut packed = Vec::new();
    while let Some(rows) = to_write.blocking_recv() {
        // Sorted by a key beside each row's position: a row is too big to move about,
        // and comparing rows where they lie would chase a pointer each time.
        let mut keys: Vec<(SortKey, u32)> = rows
            .iter()
            .enumerate()
            .map(|(position, row)| (SortKey::of(row), position as u32))
            .collect();
        keys.sort_unstable_by(|(a, pa), (b, pb)| {
            a.cmp_with(b, || order(&rows[*pa as usize], &rows[*pb as usize]))
        });
        let start = written;
        for (_, position) in keys {
            let (line, e) = &rows[position as usize];
            pack(*line, e, &mut packed);
            out.write_all(&packed)?;
            written += packed.len() as u64;
        }
        runs.push((start, written));
    }
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write the import's temporary file: {e}"))?;
    Ok((file, runs))
}

/// By contact, then line.
fn order(a: &Row, b: &Row) -> Ordering {
    (&a.1.contact_id, a.0).cmp(&(&b.1.contact_id, b.0))
}

/// The start of a row's `order`: its contact id's first 16 bytes as a number (big
/// endian and padded with zeros, so that numbers compare as the ids do; an id holds
/// no NUL), whether the id is longer, and the line.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey(u128, bool, u64);

impl SortKey {
    fn of((line, e): &Row) -> SortKey {
        let id = e.contact_id.as_bytes();
        let mut prefix = [0u8; 16];
        let n = id.len().min(16);
        prefix[..n].copy_from_slice(&id[..n]);
        SortKey(u128::from_be_bytes(prefix), id.len() > 16, *line)
    }

    /// Compares as `order` does, asking `rows` only when the keys cannot tell.
    fn cmp_with(&self, other: &SortKey, rows: impl FnOnce() -> Ordering) -> Ordering {
        match self.0.cmp(&other.0) {
            // Two long ids with the same start: only the whole ids tell.
            Ordering::Equal if self.1 && other.1 => rows(),
            Ordering::Equal => (self.1, self.2).cmp(&(other.1, other.2)),
            unequal => unequal,
        }
    }
}

/// A row as its length (4 bytes), its line (8) and its text, whose parts are
/// separated by NUL, which a checked row does not hold (control characters are
/// refused, and JSON escapes them); no id is an empty one.
fn pack(line: u64, e: &PendingEvent, packed: &mut Vec<u8>) {
    packed.clear();
    packed.extend_from_slice(&[0; 4]);
    packed.extend_from_slice(&line.to_le_bytes());
    for part in [
        e.contact_id.as_str(),
        e.id.as_deref().unwrap_or_default(),
        &e.kind,
        &e.at,
    ] {
        packed.extend_from_slice(part.as_bytes());
        packed.push(0);
    }
    packed.extend_from_slice(e.fields.as_bytes());
    let len = u32::try_from(packed.len() - 4).unwrap_or(u32::MAX);
    packed[..4].copy_from_slice(&len.to_le_bytes());
}

/// The length of the packed row at the start of `bytes`, if it is all there.
fn packed_len(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    (bytes.len() >= 4 + len).then_some(4 + len)
}

fn unpack(packed: &[u8]) -> anyhow::Result<Row> {
    let line = u64::from_le_bytes(packed[4..12].try_into()?);
    let text = std::str::from_utf8(&packed[12..])?;
    let mut parts = text.splitn(5, '\0');
    let mut next = || {
        parts
            .next()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("a staged event row is cut short"))
    };
    Ok((
        line,
        PendingEvent {
            contact_id: next()?,
            id: Some(next()?).filter(|id| !id.is_empty()),
            kind: next()?,
            at: next()?,
            fields: next()?,
        },
    ))
}

/// The staged rows, merged from their runs.
pub(super) struct Sorted {
    file: File,
    runs: Vec<Run>,
    /// The first unread row of each run that has one, with the run's index.
    fronts: BinaryHeap<Reverse<Front>>,
    /// Bytes a run reads at a time.
    batch: usize,
}

struct Run {
    /// Where the next read starts, and where the run ends.
    next: u64,
    end: u64,
    /// Bytes read but not yet unpacked (a row cut off at the end of a read).
    buffer: Vec<u8>,
    rows: VecDeque<Row>,
}

struct Front(SortKey, Row, usize);

impl PartialEq for Front {
    fn eq(&self, other: &Front) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Front {}

impl PartialOrd for Front {
    fn partial_cmp(&self, other: &Front) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Front {
    fn cmp(&self, other: &Front) -> Ordering {
        self.0.cmp_with(&other.0, || order(&self.1, &other.1))
    }
}

impl Sorted {
    /// The rows of whole contacts, at least `at_least` of them unless the staged rows run
    /// out first; `None` once every row has been given.
    pub(super) fn next_chunk(&mut self, at_least: usize) -> anyhow::Result<Option<Vec<Row>>> {
        let mut chunk: Vec<Row> = Vec::with_capacity(at_least);
        while let Some(Reverse(front)) = self.fronts.peek() {
            if chunk.len() >= at_least
                && chunk
                    .last()
                    .is_some_and(|(_, e)| e.contact_id != front.1.1.contact_id)
            {
                break;
            }
            let Some(Reverse(Front(_, row, run))) = self.fronts.pop() else {
                break;
            };
            chunk.push(row);
            self.advance(run)?;
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }

    /// Puts the next row of `run` among the fronts, reading more of the run if need be.
    fn advance(&mut self, run: usize) -> anyhow::Result<()> {
        let r = &mut self.runs[run];
        while r.rows.is_empty() && r.next < r.end {
            let want = self
                .batch
                .min(usize::try_from(r.end - r.next).unwrap_or(usize::MAX));
            let kept = r.buffer.len();
            r.buffer.resize(kept + want, 0);
            self.file.read_exact_at(&mut r.buffer[kept..], r.next)?;
            r.next += want as u64;
            let mut at = 0;
            while let Some(len) = packed_len(&r.buffer[at..]) {
                r.rows.push_back(unpack(&r.buffer[at..at + len])?);
                at += len;
            }
            r.buffer.drain(..at);
            if r.next >= r.end && !r.buffer.is_empty() {
                anyhow::bail!("the import's temporary file ends inside a row");
            }
        }
        if let Some(row) = r.rows.pop_front() {
            self.fronts
                .push(Reverse(Front(SortKey::of(&row), row, run)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64, contact: &str) -> Row {
        (
            line,
            PendingEvent {
                contact_id: contact.to_owned(),
                id: Some(format!("E{line}")),
                kind: "purchase".into(),
                at: "2026-03-01".into(),
                fields: "{}".into(),
            },
        )
    }

    /// Rows over several runs come back in (contact, line) order, each contact's rows
    /// in one chunk, none lost or repeated.
    #[test]
    fn runs_merge_into_contact_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut staging = Staging::open().unwrap();
        let total = RUN_ROWS * 2 + 100;
        let mut rows = Vec::new();
        for line in 0..total as u64 {
            // 1,000 contacts in a scrambled order.
            rows.push(row(line + 2, &format!("C{:04}", line * 7919 % 1000)));
            if rows.len() == 5000 {
                runtime
                    .block_on(staging.add(std::mem::take(&mut rows)))
                    .unwrap();
            }
        }
        runtime.block_on(staging.add(rows)).unwrap();
        let mut sorted = staging.sorted().unwrap();
        let mut seen = Vec::new();
        let mut contacts_seen = std::collections::HashSet::new();
        while let Some(chunk) = sorted.next_chunk(3000).unwrap() {
            let mut contacts: Vec<&str> =
                chunk.iter().map(|(_, e)| e.contact_id.as_str()).collect();
            contacts.dedup();
            for c in contacts {
                assert!(contacts_seen.insert(c.to_owned()), "{c} split over chunks");
            }
            seen.extend(chunk.into_iter().map(|(line, e)| (e.contact_id, line)));
        }
        assert_eq!(seen.len(), total);
        assert!(seen.is_sorted(), "in contact, then line order");
        assert_eq!(contacts_seen.len(), 1000);
    }

    /// The keys order rows as their ids and lines do, long ids and prefixes of others
    /// among them.
    #[test]
    fn sort_keys_order_as_ids_do() {
        let ids = [
            "C-1",
            "C-10",
            "C-1a",
            "a-very-long-contact-id-1",
            "a-very-long-contact-id-10",
            "a-very-long-contact-id-2",
            "a-very-long-contact-i",
            "a-very-long-contact-id",
            "a-very-long-cont",
            "a-very-long-con",
            "Z",
            "é",
        ];
        let rows: Vec<Row> = ids.iter().flat_map(|id| [row(3, id), row(2, id)]).collect();
        for a in &rows {
            for b in &rows {
                let by_key = SortKey::of(a).cmp_with(&SortKey::of(b), || order(a, b));
                assert_eq!(
                    by_key,
                    order(a, b),
                    "{:?} {:?}",
                    (a.0, &a.1.contact_id),
                    (b.0, &b.1.contact_id)
                );
            }
        }
    }

    #[test]
    fn a_row_comes_back_as_it_went_in() {
        let mut packed = Vec::new();
        for id in [Some("E-1".to_owned()), None] {
            let e = PendingEvent {
                contact_id: "K-1".into(),
                id,
                kind: "purchase".into(),
                at: "2026-03-01T10:00:00-05:00".into(),
                fields: r#"{"item":"tile, \"white\"","note":"a\u0000b"}"#.into(),
            };
            pack(12, &e, &mut packed);
            assert_eq!(packed_len(&packed), Some(packed.len()));
            assert_eq!(packed_len(&packed[..packed.len() - 1]), None);
            assert_eq!(unpack(&packed).unwrap(), (12, e));
        }
    }

    #[test]
    fn nothing_staged_gives_nothing() {
        let mut sorted = Staging::open().unwrap().sorted().unwrap();
        assert!(sorted.next_chunk(10).unwrap().is_none());
    }
}
