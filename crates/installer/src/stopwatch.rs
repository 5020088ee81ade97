//! Where an install's time goes: a stopwatch over its phases, reported on
//! one line with `-v` (`time: archives 4ms, stage 118ms, …`).

use std::time::{Duration, Instant};

/// Times the phases of one transaction.
pub(crate) struct Stopwatch {
    last: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Stopwatch {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Ends the phase called `name` (the time since the previous mark).
    pub(crate) fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, now - self.last));
        self.last = now;
    }

    /// Logs every phase so far, at info level.
    pub(crate) fn report(&self) {
        let phases: Vec<String> = self
            .done
            .iter()
            .map(|(name, took)| format!("{name} {:.1}ms", took.as_secs_f64() * 1000.0))
            .collect();
        tracing::info!("time: {}", phases.join(", "));
    }
}
