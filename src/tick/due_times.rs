//! The next due times a pass has planned but not yet written. Each write of them
//! touches pages of the due index all over (the times are spread over months), so a
//! pass writes them in fewer, larger batches, and each such page is rewritten fewer
//! times. Until written, their contacts stay marked, and so due for the next pass
//! should this one stop.

use crate::store::{NextDue, PassToken};

/// Next due times kept before they are written.
const KEPT: usize = 65_536;

/// A batch to write: due times, and the pass as it marked their contacts.
pub(super) type Batch = (Vec<NextDue>, PassToken);

/// Next due times planned under one mark, not yet written.
#[derive(Default)]
pub(super) struct DueTimes {
    times: Vec<NextDue>,
    mark: Option<PassToken>,
}

impl DueTimes {
    /// Keeps `times`, planned under `mark`, and returns what must be written now: the
    /// times kept under another mark, and all of them once there are enough.
    pub(super) fn keep(&mut self, times: Vec<NextDue>, mark: PassToken) -> Vec<Batch> {
        let mut ready = Vec::new();
        if self
            .mark
            .as_ref()
            .is_some_and(|kept| kept.mark != mark.mark)
        {
            ready.extend(self.take());
        }
        self.times.extend(times);
        self.mark = Some(mark);
        if self.times.len() >= KEPT {
            ready.extend(self.take());
        }
        ready
    }

    /// Everything kept, to write at the end of the pass.
    pub(super) fn take(&mut self) -> Option<Batch> {
        let mark = self.mark.take()?;
        let times = std::mem::take(&mut self.times);
        (!times.is_empty()).then_some((times, mark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(from: usize, n: usize) -> Vec<NextDue> {
        (from..from + n).map(|i| (format!("C{i}"), None)).collect()
    }

    fn two_marks() -> (PassToken, PassToken) {
        (PassToken::with_mark(-7), PassToken::with_mark(-9))
    }

    #[test]
    fn times_are_kept_until_there_are_enough_then_written_together() {
        let (mark, _) = two_marks();
        let mut due = DueTimes::default();
        assert!(due.keep(times(0, KEPT - 1), mark.clone()).is_empty());
        let ready = due.keep(times(KEPT - 1, 2), mark.clone());
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0, times(0, KEPT + 1), "every one, in order");
        assert!(due.take().is_none(), "nothing left after the write");
    }

    #[test]
    fn times_under_another_mark_are_written_first_and_the_rest_at_the_end() {
        let (first, second) = two_marks();
        let mut due = DueTimes::default();
        assert!(due.keep(times(0, 3), first.clone()).is_empty());
        let ready = due.keep(times(3, 2), second.clone());
        assert_eq!(ready.len(), 1);
        assert_eq!(
            (ready[0].0.clone(), ready[0].1.mark),
            (times(0, 3), first.mark)
        );
        let (rest, mark) = due.take().expect("the second page's times");
        assert_eq!((rest, mark.mark), (times(3, 2), second.mark));
        assert!(due.take().is_none());
    }
}
