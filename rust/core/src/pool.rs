//! The one named rayon pool every parallel computation of ntkrs runs in, and the SIMD level.
//!
//! The pool is fork-safe: it remembers the process id it was built in, and a forked child (where
//! the parent's worker threads do not exist) builds a fresh pool of the same size on first use
//! instead of queueing work to threads that will never run it. A call can also bypass the pool:
//! [`Parallelism`] chooses the calling thread or a pool of its own.

use std::sync::{Arc, OnceLock, RwLock};

struct PoolState {
    /// The process the pool's threads live in.
    pid: u32,
    /// Its number of threads, kept to rebuild it after a fork.
    n: usize,
    pool: Arc<rayon::ThreadPool>,
}

static POOL: OnceLock<RwLock<PoolState>> = OnceLock::new();

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

fn build_or_one(n: usize) -> Arc<rayon::ThreadPool> {
    build(n).unwrap_or_else(|_| {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("one thread"),
        )
    })
}

fn cell() -> &'static RwLock<PoolState> {
    POOL.get_or_init(|| {
        let n = default_threads();
        RwLock::new(PoolState {
            pid: std::process::id(),
            n,
            pool: build_or_one(n),
        })
    })
}

/// The pool the next computation will run in (rebuilt first if this process is a fork of the one
/// that built it).
pub fn pool() -> Arc<rayon::ThreadPool> {
    let pid = std::process::id();
    {
        let g = cell().read().unwrap_or_else(|e| e.into_inner());
        if g.pid == pid {
            return g.pool.clone();
        }
    }
    let mut g = cell().write().unwrap_or_else(|e| e.into_inner());
    if g.pid != pid {
        // A forked child: the parent's worker threads were not copied. Dropping the old pool
        // would signal threads that do not exist (and locks they may have held), so leak it.
        let fresh = build_or_one(g.n);
        std::mem::forget(std::mem::replace(&mut g.pool, fresh));
        g.pid = pid;
    }
    g.pool.clone()
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
    let pid = std::process::id();
    let mut g = cell().write().unwrap_or_else(|e| e.into_inner());
    if g.pid != pid {
        // replacing a pool inherited through fork: leak it rather than drop it (see `pool`)
        std::mem::forget(std::mem::replace(&mut g.pool, p));
    } else {
        g.pool = p;
    }
    g.pid = pid;
    g.n = n;
    Ok(())
}

/// Number of threads of the pool.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Where one computation runs: the analogue of faer's `Par` for ntkrs's entry points. Results
/// do not depend on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parallelism {
    /// The shared pool of [`set_num_threads`] threads.
    #[default]
    Pool,
    /// The calling thread only, no pool at all: what a task of a task scheduler such as dask
    /// wants.
    Sequential,
    /// A pool of this many threads built for this computation alone.
    Threads(usize),
}

impl Parallelism {
    /// The convention of the Python API's `threads=` argument: 0 the shared pool, 1 the calling
    /// thread only, `n ≥ 2` a pool of `n` threads for this call.
    pub fn from_threads(threads: usize) -> Self {
        match threads {
            0 => Parallelism::Pool,
            1 => Parallelism::Sequential,
            n => Parallelism::Threads(n),
        }
    }
}

/// A [`Parallelism`] made concrete for one computation: the calling thread, or a pool.
pub(crate) enum Runner {
    Inline,
    Pool(Arc<rayon::ThreadPool>),
}

impl Runner {
    /// `worth`: whether the work is large enough to gain from threads at all.
    pub(crate) fn new(par: Parallelism, worth: bool) -> crate::Result<Runner> {
        match par {
            _ if !worth => Ok(Runner::Inline),
            Parallelism::Sequential | Parallelism::Threads(1) => Ok(Runner::Inline),
            Parallelism::Pool => Ok(Runner::Pool(pool())),
            Parallelism::Threads(n) if n > 4096 => Err(crate::Error::arg(
                "threads",
                format!("{n} is too many threads; use at most 4096"),
            )),
            Parallelism::Threads(n) => Ok(Runner::Pool(build(n.max(1))?)),
        }
    }

    /// Run `f(parallel)`: `parallel` says whether `f` may use rayon (it then runs inside the pool).
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce(bool) -> R + Send) -> R {
        match self {
            Runner::Inline => f(false),
            Runner::Pool(p) => p.install(|| f(true)),
        }
    }

    /// faer's parallelism for matrix products run inside [`Runner::run`].
    pub(crate) fn faer(&self) -> faer::Par {
        match self {
            Runner::Inline => faer::Par::Seq,
            Runner::Pool(p) => match p.current_num_threads() {
                0 | 1 => faer::Par::Seq,
                n => faer::Par::rayon(n),
            },
        }
    }
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
