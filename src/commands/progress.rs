//! A word of progress on a long `db import` or `db export`: a spinner on standard error
//! with the current phase and the time spent, drawn only when standard error is a
//! terminal, so that scripts, CI logs and pipes see nothing of it.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// Starts with `phase` shown, or does nothing when standard error is not a terminal.
    pub(crate) fn start(phase: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(phase.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    pub(crate) fn phase(&self, phase: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(phase.to_owned());
        }
    }
}

impl Drop for Progress {
    /// Gone before the command's own output or error is written.
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
