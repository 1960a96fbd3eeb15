//! Cancellation and progress for long computations.
//!
//! A [`Control`] is shared between the thread that asked for a computation and the workers that
//! run it: workers add finished work units to `done` and stop at the next unit boundary once
//! [`Control::cancel`] was called; the caller reads [`Control::progress`] to draw a progress bar.

use std::cell::Cell;
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

    /// Run `f` with this control as the calling thread's current one, so that work with no
    /// `&Control` in reach (an activation's tables, parameter draws) can still poll it through
    /// [`Cancel::current`]. Scopes nest; the previous control is restored when `f` returns or
    /// unwinds.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(*const Control);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(self as *const Control)));
        f()
    }
}

thread_local! {
    static CURRENT: Cell<*const Control> = const { Cell::new(std::ptr::null()) };
}

/// The cancellation flag of the control in [`Control::scope`] on the thread that took it (or none):
/// a `Copy` handle that parallel work started inside the scope can carry to other threads.
///
/// It must not outlive the scope it was taken in: take it inside the scope and use it only in
/// work the scope waits for (a `rayon` call made there).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cancel(*const Control);

// SAFETY: it only reads an atomic of a `Control` (`Sync`) that outlives it (see the type's docs).
unsafe impl Send for Cancel {}
unsafe impl Sync for Cancel {}

impl Cancel {
    /// The calling thread's current control, if any.
    pub(crate) fn current() -> Cancel {
        Cancel(CURRENT.with(|c| c.get()))
    }

    /// Whether the current control (if any) was cancelled.
    pub(crate) fn is_cancelled(self) -> bool {
        // SAFETY: non-null only inside the scope that set it, which outlives this handle.
        !self.0.is_null() && unsafe { (*self.0).is_cancelled() }
    }

    /// `Err(Cancelled)` once cancelled.
    pub(crate) fn check(self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_restore() {
        assert!(!Cancel::current().is_cancelled());
        let (a, b) = (Control::new(), Control::new());
        b.cancel();
        a.scope(|| {
            assert!(!Cancel::current().is_cancelled());
            b.scope(|| assert!(Cancel::current().is_cancelled()));
            assert!(!Cancel::current().is_cancelled());
            a.cancel();
            let c = Cancel::current();
            // the handle works on other threads inside the scope
            std::thread::scope(|s| s.spawn(move || assert!(c.check().is_err())).join().unwrap());
        });
        assert!(Cancel::current().0.is_null());
    }
}
