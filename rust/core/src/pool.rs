//! The one named rayon pool every parallel computation of ntkrs runs in, and the SIMD level.

use std::sync::{Arc, OnceLock, RwLock};

static POOL: OnceLock<RwLock<Arc<rayon::ThreadPool>>> = OnceLock::new();

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn build(n: usize) -> crate::Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("ntkrs-worker-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| crate::Error::arg("n_threads", format!("could not start {n} threads: {e}")))
}

fn cell() -> &'static RwLock<Arc<rayon::ThreadPool>> {
    POOL.get_or_init(|| {
        let n = default_threads();
        RwLock::new(build(n).unwrap_or_else(|_| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("one thread"),
            )
        }))
    })
}

/// The pool the next computation will run in.
pub fn pool() -> Arc<rayon::ThreadPool> {
    cell().read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Resize the pool: `n` threads (0 means one per logical CPU). Running computations finish
/// in the pool they started in.
pub fn set_num_threads(n: usize) -> crate::Result<()> {
    let n = if n == 0 { default_threads() } else { n };
    if n > 4096 {
        return Err(crate::Error::arg(
            "n_threads",
            format!("{n} is too many threads; use at most 4096"),
        ));
    }
    let p = build(n)?;
    *cell().write().unwrap_or_else(|e| e.into_inner()) = p;
    Ok(())
}

/// Number of threads of the pool.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// The SIMD instruction set detected once at first use: `"avx512"`, `"avx2+fma"` or `"scalar"`.
pub fn simd_level() -> &'static str {
    static LEVEL: OnceLock<&'static str> = OnceLock::new();
    LEVEL.get_or_init(|| match arch() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V4(_) => "avx512",
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        pulp::Arch::V3(_) => "avx2+fma",
        #[allow(unreachable_patterns)]
        _ => "scalar",
    })
}

/// The detected architecture, cached.
pub(crate) fn arch() -> pulp::Arch {
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    *ARCH.get_or_init(pulp::Arch::new)
}
