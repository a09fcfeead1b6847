//! Closes a connection whose client has sent bytes that envoi has not answered for too
//! long: a request head sent a byte at a time, or a body that never ends.
//!
//! actix-http times only the head of a connection's first request
//! (`client_request_timeout`), and an idle connection only once a whole request is done
//! (`keep_alive`). After a first answer, a client could send the next head a byte every
//! few seconds; and after the `413` of a request whose chunked body it never finished,
//! the dispatcher waits for the rest of that body, to discard it, with no timer at all,
//! whether the client sends it slowly or not at all. Either held a connection for as
//! long as the client liked: 20,000 of them took the process to its file limit, and
//! honest requests went unanswered. Every request envoi takes is a head alone (a body is
//! refused), answered as soon as the head is whole, so:
//!
//! - bytes the client sent that no answer has followed for longer than the request
//!   timeout are a client stalling, whatever the state of the protocol;
//! - a connection silent for longer than the keep-alive time after an answer is one the
//!   dispatcher should have closed already.
//!
//! The clock is one timer per connection that ticks every request timeout: the
//! connection is closed at the second tick that finds the same bytes unanswered
//! (between one and two timeouts after they came), or at the tick that finds it silent
//! for more than a keep-alive time and one tick more. An answer (any byte written), and
//! the first byte read after one, start the count again; more bytes of the same
//! unanswered request do not. The timer is reset only when it fires, so a busy kept-alive
//! connection pays for it about once a timeout, not once a request.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Instant, Sleep};

/// A client connection, closed when its client stalls (see the module's documentation).
pub struct AnswerDeadline<S> {
    io: S,
    timeout: Duration,
    tick: Pin<Box<Sleep>>,
    /// Bytes came that no answer has followed yet.
    waiting: bool,
    /// Ticks since the last byte read or written.
    ticks: u32,
    /// Ticks a connection may stay silent after an answer.
    silent_ticks: u32,
}

impl<S> AnswerDeadline<S> {
    /// `timeout` zero is taken as one millisecond: no connection may wait forever.
    pub fn new(io: S, timeout: Duration, keep_alive: Duration) -> Self {
        let timeout = timeout.max(Duration::from_millis(1));
        let silent = keep_alive.as_nanos().div_ceil(timeout.as_nanos()) + 1;
        Self {
            io,
            timeout,
            tick: Box::pin(sleep(timeout)),
            waiting: false,
            ticks: 0,
            silent_ticks: u32::try_from(silent).unwrap_or(u32::MAX),
        }
    }

    /// Counts the ticks; an error once the connection has stalled through too many.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.tick.as_mut().poll(cx).is_ready() {
            self.ticks = self.ticks.saturating_add(1);
            let allowed = if self.waiting { 1 } else { self.silent_ticks };
            if self.ticks > allowed {
                let why = if self.waiting {
                    "the client's request was not sent within the request timeout"
                } else {
                    "the connection stayed silent past its keep-alive time"
                };
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            let next = Instant::now() + self.timeout;
            self.tick.as_mut().reset(next);
        }
        Ok(())
    }

    fn answered(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.waiting = false;
            self.ticks = 0;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AnswerDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check(cx)?;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before && !this.waiting {
            this.waiting = true;
            this.ticks = 0;
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnswerDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, bytes);
        self.answered(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bytes);
        self.answered(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
