//! # libntkrs: the C ABI of ntkrs
//!
//! Infinite-width NNGP and NTK kernels (and empirical kernels of finite networks) for programs in
//! C, C++, Julia, R, Go, ... without a Python interpreter. The header `include/ntkrs.h` is
//! generated from this file by cbindgen (`build.rs` checks that the committed header matches).
//!
//! Conventions (every function):
//! * matrices are row-major `double`/`float` arrays: inputs `n × d`, kernels `n1 × n2`;
//! * a function returns `NTKRS_OK` (0) or one of the `NTKRS_ERR_*` codes, and then
//!   `ntkrs_last_error()` gives this thread's message (UTF-8, valid until this thread's next failing
//!   call);
//! * `NULL` pointers, NaN or infinite inputs, zero sizes and sizes whose products overflow are
//!   errors, never crashes; no Rust panic crosses the boundary (it becomes `NTKRS_ERR_INTERNAL`);
//! * every function may be called from many threads at once: networks and parameters are
//!   read-only during a call, and the results do not depend on threads or options.
//!
//! ABI stability: functions and error codes are only ever added; a struct passed by pointer starts
//! with its own size (`struct_size`), so that a library built later reads only the fields the
//! caller's header knew; `ntkrs_abi_version()` is raised on any incompatible change, and callers
//! check it against `NTKRS_ABI_VERSION` at start-up.

#![allow(non_camel_case_types)]
// every entry point checks its pointers before dereferencing them and documents what it reads
#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use ntkrs_core::{
    Control, DenseOwned, DenseParams, Element, EmpiricalOptions, Error, Get, KernelOptions, Network, OutOptions,
    Parallelism,
};

/// The version of this ABI: raised on every incompatible change.
pub const NTKRS_ABI_VERSION: u32 = 1;

/// Success.
pub const NTKRS_OK: c_int = 0;
/// A required pointer was `NULL`.
pub const NTKRS_ERR_NULL: c_int = 1;
/// An argument is invalid: a size of 0, sizes whose product overflows, NaN or infinite inputs, a
/// bad spec, mismatched buffers.
pub const NTKRS_ERR_ARGUMENT: c_int = 2;
/// The network is invalid (for example an activation on a non-Gaussian input).
pub const NTKRS_ERR_NETWORK: c_int = 3;
/// The result would not fit in memory (nothing was computed).
pub const NTKRS_ERR_MEMORY: c_int = 4;
/// The kernel overflows (infinite or NaN values): reduce `W_std`, the depth or the input scale.
pub const NTKRS_ERR_NONFINITE: c_int = 5;
/// The computation was cancelled (the cancel flag was set, or the progress callback returned
/// non-zero).
pub const NTKRS_ERR_CANCELLED: c_int = 6;
/// Reading or writing a file failed.
pub const NTKRS_ERR_IO: c_int = 7;
/// An internal error (a bug in ntkrs): please report it with the message.
pub const NTKRS_ERR_INTERNAL: c_int = 8;

/// A network (opaque): built by `ntkrs_network_from_spec`, released by `ntkrs_network_free`.
pub struct ntkrs_network {
    inner: Network,
}

/// Parameters of a finite network (opaque, float64): one `(W, b)` per Dense layer.
pub struct ntkrs_params {
    d: usize,
    layers: Vec<DenseOwned<f64>>,
}

/// A progress report: `done` of `total` work units; return non-zero to cancel.
pub type ntkrs_progress_fn = Option<unsafe extern "C" fn(done: u64, total: u64, user: *mut c_void) -> c_int>;

/// Options of a long computation. Initialise with `ntkrs_options_default` (which sets
/// `struct_size`), then change fields; pass `NULL` for the defaults.
#[repr(C)]
pub struct ntkrs_options {
    /// `sizeof(ntkrs_options)` of the caller's header (set by `ntkrs_options_default`).
    pub struct_size: u32,
    /// 0: the shared thread pool (`ntkrs_set_num_threads`); 1: the calling thread only; n: a
    /// pool of n threads for this call.
    pub threads: u32,
    /// Side of the square tiles of the kernel pass (0: automatic). Results do not depend on it.
    pub tile_size: u32,
    /// Called on the calling thread about every 20 ms with the progress; may be NULL.
    pub progress: ntkrs_progress_fn,
    /// Passed to `progress`.
    pub progress_user: *mut c_void,
    /// A flag another thread sets to non-zero to cancel (written with an atomic store, e.g. C11
    /// `atomic_store` on an `atomic_int` or `__atomic_store_n`); may be NULL. The call then
    /// returns `NTKRS_ERR_CANCELLED` within a fraction of a second.
    pub cancel: *const i32,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A failure: an error code and its message.
struct Fail(c_int, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::InvalidArgument { .. } => NTKRS_ERR_ARGUMENT,
            Error::InvalidNetwork(_) => NTKRS_ERR_NETWORK,
            Error::OutOfMemory { .. } => NTKRS_ERR_MEMORY,
            Error::NonFinite(_) => NTKRS_ERR_NONFINITE,
            Error::Callback(_) => NTKRS_ERR_ARGUMENT,
            Error::Cancelled => NTKRS_ERR_CANCELLED,
            Error::Io(_) => NTKRS_ERR_IO,
            #[allow(unreachable_patterns)]
            _ => NTKRS_ERR_INTERNAL,
        };
        Fail(code, e.to_string())
    }
}

fn arg(msg: impl Into<String>) -> Fail {
    Fail(NTKRS_ERR_ARGUMENT, msg.into())
}

fn null(what: &str) -> Fail {
    Fail(NTKRS_ERR_NULL, format!("{what} is NULL"))
}

/// Run `f`, turning its failure or panic into a code and this thread's last error.
fn guard(f: impl FnOnce() -> Result<(), Fail>) -> c_int {
    let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Fail(
            NTKRS_ERR_INTERNAL,
            format!("internal error (please report): {msg}"),
        ))
    });
    match r {
        Ok(()) => NTKRS_OK,
        Err(Fail(code, msg)) => {
            let msg = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            LAST_ERROR.with(|e| *e.borrow_mut() = msg);
            code
        }
    }
}

/// The options a call runs with: the caller's (as far as its `struct_size` goes) or the defaults.
struct Opts {
    threads: u32,
    tile_size: u32,
    progress: ntkrs_progress_fn,
    user: *mut c_void,
    cancel: *const i32,
}

unsafe fn options(p: *const ntkrs_options) -> Result<Opts, Fail> {
    let mut o = Opts {
        threads: 0,
        tile_size: 0,
        progress: None,
        user: std::ptr::null_mut(),
        cancel: std::ptr::null(),
    };
    if p.is_null() {
        return Ok(o);
    }
    let size = (*p).struct_size as usize;
    if size < std::mem::size_of::<u32>() {
        return Err(arg(
            "options: struct_size is not set; initialise the options with ntkrs_options_default",
        ));
    }
    // a field is read only when the caller's struct (of `struct_size` bytes) has it
    let has = |offset: usize, len: usize| size >= offset + len;
    use std::mem::{offset_of, size_of};
    if has(offset_of!(ntkrs_options, threads), size_of::<u32>()) {
        o.threads = (*p).threads;
    }
    if has(offset_of!(ntkrs_options, tile_size), size_of::<u32>()) {
        o.tile_size = (*p).tile_size;
    }
    if has(offset_of!(ntkrs_options, progress_user), size_of::<*mut c_void>()) {
        o.progress = (*p).progress;
        o.user = (*p).progress_user;
    }
    if has(offset_of!(ntkrs_options, cancel), size_of::<*const i32>()) {
        o.cancel = (*p).cancel;
    }
    Ok(o)
}

impl Opts {
    fn kernel(&self) -> KernelOptions {
        KernelOptions {
            tile_size: self.tile_size as usize,
            par: Parallelism::from_threads(self.threads as usize),
            ..KernelOptions::default()
        }
    }

    fn cancelled(&self) -> bool {
        // SAFETY: the caller promised a valid, aligned int that lives through the call, written
        // atomically by other threads.
        !self.cancel.is_null() && unsafe { AtomicI32::from_ptr(self.cancel as *mut i32) }.load(Ordering::Relaxed) != 0
    }

    /// Run `work`; with a progress callback or a cancel flag, on a worker thread while this thread
    /// reports progress and watches the flag every 20 ms.
    fn run<R: Send>(&self, work: impl FnOnce(&Control) -> ntkrs_core::Result<R> + Send) -> Result<R, Fail> {
        let ctl = Control::new();
        if self.progress.is_none() && self.cancel.is_null() {
            return work(&ctl).map_err(Fail::from);
        }
        if self.cancelled() {
            return Err(Fail::from(Error::Cancelled));
        }
        let (progress, user) = (self.progress, self.user as usize);
        let out = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let c = &ctl;
            s.spawn(move || {
                let _ = tx.send(catch_unwind(AssertUnwindSafe(|| work(c))));
            });
            let mut last = (u64::MAX, u64::MAX);
            loop {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(r) => break Some(r),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                }
                if self.cancelled() {
                    ctl.cancel();
                }
                if let Some(cb) = progress {
                    let now = ctl.progress();
                    if now != last && now.1 > 0 {
                        last = now;
                        // SAFETY: the caller's function, called as documented
                        if unsafe { cb(now.0, now.1, user as *mut c_void) } != 0 {
                            ctl.cancel();
                        }
                    }
                }
            }
        });
        match out {
            Some(Ok(r)) => {
                if let (Ok(_), Some(cb)) = (&r, progress) {
                    let (_, total) = ctl.progress();
                    // SAFETY: as above
                    unsafe { cb(total, total, user as *mut c_void) };
                }
                r.map_err(Fail::from)
            }
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => Err(Fail(
                NTKRS_ERR_INTERNAL,
                "internal error: the worker thread stopped".into(),
            )),
        }
    }
}

/// `n × d` elements, or an error naming `what`.
fn elements(n: usize, d: usize, what: &str) -> Result<usize, Fail> {
    if n == 0 || d == 0 {
        return Err(arg(format!("{what}: sizes must be at least 1, got {n} x {d}")));
    }
    n.checked_mul(d)
        .filter(|&c| c <= isize::MAX as usize / 8)
        .ok_or_else(|| arg(format!("{what}: {n} x {d} elements overflow the address space")))
}

/// A row-major `n × d` matrix at `p`.
unsafe fn matrix<'a, T: Element>(p: *const T, n: usize, d: usize, what: &str) -> Result<faer::MatRef<'a, T>, Fail> {
    if p.is_null() {
        return Err(null(what));
    }
    let len = elements(n, d, what)?;
    Ok(faer::MatRef::from_row_major_slice(
        std::slice::from_raw_parts(p, len),
        n,
        d,
    ))
}

/// The second batch: `n2 × d` at `x2`, or `None` (the first batch again) when `x2` is NULL, then
/// with `n2` 0 or `n1`.
unsafe fn second<'a, T: Element>(
    x2: *const T,
    n1: usize,
    n2: usize,
    d: usize,
) -> Result<Option<faer::MatRef<'a, T>>, Fail> {
    if x2.is_null() {
        if n2 != 0 && n2 != n1 {
            return Err(arg(format!(
                "n2: x2 is NULL (x2 = x1), so n2 must be 0 or n1 = {n1}, got {n2}"
            )));
        }
        return Ok(None);
    }
    matrix(x2, n2, d, "x2").map(Some)
}

/// The network behind a pointer.
unsafe fn network<'a>(net: *const ntkrs_network) -> Result<&'a Network, Fail> {
    net.as_ref().map(|n| &n.inner).ok_or_else(|| null("net"))
}

/// The version of the ABI of this library (`NTKRS_ABI_VERSION` of the header it was built with).
#[no_mangle]
pub extern "C" fn ntkrs_abi_version() -> u32 {
    NTKRS_ABI_VERSION
}

/// The library's version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn ntkrs_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// This thread's last failure message (UTF-8, never NULL; "" before any failure). Valid until this
/// thread's next failing call.
#[no_mangle]
pub extern "C" fn ntkrs_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Fill `opts` with the defaults (and `struct_size`).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_options_default(opts: *mut ntkrs_options) -> c_int {
    guard(|| {
        let o = opts.as_mut().ok_or_else(|| null("opts"))?;
        *o = ntkrs_options {
            struct_size: std::mem::size_of::<ntkrs_options>() as u32,
            threads: 0,
            tile_size: 0,
            progress: None,
            progress_user: std::ptr::null_mut(),
            cancel: std::ptr::null(),
        };
        Ok(())
    })
}

/// A network from the command line's `--net` grammar: `[mlp|resnet:]ACTIVATION:DEPTH[,KEY=VALUE...]`
/// with keys `W_std`, `b_std`, `width`, `out_dim`, `parameterization`, `layer_norm`, e.g.
/// `"relu:3,W_std=1.4,b_std=0.1"` or `"resnet:gelu:10,layer_norm=pre"`. On success `*out` owns
/// the network (release it with `ntkrs_network_free`).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_network_from_spec(spec: *const c_char, out: *mut *mut ntkrs_network) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        *out = std::ptr::null_mut();
        if spec.is_null() {
            return Err(null("spec"));
        }
        let text = CStr::from_ptr(spec)
            .to_str()
            .map_err(|_| arg("spec: is not valid UTF-8"))?;
        let inner = Network::from_spec(text)?;
        *out = Box::into_raw(Box::new(ntkrs_network { inner }));
        Ok(())
    })
}

/// Release a network (`NULL` is ignored).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_network_free(net: *mut ntkrs_network) {
    if !net.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(net))));
    }
}

/// The output width of the network for inputs of width `d`.
#[no_mangle]
pub unsafe extern "C" fn ntkrs_network_out_dim(net: *const ntkrs_network, d: usize, out: *mut usize) -> c_int {
    guard(|| {
        let n = network(net)?;
        let o = out.as_mut().ok_or_else(|| null("out"))?;
        if d == 0 {
            return Err(arg("d: must be at least 1"));
        }
        *o = n.out_dim(d);
        Ok(())
    })
}

#[allow(clippy::too_many_arguments)]
unsafe fn kernel<T: Element>(
    net: *const ntkrs_network,
    x1: *const T,
    n1: usize,
    x2: *const T,
    n2: usize,
    d: usize,
    nngp_out: *mut T,
    ntk_out: *mut T,
    opts: *const ntkrs_options,
) -> Result<(), Fail> {
    let net = network(net)?;
    let o = options(opts)?;
    let a = matrix(x1, n1, d, "x1")?;
    let b = second(x2, n1, n2, d)?;
    let cols = b.map_or(n1, |b| b.nrows());
    let size = elements(n1, cols, "the kernel")?;
    if nngp_out.is_null() && ntk_out.is_null() {
        return Err(arg("nngp_out, ntk_out: both are NULL; pass at least one output"));
    }
    let nngp = (!nngp_out.is_null()).then(|| std::slice::from_raw_parts_mut(nngp_out, size));
    let ntk = (!ntk_out.is_null()).then(|| std::slice::from_raw_parts_mut(ntk_out, size));
    let ko = o.kernel();
    o.run(|ctl| net.kernel_into(a, b, &ko, nngp, ntk, ctl))
}

/// The NNGP and/or NTK between the rows of `x1` (`n1 × d`) and of `x2` (`n2 × d`; `NULL`: `x1`
/// itself, the result exactly symmetric) into `nngp_out` and `ntk_out` (`n1 × n2` each, row-major;
/// `NULL` skips that kernel). Equal, bit for bit, to the Python API's `net.kernel(x1, x2)`.
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_f64(
    net: *const ntkrs_network,
    x1: *const f64,
    n1: usize,
    x2: *const f64,
    n2: usize,
    d: usize,
    nngp_out: *mut f64,
    ntk_out: *mut f64,
) -> c_int {
    guard(|| kernel(net, x1, n1, x2, n2, d, nngp_out, ntk_out, std::ptr::null()))
}

/// `ntkrs_kernel_f64` in single precision (float inputs and outputs, computed in float).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_f32(
    net: *const ntkrs_network,
    x1: *const f32,
    n1: usize,
    x2: *const f32,
    n2: usize,
    d: usize,
    nngp_out: *mut f32,
    ntk_out: *mut f32,
) -> c_int {
    guard(|| kernel(net, x1, n1, x2, n2, d, nngp_out, ntk_out, std::ptr::null()))
}

/// `ntkrs_kernel_f64` with options (threads, tile size, progress callback, cancel flag).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_f64_ex(
    net: *const ntkrs_network,
    x1: *const f64,
    n1: usize,
    x2: *const f64,
    n2: usize,
    d: usize,
    nngp_out: *mut f64,
    ntk_out: *mut f64,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| kernel(net, x1, n1, x2, n2, d, nngp_out, ntk_out, opts))
}

/// `ntkrs_kernel_f32` with options.
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_f32_ex(
    net: *const ntkrs_network,
    x1: *const f32,
    n1: usize,
    x2: *const f32,
    n2: usize,
    d: usize,
    nngp_out: *mut f32,
    ntk_out: *mut f32,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| kernel(net, x1, n1, x2, n2, d, nngp_out, ntk_out, opts))
}

unsafe fn diagonal<T: Element>(
    net: *const ntkrs_network,
    x: *const T,
    n: usize,
    d: usize,
    nngp_out: *mut T,
    ntk_out: *mut T,
    opts: *const ntkrs_options,
) -> Result<(), Fail> {
    let net = network(net)?;
    let o = options(opts)?;
    let a = matrix(x, n, d, "x")?;
    if nngp_out.is_null() && ntk_out.is_null() {
        return Err(arg("nngp_out, ntk_out: both are NULL; pass at least one output"));
    }
    let get = Get {
        nngp: !nngp_out.is_null(),
        ntk: !ntk_out.is_null(),
    };
    let k = o.run(|ctl| net.kernel_diagonal(a, get, ctl))?;
    if let Some(v) = k.nngp {
        std::slice::from_raw_parts_mut(nngp_out, n).copy_from_slice(&v);
    }
    if let Some(v) = k.ntk {
        std::slice::from_raw_parts_mut(ntk_out, n).copy_from_slice(&v);
    }
    Ok(())
}

/// Only the diagonal `k(x_i, x_i)` (`n` values each) of the kernels of `x` (`n × d`).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_diagonal_f64(
    net: *const ntkrs_network,
    x: *const f64,
    n: usize,
    d: usize,
    nngp_out: *mut f64,
    ntk_out: *mut f64,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| diagonal(net, x, n, d, nngp_out, ntk_out, opts))
}

#[allow(clippy::too_many_arguments)]
unsafe fn kernel_to_npy<T: Element>(
    net: *const ntkrs_network,
    x1: *const T,
    n1: usize,
    x2: *const T,
    n2: usize,
    d: usize,
    nngp_path: *const c_char,
    ntk_path: *const c_char,
    memory_limit: u64,
    opts: *const ntkrs_options,
) -> Result<(), Fail> {
    let net = network(net)?;
    let o = options(opts)?;
    let a = matrix(x1, n1, d, "x1")?;
    let b = second(x2, n1, n2, d)?;
    let cols = b.map_or(n1, |b| b.nrows());
    elements(n1, cols, "the kernel")?;
    let path = |p: *const c_char, what: &str| -> Result<Option<String>, Fail> {
        if p.is_null() {
            return Ok(None);
        }
        let s = CStr::from_ptr(p)
            .to_str()
            .map_err(|_| arg(format!("{what}: is not valid UTF-8")))?;
        Ok(Some(s.to_string()))
    };
    let paths: Vec<String> = [path(nngp_path, "nngp_path")?, path(ntk_path, "ntk_path")?]
        .into_iter()
        .flatten()
        .collect();
    if paths.is_empty() {
        return Err(arg("nngp_path, ntk_path: both are NULL; name at least one file"));
    }
    let get = Get {
        nngp: !nngp_path.is_null(),
        ntk: !ntk_path.is_null(),
    };
    let mut files = paths
        .iter()
        .map(|p| ntkrs_core::NpyFile::<T>::create(p, n1, cols))
        .collect::<ntkrs_core::Result<Vec<_>>>()?;
    let mut sinks: Vec<&mut dyn ntkrs_core::Sink<T>> =
        files.iter_mut().map(|f| f as &mut dyn ntkrs_core::Sink<T>).collect();
    let oo = OutOptions {
        kernel: o.kernel(),
        memory_limit: if memory_limit == 0 { 1 << 30 } else { memory_limit },
    };
    let r = o.run(|ctl| net.kernel_to(a, b, get, &oo, &mut sinks, ctl)).map(|_| ());
    drop(sinks);
    drop(files); // an unfinished file is deleted here
    r
}

/// Out of core: the kernels into `.npy` files (`NULL` skips one; float64), computed by row panels
/// within `memory_limit` bytes (0: 1 GiB). A file is written to `PATH.partial` and renamed when
/// complete; on an error or cancellation no file is left.
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_to_npy_f64(
    net: *const ntkrs_network,
    x1: *const f64,
    n1: usize,
    x2: *const f64,
    n2: usize,
    d: usize,
    nngp_path: *const c_char,
    ntk_path: *const c_char,
    memory_limit: u64,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| kernel_to_npy(net, x1, n1, x2, n2, d, nngp_path, ntk_path, memory_limit, opts))
}

/// `ntkrs_kernel_to_npy_f64` in single precision (float32 files).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_kernel_to_npy_f32(
    net: *const ntkrs_network,
    x1: *const f32,
    n1: usize,
    x2: *const f32,
    n2: usize,
    d: usize,
    nngp_path: *const c_char,
    ntk_path: *const c_char,
    memory_limit: u64,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| kernel_to_npy(net, x1, n1, x2, n2, d, nngp_path, ntk_path, memory_limit, opts))
}

/// Random parameters of the finite network for inputs of width `d` (neural-tangents' layout and
/// distribution, deterministic for `seed`; as the Python API's `net.init(d, seed)`). On success
/// `*out` owns them (release with `ntkrs_params_free`).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_params_init(
    net: *const ntkrs_network,
    d: usize,
    seed: u64,
    out: *mut *mut ntkrs_params,
) -> c_int {
    guard(|| {
        let net = network(net)?;
        if out.is_null() {
            return Err(null("out"));
        }
        *out = std::ptr::null_mut();
        let layers = net.init::<f64>(d, seed, 0)?;
        *out = Box::into_raw(Box::new(ntkrs_params { d, layers }));
        Ok(())
    })
}

/// Release parameters (`NULL` is ignored).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_params_free(params: *mut ntkrs_params) {
    if !params.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(params))));
    }
}

/// Number of `(W, b)` pairs (one per Dense layer, in network order).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_params_count(params: *const ntkrs_params) -> usize {
    params.as_ref().map_or(0, |p| p.layers.len())
}

/// Pair `k`: `*w` the weights (row-major `*n_in × *n_out`), `*b` the biases (`*n_out`, or NULL
/// when the layer has none). The arrays are the parameters' own: write into them to set your
/// weights (valid until `ntkrs_params_free`).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_params_layer(
    params: *mut ntkrs_params,
    k: usize,
    w: *mut *mut f64,
    n_in: *mut usize,
    n_out: *mut usize,
    b: *mut *mut f64,
) -> c_int {
    guard(|| {
        let p = params.as_mut().ok_or_else(|| null("params"))?;
        if w.is_null() || n_in.is_null() || n_out.is_null() || b.is_null() {
            return Err(null("w, n_in, n_out or b"));
        }
        let count = p.layers.len();
        let l = p
            .layers
            .get_mut(k)
            .ok_or_else(|| arg(format!("k: the parameters have {count} layers, got index {k}")))?;
        *w = l.w.as_mut_ptr();
        *n_in = l.n_in;
        *n_out = l.n_out;
        *b = l.b.as_mut().map_or(std::ptr::null_mut(), |v| v.as_mut_ptr());
        Ok(())
    })
}

unsafe fn params<'a>(p: *const ntkrs_params, d: usize) -> Result<Vec<DenseParams<'a, f64>>, Fail> {
    let p = p.as_ref().ok_or_else(|| null("params"))?;
    if p.d != d {
        return Err(arg(format!(
            "d: the parameters were made for inputs of width {}, got {d}",
            p.d
        )));
    }
    Ok(p.layers.iter().map(|l| l.view()).collect())
}

/// The finite network's outputs `f(x)` into `out` (`n × O` row-major, `O` from
/// `ntkrs_network_out_dim`).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_apply_f64(
    net: *const ntkrs_network,
    params_: *const ntkrs_params,
    x: *const f64,
    n: usize,
    d: usize,
    out: *mut f64,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| {
        let net = network(net)?;
        let o = options(opts)?;
        let p = params(params_, d)?;
        let a = matrix(x, n, d, "x")?;
        if out.is_null() {
            return Err(null("out"));
        }
        let ao = ntkrs_core::ApplyOptions {
            par: Parallelism::from_threads(o.threads as usize),
            dropout_seed: 0,
            shape: ntkrs_core::InputShape::FLAT,
        };
        let f = o.run(|ctl| net.apply(&p, a, &ao, ctl))?;
        std::slice::from_raw_parts_mut(out, f.len()).copy_from_slice(&f);
        Ok(())
    })
}

/// The empirical NNGP `f(x1)·f(x2)/O` and NTK `Σ_p ∂f(x1)/∂θ_p·∂f(x2)/∂θ_p / O` (traced over the
/// `O` outputs) of the finite network with `params`, `n1 × n2` each (`NULL` skips one; `x2 = NULL`:
/// `x1`, exactly symmetric).
#[no_mangle]
pub unsafe extern "C" fn ntkrs_empirical_f64(
    net: *const ntkrs_network,
    params_: *const ntkrs_params,
    x1: *const f64,
    n1: usize,
    x2: *const f64,
    n2: usize,
    d: usize,
    nngp_out: *mut f64,
    ntk_out: *mut f64,
    opts: *const ntkrs_options,
) -> c_int {
    guard(|| {
        let net = network(net)?;
        let o = options(opts)?;
        let p = params(params_, d)?;
        let a = matrix(x1, n1, d, "x1")?;
        let b = second(x2, n1, n2, d)?;
        let cols = b.map_or(n1, |b| b.nrows());
        let size = elements(n1, cols, "the kernel")?;
        if nngp_out.is_null() && ntk_out.is_null() {
            return Err(arg("nngp_out, ntk_out: both are NULL; pass at least one output"));
        }
        let eo = EmpiricalOptions {
            get: Get {
                nngp: !nngp_out.is_null(),
                ntk: !ntk_out.is_null(),
            },
            trace: true,
            per_layer: false,
            par: Parallelism::from_threads(o.threads as usize),
            dropout_seed: 0,
            shape: ntkrs_core::InputShape::FLAT,
        };
        let e = o.run(|ctl| net.empirical(&p, a, b, &eo, ctl))?;
        if let Some(v) = e.nngp {
            std::slice::from_raw_parts_mut(nngp_out, size).copy_from_slice(&v);
        }
        if let Some(v) = e.ntk {
            std::slice::from_raw_parts_mut(ntk_out, size).copy_from_slice(&v);
        }
        Ok(())
    })
}

/// Resize the shared thread pool (0: one thread per logical CPU).
#[no_mangle]
pub extern "C" fn ntkrs_set_num_threads(n: u32) -> c_int {
    guard(|| ntkrs_core::set_num_threads(n as usize).map_err(Fail::from))
}

/// The number of threads of the shared pool.
#[no_mangle]
pub extern "C" fn ntkrs_num_threads() -> u32 {
    ntkrs_core::num_threads() as u32
}

/// Force the SIMD instruction set of later calls: `"scalar"`, `"avx2"` or `"avx512"` (by default
/// the best the CPU supports, or the environment variable `NTKRS_SIMD=scalar|avx2|avx512` read at
/// the first computation). `NTKRS_ERR_ARGUMENT` (nothing changed) when the name is unknown or the
/// CPU does not support the level. All levels compute the same kernels up to rounding.
#[no_mangle]
pub unsafe extern "C" fn ntkrs_set_simd_level(level: *const c_char) -> c_int {
    guard(|| {
        if level.is_null() {
            return Err(null("level"));
        }
        let text = CStr::from_ptr(level)
            .to_str()
            .map_err(|_| arg("level: is not valid UTF-8"))?;
        let l = ntkrs_core::SimdLevel::parse(text)?;
        ntkrs_core::set_simd_level(l)?;
        Ok(())
    })
}

/// The SIMD instruction set in use: "avx512", "avx2+fma" or "scalar" (a static string).
#[no_mangle]
pub extern "C" fn ntkrs_simd_level() -> *const c_char {
    match ntkrs_core::simd_level() {
        "avx512" => c"avx512".as_ptr(),
        "avx2+fma" => c"avx2+fma".as_ptr(),
        _ => c"scalar".as_ptr(),
    }
}
