//! A socket with a byte budget: the IMAP client buffers whatever the server sends (up to
//! 512 MiB a reply), so each command is given a budget and reading past it fails.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The bytes a stream may still read before reads fail with [`OverBudget`].
#[derive(Debug)]
pub(super) struct Limited<S> {
    inner: S,
    remaining: usize,
}

/// The error a read past the budget ends with, found again in the IMAP client's error.
#[derive(Debug, thiserror::Error)]
#[error("the server sent more than tickler reads in answer to one command")]
pub(super) struct OverBudget;

impl<S> Limited<S> {
    pub(super) fn new(inner: S, budget: usize) -> Limited<S> {
        Limited {
            inner,
            remaining: budget,
        }
    }

    /// Sets the budget for the next command's reply.
    pub(super) fn set_budget(&mut self, budget: usize) {
        self.remaining = budget;
    }

    pub(super) fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether `error` (or what it wraps) is a read past the budget.
pub(super) fn is_over_budget(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<OverBudget>())
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(Err(io::Error::other(OverBudget)));
        }
        // Read no more than the budget allows, so that it is never overdrawn.
        let allowed = buf.remaining().min(this.remaining);
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(allowed));
        let poll = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let filled = limited.filled().len();
        if let Poll::Ready(Ok(())) = poll {
            buf.advance(filled);
            this.remaining -= filled;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn reads_up_to_the_budget_and_then_fails() {
        let mut stream = Limited::new(&b"0123456789"[..], 4);
        let mut got = [0u8; 10];
        assert_eq!(stream.read(&mut got).await.unwrap(), 4);
        assert_eq!(&got[..4], b"0123");
        let error = stream.read(&mut got).await.unwrap_err();
        assert!(is_over_budget(&error), "{error}");
        stream.set_budget(100);
        assert_eq!(stream.read(&mut got).await.unwrap(), 6);
    }
}
