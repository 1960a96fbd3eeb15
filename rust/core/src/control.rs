//! Cancellation and progress for long computations.
//!
//! A [`Control`] is shared between the thread that asked for a computation and the workers that
//! run it: workers add finished work units to `done` and stop at the next unit boundary once
//! [`Control::cancel`] was called; the caller reads [`Control::progress`] to draw a progress bar.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared cancellation flag and progress counters.
#[derive(Debug, Default)]
pub struct Control {
    cancelled: AtomicBool,
    done: AtomicU64,
    total: AtomicU64,
}

impl Control {
    /// A fresh control: not cancelled, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the computation to stop at the next work-unit boundary.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Control::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `(done, total)` work units so far; `total` is 0 until the computation has planned its work.
    pub fn progress(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }

    pub(crate) fn add_total(&self, units: u64) {
        self.total.fetch_add(units, Ordering::Relaxed);
    }

    pub(crate) fn advance(&self, units: u64) {
        self.done.fetch_add(units, Ordering::Relaxed);
    }

    /// `Err(Cancelled)` once cancelled; workers call this between work units.
    pub(crate) fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}
