//! Where log lines go: standard error, written in batches.
//!
//! A `write(2)` per line cost about 1.4 µs of each answer under load, 10 % of envoi's
//! CPU (bench/README.md), and more when standard error is a pipe to a log collector that
//! wakes for each write. Lines below WARN are therefore gathered in memory and written
//! together by a flusher thread, at most `log.flush_interval_ms` after the first of them,
//! or sooner once [`EARLY_FLUSH_BYTES`] are waiting. A warning or an error is written at
//! once, after everything gathered before it: lines never change order. A crash that
//! kills the process outright (SIGKILL, out of memory) loses at most one interval of
//! lines; a normal exit writes them all ([`flush`]).
//!
//! Memory stays bounded: past [`MAX_PENDING_BYTES`] (a stalled collector) a logging
//! thread waits and writes the batch itself rather than drop a line.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Waiting bytes that wake the flusher before the interval is up.
const EARLY_FLUSH_BYTES: usize = 64 * 1024;
/// Waiting bytes past which a logging thread writes the batch itself.
const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// The output the global subscriber writes to, for [`flush`].
static INSTALLED: OnceLock<Arc<Batched>> = OnceLock::new();

/// Writes out every line gathered so far. Call before the process exits.
pub fn flush() {
    if let Some(batched) = INSTALLED.get() {
        batched.write_out();
    }
}

/// Lines on their way to standard error.
pub struct Batched {
    /// Lines not yet written.
    pending: Mutex<Vec<u8>>,
    /// Held while writing to standard error, so that batches keep their order. Taken
    /// before `pending`, never after.
    output: Mutex<Vec<u8>>,
    flusher: OnceLock<Thread>,
}

impl Batched {
    /// Starts the flusher thread; `interval` zero writes each line at once.
    pub fn install(interval: Duration) -> io::Result<Arc<Self>> {
        let batched = Arc::new(Self {
            pending: Mutex::new(Vec::with_capacity(EARLY_FLUSH_BYTES)),
            output: Mutex::new(Vec::with_capacity(EARLY_FLUSH_BYTES)),
            flusher: OnceLock::new(),
        });
        if !interval.is_zero() {
            let flusher = batched.clone();
            let thread = std::thread::Builder::new()
                .name("envoi-log".into())
                .spawn(move || loop {
                    // Sleeps until a line arrives, then gives the batch `interval` to fill
                    // unless it fills sooner. Wake-ups for other reasons (a new batch begun
                    // after a warning wrote the last one) do not cut the wait short.
                    std::thread::park();
                    let due = Instant::now() + interval;
                    while let Some(left) = due.checked_duration_since(Instant::now()) {
                        if flusher.pending().len() >= EARLY_FLUSH_BYTES {
                            break;
                        }
                        std::thread::park_timeout(left);
                    }
                    flusher.write_out();
                })?;
            let _ = batched.flusher.set(thread.thread().clone());
        }
        let _ = INSTALLED.set(batched.clone());
        Ok(batched)
    }

    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        // A thread that panicked while holding the lock left whole lines: keep going.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes every waiting line, in order.
    fn write_out(&self) {
        let mut output = self.output.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::swap(&mut *output, &mut *self.pending());
        if !output.is_empty() {
            // Nowhere to report a failure to write the log; the next batch tries again.
            let _ = io::stderr().lock().write_all(&output);
            output.clear();
        }
    }

    fn push(&self, line: &[u8], urgent: bool) {
        let waiting = {
            let mut pending = self.pending();
            pending.extend_from_slice(line);
            pending.len()
        };
        match self.flusher.get() {
            Some(flusher) if !urgent && waiting < MAX_PENDING_BYTES => {
                if waiting == line.len() || waiting >= EARLY_FLUSH_BYTES {
                    flusher.unpark();
                }
            }
            _ => self.write_out(),
        }
    }
}

/// One event's line, handed over whole: the formatter writes it in one call.
pub struct LineSink<'a> {
    batched: &'a Batched,
    urgent: bool,
}

impl Write for LineSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.batched.push(bytes, self.urgent);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The writer handed to tracing-subscriber.
#[derive(Clone)]
pub struct BatchedStderr(pub Arc<Batched>);

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink {
            batched: &self.0,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineSink {
            batched: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}
