//! The one named rayon pool every parallel computation of ntkrs runs in, and the SIMD level.
//!
//! The pool is fork-safe: it remembers the process id it was built in, and a forked child (where
//! the parent's worker threads do not exist) builds a fresh pool of the same size on first use
//! instead of queueing work to threads that will never run it. A call can also bypass the pool:
//! [`Parallelism`] chooses the calling thread or a pool of its own.

use std::sync::atomic::{AtomicU8, Ordering};
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

/// A SIMD instruction set the vectorised code (the tile pass, the activations' vector maths)
/// can be compiled for. All levels compute the same kernels; they differ in the last bits (fused
/// multiply-adds) and in speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimdLevel {
    /// Plain scalar code (any CPU).
    Scalar,
    /// AVX2 and FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/CD/DQ/VL (x86-64-v4).
    Avx512,
}

impl SimdLevel {
    /// Every level, slowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The level's name as [`simd_level`] reports it: `"scalar"`, `"avx2+fma"` or `"avx512"`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2+fma",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// A level by name: `scalar`, `avx2` (or `avx2+fma`), `avx512` (any case, surrounding spaces
    /// ignored).
    pub fn parse(name: &str) -> crate::Result<SimdLevel> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(SimdLevel::Scalar),
            "avx2" | "avx2+fma" => Ok(SimdLevel::Avx2),
            "avx512" => Ok(SimdLevel::Avx512),
            _ => Err(crate::Error::arg(
                "simd",
                format!("unknown SIMD level {name:?}: expected one of scalar, avx2, avx512"),
            )),
        }
    }

    /// Whether this CPU (and this build) supports the level.
    pub fn is_supported(self) -> bool {
        self.arch().is_some()
    }

    /// The best level this CPU supports.
    pub fn detected() -> SimdLevel {
        SimdLevel::from_arch(pulp::Arch::new())
    }

    /// The levels this CPU supports, slowest first (always starts with `Scalar`).
    pub fn supported() -> Vec<SimdLevel> {
        SimdLevel::ALL.into_iter().filter(|l| l.is_supported()).collect()
    }

    fn from_arch(a: pulp::Arch) -> SimdLevel {
        match a {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            pulp::Arch::V4(_) => SimdLevel::Avx512,
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            pulp::Arch::V3(_) => SimdLevel::Avx2,
            #[allow(unreachable_patterns)]
            _ => SimdLevel::Scalar,
        }
    }

    /// pulp's dispatcher for the level, `None` when unsupported.
    pub(crate) fn arch(self) -> Option<pulp::Arch> {
        match self {
            SimdLevel::Scalar => Some(pulp::Arch::Scalar),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            SimdLevel::Avx2 => pulp::x86::V3::try_new().map(pulp::Arch::V3),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            SimdLevel::Avx512 => pulp::x86::V4::try_new().map(pulp::Arch::V4),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            SimdLevel::Scalar => 1,
            SimdLevel::Avx2 => 2,
            SimdLevel::Avx512 => 3,
        }
    }

    fn from_code(c: u8) -> Option<SimdLevel> {
        SimdLevel::ALL.into_iter().find(|l| l.code() == c)
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The chosen level ([`SimdLevel::code`]), 0 until the first use.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The level chosen at first use: `NTKRS_SIMD` when it names a supported level, else the best
/// one detected. An unknown or unsupported value is reported on stderr (once) and ignored.
fn level_from_env() -> SimdLevel {
    let best = SimdLevel::detected();
    let Ok(v) = std::env::var("NTKRS_SIMD") else {
        return best;
    };
    if v.trim().is_empty() {
        return best;
    }
    match SimdLevel::parse(&v) {
        Ok(l) if l.is_supported() => l,
        Ok(l) => {
            eprintln!("ntkrs: NTKRS_SIMD={v}: this CPU does not support {l}; using {best}");
            best
        }
        Err(_) => {
            eprintln!("ntkrs: NTKRS_SIMD={v} is not one of scalar, avx2, avx512; using {best}");
            best
        }
    }
}

/// The SIMD level in use.
pub fn current_simd_level() -> SimdLevel {
    if let Some(l) = SimdLevel::from_code(LEVEL.load(Ordering::Relaxed)) {
        return l;
    }
    let l = level_from_env();
    // the first chooser wins (a concurrent `set_simd_level` included)
    match LEVEL.compare_exchange(0, l.code(), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => l,
        Err(c) => SimdLevel::from_code(c).unwrap_or(l),
    }
}

/// The SIMD instruction set in use: `"avx512"`, `"avx2+fma"` or `"scalar"`. Chosen at first use
/// (environment variable `NTKRS_SIMD=scalar|avx2|avx512` to force one, else the best the CPU
/// supports) or by [`set_simd_level`].
pub fn simd_level() -> &'static str {
    current_simd_level().name()
}

/// Force the SIMD level of every later computation (for example to compare against the scalar
/// path, or to rule out a CPU-specific problem). Overrides `NTKRS_SIMD`. Computations already
/// running may finish with the previous level. An unsupported level is an error and changes
/// nothing.
pub fn set_simd_level(level: SimdLevel) -> crate::Result<()> {
    if !level.is_supported() {
        return Err(crate::Error::arg(
            "simd",
            format!(
                "this CPU does not support {level}; supported: {}",
                SimdLevel::supported()
                    .iter()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    LEVEL.store(level.code(), Ordering::Relaxed);
    Ok(())
}

/// The dispatcher of the level in use.
pub(crate) fn arch() -> pulp::Arch {
    current_simd_level().arch().unwrap_or(pulp::Arch::Scalar)
}
