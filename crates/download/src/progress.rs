//! Hearing how downloads advance, and a terminal progress bar in bytes.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Wanted;

/// Told how each transfer goes; called from the downloading threads.
///
/// A transfer (a download, or a copy of a `file:` URL) calls
/// [`Progress::started`] once, then [`Progress::advanced`] per chunk, then
/// [`Progress::finished`] once, whether it succeeded or not. A file served
/// from the cache is no transfer and calls nothing.
pub trait Progress: Sync {
    /// A transfer of `wanted` began; `total` is its size when known.
    fn started(&self, wanted: &Wanted, total: Option<u64>) {
        let _ = (wanted, total);
    }

    /// `bytes` more bytes of `wanted` arrived.
    fn advanced(&self, wanted: &Wanted, bytes: u64) {
        let _ = (wanted, bytes);
    }

    /// An attempt failed and will be retried: the `discarded` bytes it had
    /// received (already reported by [`Progress::advanced`]) start over.
    fn retrying(&self, wanted: &Wanted, discarded: u64) {
        let _ = (wanted, discarded);
    }

    /// The transfer of `wanted` ended.
    fn finished(&self, wanted: &Wanted) {
        let _ = wanted;
    }
}

/// No progress reporting.
impl Progress for () {}

/// One bar in bytes for all transfers, on stderr, drawn only when stderr
/// is a terminal (hidden otherwise: nothing is written to a log or a pipe).
#[derive(Debug)]
pub struct TerminalProgress {
    bar: ProgressBar,
    active: AtomicUsize,
    done: AtomicUsize,
}

impl TerminalProgress {
    /// A bar on stderr if it is a terminal, else a hidden one.
    pub fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        TerminalProgress::with_draw_target(target)
    }

    /// A bar drawn on `target`.
    pub fn with_draw_target(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        let template =
            "{spinner} Downloading {msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        TerminalProgress {
            bar,
            active: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }

    /// Bytes counted so far (what the bar shows).
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Removes the bar from the terminal.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }

    fn update_message(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let active = self.active.load(Ordering::Relaxed);
        self.bar
            .set_message(format!("({done} done, {active} in flight)"));
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        TerminalProgress::new()
    }
}

impl Drop for TerminalProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for TerminalProgress {
    fn started(&self, _wanted: &Wanted, total: Option<u64>) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.bar.inc_length(total.unwrap_or(0));
        self.update_message();
    }

    fn advanced(&self, _wanted: &Wanted, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn retrying(&self, _wanted: &Wanted, discarded: u64) {
        self.bar.dec(discarded);
    }

    fn finished(&self, _wanted: &Wanted) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        self.update_message();
    }
}
