//! `ntkrs._core`: thin PyO3 bindings over `ntkrs-core`.
//!
//! Arrays are converted here (any strides, float32/float64), validated by the core, and every long
//! call runs through [`run_long`]: the GIL is released, the calling thread polls Ctrl-C and reports
//! progress while the work runs on a worker thread, and a Ctrl-C cancels the work through the
//! core's atomic flag. Core errors map through [`PyErrWrap`] to Python exceptions.

use std::sync::Arc;
use std::time::Duration;

use ntkrs_core::registry;
use ntkrs_core::{
    self as core, Activation as CoreAct, BatchFn, Control, Error, Get, KernelOptions, Parallelism, Pointwise,
};
use ntkrs_core::{MemorySink, NpyFile, OutOptions, Sink, Stats};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

pyo3::create_exception!(
    ntkrs,
    NonFiniteError,
    PyValueError,
    "A kernel, a forward pass or an expectation that overflows or diverges (a `ValueError`): \
     the core's `Error::NonFinite`. Other `ValueError`s are bad arguments."
);

/// A core error on its way to Python.
struct PyErrWrap(Error);

impl From<Error> for PyErrWrap {
    fn from(e: Error) -> Self {
        PyErrWrap(e)
    }
}

impl From<PyErrWrap> for PyErr {
    fn from(e: PyErrWrap) -> PyErr {
        let msg = e.0.to_string();
        match e.0 {
            Error::InvalidArgument { .. } | Error::InvalidNetwork(_) => PyValueError::new_err(msg),
            Error::NonFinite(_) => NonFiniteError::new_err(msg),
            Error::OutOfMemory { .. } => PyMemoryError::new_err(msg),
            // the activation's own function failed or returned garbage: a bad argument (`fn`)
            Error::Callback(_) => PyValueError::new_err(msg),
            Error::Cancelled => PyKeyboardInterrupt::new_err("computation cancelled"),
            Error::Io(_) => PyOSError::new_err(msg),
            // a future variant of the core: still an error, never a panic
            #[allow(unreachable_patterns)]
            _ => PyRuntimeError::new_err(msg),
        }
    }
}

/// Work below this many elementary operations (about a millisecond) runs on the calling thread
/// with the GIL released, without a worker thread or polling: handing work to another thread and
/// back costs tens of microseconds (milliseconds on a loaded machine), more than the work itself,
/// and a Ctrl-C is seen by Python as soon as the call returns.
const INLINE_WORK: f64 = 2e6;

/// [`run_long`], or for `work` of an estimated `cost` (elementary operations, see [`INLINE_WORK`])
/// that is small and reports no progress, the same on the calling thread.
fn run<R: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    cost: f64,
    work: impl FnOnce(&Control) -> core::Result<R> + Send,
) -> PyResult<R> {
    if progress.is_none() && cost <= INLINE_WORK {
        let ctl = Control::new();
        return py.detach(|| ctl.scope(|| work(&ctl))).map_err(|e| PyErrWrap(e).into());
    }
    run_long(py, progress, work)
}

/// Run `work` with the GIL released on a worker thread; meanwhile poll Ctrl-C (and report progress
/// through `progress(done, total)`) on the calling thread every 20 ms. A signal cancels the work
/// through the control's atomic flag and re-raises once the worker has stopped. The worker runs
/// inside [`Control::scope`], so code without the control in reach (activation tables, parameter
/// draws) polls it too.
fn run_long<R: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Control) -> core::Result<R> + Send,
) -> PyResult<R> {
    let ctl = Control::new();
    let progress: Option<Py<PyAny>> = progress.map(|p| p.clone().unbind());
    let mut pending: Option<PyErr> = None;
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let ctl_ref = &ctl;
            let worker = s.spawn(move || {
                // a send error means the receiver is gone, which cannot happen inside this scope
                let _ = tx.send(ctl_ref.scope(|| work(ctl_ref)));
            });
            let mut last = (u64::MAX, u64::MAX);
            let out = loop {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(r) => break Some(r),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                }
                Python::attach(|py| {
                    if pending.is_none() {
                        if let Err(e) = py.check_signals() {
                            ctl.cancel();
                            pending = Some(e);
                        }
                    }
                    if let Some(cb) = &progress {
                        let now = ctl.progress();
                        if now != last && now.1 > 0 {
                            last = now;
                            if let Err(e) = cb.call1(py, now) {
                                ctl.cancel();
                                pending.get_or_insert(e);
                            }
                        }
                    }
                });
            };
            let joined = worker.join();
            out.filter(|_| joined.is_ok())
        })
    });
    if let Some(e) = pending {
        return Err(e);
    }
    let Some(out) = result else {
        return Err(PyRuntimeError::new_err(
            "internal error: the ntkrs worker thread panicked",
        ));
    };
    if let (Some(cb), Ok(_)) = (&progress, &out) {
        // a finished call reports completion (a failed one never does)
        let now = ctl.progress();
        cb.call1(py, (now.1, now.1))?;
    }
    out.map_err(|e| PyErrWrap(e).into())
}

/// Whether a layer tree holds a numerical activation (whose tables cost about a second to build).
fn has_numerical(l: &core::Layer) -> bool {
    match l {
        core::Layer::Activation(a) => matches!(a, CoreAct::Numerical { .. }),
        core::Layer::Serial(v) | core::Layer::Parallel(v) => v.iter().any(has_numerical),
        _ => false,
    }
}

/// Estimated elementary operations of an analytic kernel (∞ with a numerical activation).
fn kernel_cost(net: &core::Network, n1: usize, n2: usize, d: usize) -> f64 {
    if has_numerical(net.root()) {
        return f64::INFINITY;
    }
    (n1 as f64) * (n2 as f64) * (4.0 * net.depth() as f64 + d as f64)
}

/// [`kernel_cost`] for inputs of per-example `shape`; ∞ for images (`(L, C)` and more axes), whose
/// cost grows with the positions and the pooling, so they always run through [`run_long`].
fn shaped_cost(net: &core::Network, shape: core::InputShape, n1: usize, n2: usize, d: usize) -> f64 {
    match shape.resolve(d) {
        Ok(s) if s.len() == 1 => kernel_cost(net, n1, n2, d),
        _ => f64::INFINITY,
    }
}

/// Estimated multiply-adds of the finite network's forward and backward passes on `n` inputs
/// of width `d` (`ways` passes of every parameter), ∞ when the network does not fit `d`.
fn finite_cost(net: &core::Network, n: usize, d: usize, ways: f64) -> f64 {
    net.n_params(d).map_or(f64::INFINITY, |p| ways * n as f64 * p as f64)
}

/// A Python callable `fn(x: ndarray) -> ndarray` (and optionally its derivative) as a core [`BatchFn`].
struct PyFn {
    f: Py<PyAny>,
    df: Option<Py<PyAny>>,
    name: String,
}

impl PyFn {
    fn call(py: Python<'_>, f: &Py<PyAny>, x: &[f64], out: &mut [f64], what: &str) -> core::Result<()> {
        let arr = PyArray1::from_slice(py, x);
        let res = f
            .call1(py, (arr,))
            .map_err(|e| Error::Callback(format!("{what} raised {e}")))?;
        let np = py.import("numpy").map_err(|e| Error::Callback(e.to_string()))?;
        let res = np
            .call_method1("asarray", (res, "float64"))
            .and_then(|a| a.call_method1("reshape", (-1,)))
            .map_err(|e| Error::Callback(format!("{what} must return numbers: {e}")))?;
        let res: PyReadonlyArray1<f64> = res.extract().map_err(|e: PyErr| Error::Callback(e.to_string()))?;
        let v = res.as_slice().map_err(|e| Error::Callback(e.to_string()))?;
        if v.len() != x.len() {
            return Err(Error::Callback(format!(
                "{what} must be vectorised: given an array of shape ({},) it returned {} values",
                x.len(),
                v.len()
            )));
        }
        out.copy_from_slice(v);
        Ok(())
    }
}

impl BatchFn for PyFn {
    fn eval(&self, x: &[f64], f: &mut [f64], df: &mut [f64]) -> core::Result<()> {
        Python::attach(|py| {
            Self::call(py, &self.f, x, f, "fn")?;
            match &self.df {
                Some(d) => Self::call(py, d, x, df, "dfn"),
                None => {
                    // central differences, step ~ ε^{1/3}·max(1, |x|)
                    let h: Vec<f64> = x.iter().map(|v| 6e-6 * v.abs().max(1.0)).collect();
                    let xp: Vec<f64> = x.iter().zip(&h).map(|(a, b)| a + b).collect();
                    let xm: Vec<f64> = x.iter().zip(&h).map(|(a, b)| a - b).collect();
                    let mut fp = vec![0.0; x.len()];
                    let mut fm = vec![0.0; x.len()];
                    Self::call(py, &self.f, &xp, &mut fp, "fn")?;
                    Self::call(py, &self.f, &xm, &mut fm, "fn")?;
                    for k in 0..x.len() {
                        df[k] = (fp[k] - fm[k]) / (2.0 * h[k]);
                    }
                    Ok(())
                }
            }
        })
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Two float64 vectors.
type Arrays2<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// An activation layer (see `ntkrs.stax` for the user-facing classes).
#[pyclass(module = "ntkrs._core", name = "Activation", frozen)]
#[derive(Clone)]
struct PyActivation {
    inner: CoreAct,
}

#[pymethods]
impl PyActivation {
    /// Activation(kind, params=(), quad_degree=32, fn=None, dfn=None)
    #[new]
    #[pyo3(signature = (kind, params=Vec::new(), quad_degree=core::DEFAULT_QUAD_DEGREE, r#fn=None, dfn=None, name=None))]
    fn new(
        kind: &str,
        params: Vec<f64>,
        quad_degree: usize,
        r#fn: Option<Py<PyAny>>,
        dfn: Option<Py<PyAny>>,
        name: Option<String>,
    ) -> PyResult<Self> {
        let inner: core::Result<CoreAct> = if kind == "elementwise" {
            let f = r#fn.ok_or_else(|| PyTypeError::new_err("fn: Elementwise needs a callable"))?;
            let name = name.unwrap_or_else(|| "Elementwise".into());
            CoreAct::numerical(Pointwise::Custom(Arc::new(PyFn { f, df: dfn, name })), quad_degree)
        } else {
            registry::build(kind, &params, quad_degree)
        };
        Ok(PyActivation {
            inner: inner.map_err(PyErrWrap)?,
        })
    }

    /// maps(var1, var2, cov) -> (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) on 1-D float64 arrays of equal length.
    fn maps<'py>(
        &self,
        py: Python<'py>,
        var1: PyReadonlyArray1<'py, f64>,
        var2: PyReadonlyArray1<'py, f64>,
        cov: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Arrays2<'py>> {
        let (a, b, c) = (var1.as_array(), var2.as_array(), cov.as_array());
        if a.len() != b.len() || a.len() != c.len() {
            return Err(PyValueError::new_err("var1, var2, cov: must have the same length"));
        }
        let act = &self.inner;
        let (a, b, c): (Vec<f64>, Vec<f64>, Vec<f64>) = (a.to_vec(), b.to_vec(), c.to_vec());
        let cost = if matches!(act, CoreAct::Numerical { .. }) {
            f64::INFINITY
        } else {
            16.0 * a.len() as f64
        };
        let (n, d) = run(py, None, cost, |ctl| act.maps_many(&a, &b, &c, &|| ctl.is_cancelled()))?;
        Ok((PyArray1::from_vec(py, n), PyArray1::from_vec(py, d)))
    }

    fn __repr__(&self) -> String {
        self.inner.name()
    }
}

/// One layer or combinator of a network (see `ntkrs.layers` for the user-facing classes).
#[pyclass(module = "ntkrs._core", name = "Layer", frozen)]
#[derive(Clone)]
struct PyLayer {
    inner: core::Layer,
}

#[pymethods]
impl PyLayer {
    /// Dense(out_dim, w_std, b_std, parameterization)
    #[staticmethod]
    #[pyo3(signature = (out_dim, w_std=1.0, b_std=None, parameterization="ntk"))]
    fn dense(out_dim: i64, w_std: f64, b_std: Option<f64>, parameterization: &str) -> PyResult<Self> {
        if out_dim < 1 {
            return Err(PyValueError::new_err(format!(
                "out_dim: the width of a Dense layer must be at least 1, got {out_dim}"
            )));
        }
        let p = parameterization.parse().map_err(PyErrWrap)?;
        let d = core::Dense::new(out_dim as usize, w_std, b_std, p).map_err(PyErrWrap)?;
        Ok(PyLayer {
            inner: core::Layer::Dense(d),
        })
    }

    /// An activation layer.
    #[staticmethod]
    fn activation(act: &Bound<'_, PyActivation>) -> Self {
        PyLayer {
            inner: core::Layer::Activation(act.get().inner.clone()),
        }
    }

    /// Identity()
    #[staticmethod]
    fn identity() -> Self {
        PyLayer {
            inner: core::Layer::Identity,
        }
    }

    /// LayerNorm(axes, eps)
    #[staticmethod]
    fn layer_norm(axes: Vec<isize>, eps: f64) -> PyResult<Self> {
        Ok(PyLayer {
            inner: core::Layer::LayerNorm(core::LayerNorm::new(axes, eps).map_err(PyErrWrap)?),
        })
    }

    /// Dropout(rate, mode)
    #[staticmethod]
    fn dropout(rate: f64, mode: &str) -> PyResult<Self> {
        let m = mode.parse().map_err(PyErrWrap)?;
        Ok(PyLayer {
            inner: core::Layer::Dropout(core::Dropout::new(rate, m).map_err(PyErrWrap)?),
        })
    }

    /// FanOut(num)
    #[staticmethod]
    fn fan_out(num: i64) -> PyResult<Self> {
        if num < 1 {
            return Err(PyValueError::new_err(format!(
                "num: FanOut needs at least 1 branch, got {num}"
            )));
        }
        Ok(PyLayer {
            inner: core::Layer::fan_out(num as usize).map_err(PyErrWrap)?,
        })
    }

    /// fan_in("sum" | "prod" | "concat", axis)
    #[staticmethod]
    #[pyo3(signature = (kind, axis=-1))]
    fn fan_in(kind: &str, axis: isize) -> PyResult<Self> {
        let f = match kind {
            "sum" => core::FanIn::Sum,
            "prod" => core::FanIn::Prod,
            "concat" => core::FanIn::Concat { axis },
            other => return Err(PyValueError::new_err(format!("unknown fan-in {other:?}"))),
        };
        Ok(PyLayer {
            inner: core::Layer::FanIn(f),
        })
    }

    /// Conv(out_chan, filter_shape, strides, padding, w_std, b_std, parameterization)
    #[staticmethod]
    #[pyo3(signature = (out_chan, filter_shape, strides=None, padding="VALID", w_std=1.0, b_std=None, parameterization="ntk"))]
    fn conv(
        out_chan: i64,
        filter_shape: Vec<i64>,
        strides: Option<Vec<i64>>,
        padding: &str,
        w_std: f64,
        b_std: Option<f64>,
        parameterization: &str,
    ) -> PyResult<Self> {
        if out_chan < 1 {
            return Err(PyValueError::new_err(format!(
                "out_chan: a Conv layer needs at least 1 output channel, got {out_chan}"
            )));
        }
        let sizes = |name: &str, v: &[i64]| -> PyResult<Vec<usize>> {
            v.iter()
                .map(|&k| {
                    usize::try_from(k).map_err(|_| {
                        PyValueError::new_err(format!("{name}: every entry must be a positive integer, got {v:?}"))
                    })
                })
                .collect()
        };
        let f = sizes("filter_shape", &filter_shape)?;
        let s = strides.map(|s| sizes("strides", &s)).transpose()?;
        let pad = padding.parse().map_err(PyErrWrap)?;
        let p = parameterization.parse().map_err(PyErrWrap)?;
        let c = core::Conv::new(out_chan as usize, f, s, pad, w_std, b_std, p).map_err(PyErrWrap)?;
        Ok(PyLayer {
            inner: core::Layer::Conv(c),
        })
    }

    /// pool("avg" | "sum", window_shape, strides, padding, normalize_edges)
    #[staticmethod]
    #[pyo3(signature = (kind, window_shape, strides=None, padding="VALID", normalize_edges=false))]
    fn pool(
        kind: &str,
        window_shape: Vec<i64>,
        strides: Option<Vec<i64>>,
        padding: &str,
        normalize_edges: bool,
    ) -> PyResult<Self> {
        let sizes = |name: &str, v: &[i64]| -> PyResult<Vec<usize>> {
            v.iter()
                .map(|&k| {
                    usize::try_from(k).map_err(|_| {
                        PyValueError::new_err(format!("{name}: every entry must be a positive integer, got {v:?}"))
                    })
                })
                .collect()
        };
        let k = match kind {
            "avg" => core::PoolKind::Avg,
            "sum" => core::PoolKind::Sum,
            other => return Err(PyValueError::new_err(format!("unknown pooling {other:?}"))),
        };
        let w = sizes("window_shape", &window_shape)?;
        let s = strides.map(|s| sizes("strides", &s)).transpose()?;
        let pad = padding.parse().map_err(PyErrWrap)?;
        let p = core::Pool::new(k, w, s, pad, normalize_edges).map_err(PyErrWrap)?;
        Ok(PyLayer {
            inner: core::Layer::Pool(p),
        })
    }

    /// global_pool("avg" | "sum")
    #[staticmethod]
    fn global_pool(kind: &str) -> PyResult<Self> {
        let k = match kind {
            "avg" => core::PoolKind::Avg,
            "sum" => core::PoolKind::Sum,
            other => return Err(PyValueError::new_err(format!("unknown pooling {other:?}"))),
        };
        Ok(PyLayer {
            inner: core::Layer::GlobalPool(k),
        })
    }

    /// Flatten()
    #[staticmethod]
    fn flatten() -> Self {
        PyLayer {
            inner: core::Layer::Flatten,
        }
    }

    /// serial(layers)
    #[staticmethod]
    fn serial(layers: Vec<Bound<'_, PyLayer>>) -> Self {
        PyLayer {
            inner: core::Layer::Serial(layers.iter().map(|l| l.get().inner.clone()).collect()),
        }
    }

    /// parallel(layers)
    #[staticmethod]
    fn parallel(layers: Vec<Bound<'_, PyLayer>>) -> Self {
        PyLayer {
            inner: core::Layer::Parallel(layers.iter().map(|l| l.get().inner.clone()).collect()),
        }
    }

    /// Raise ValueError when the layer is invalid in every context (see `Network::check_layer`).
    fn check(&self) -> PyResult<()> {
        core::Network::check_layer(&self.inner).map_err(|e| PyErrWrap(e).into())
    }

    fn __repr__(&self) -> String {
        self.inner.name()
    }
}

/// The core's per-example shape from the bindings' optional list.
fn input_shape(shape: Option<Vec<usize>>) -> PyResult<core::InputShape> {
    match shape {
        None => Ok(core::InputShape::FLAT),
        Some(s) => core::InputShape::new(&s).map_err(|e| PyErrWrap(e).into()),
    }
}

/// A validated network.
#[pyclass(module = "ntkrs._core", name = "Network", frozen)]
struct PyNetwork {
    inner: core::Network,
}

/// A 2-D float array of either precision, viewed as a faer matrix.
enum Input<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
}

fn input<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<Input<'py>> {
    if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f64>>() {
        Ok(Input::F64(a))
    } else if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f32>>() {
        Ok(Input::F32(a))
    } else {
        Err(PyTypeError::new_err(format!(
            "{name}: expected a 2-D float32 or float64 numpy array"
        )))
    }
}

fn mat<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>) -> faer::MatRef<'a, T> {
    let v = a.as_array();
    let (r, c) = v.dim();
    let s = v.strides();
    // SAFETY: the view is alive for 'a and (r, c, strides) describe it exactly.
    unsafe { faer::MatRef::from_raw_parts(v.as_ptr(), r, c, s[0], s[1]) }
}

/// One kernel call in precision `T`, through [`run_long`].
#[allow(clippy::too_many_arguments)]
fn typed_kernel<'py, T: ntkrs_core::Element + numpy::Element>(
    py: Python<'py>,
    net: &core::Network,
    a: &PyReadonlyArray2<'py, T>,
    b: Option<&PyReadonlyArray2<'py, T>>,
    get: Get,
    opts: &KernelOptions,
    diagonal: bool,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Pair<'py>> {
    let (ma, mb) = (mat(a), b.map(mat));
    let (n1, d) = (ma.nrows(), ma.ncols());
    let k = if diagonal {
        let cost = shaped_cost(net, opts.shape, n1, 1, d);
        run(py, progress, cost, |ctl| {
            net.kernel_diagonal_shaped(ma, opts.shape, get, opts.par, ctl)
        })?
    } else {
        let cost = shaped_cost(net, opts.shape, n1, mb.map_or(n1, |m| m.nrows()), d);
        run(py, progress, cost, |ctl| net.kernel(ma, mb, get, opts, ctl))?
    };
    to_numpy(py, k, diagonal)
}

type Pair<'py> = (Option<Bound<'py, PyAny>>, Option<Bound<'py, PyAny>>);

fn to_numpy<'py, T: numpy::Element>(py: Python<'py>, k: core::Kernels<T>, diagonal: bool) -> PyResult<Pair<'py>> {
    let conv = |v: Option<Vec<T>>| -> PyResult<Option<Bound<'py, PyAny>>> {
        match v {
            None => Ok(None),
            Some(v) => {
                let a = PyArray1::from_vec(py, v);
                if diagonal {
                    Ok(Some(a.into_any()))
                } else {
                    Ok(Some(a.reshape([k.rows, k.cols])?.into_any()))
                }
            }
        }
    };
    Ok((conv(k.nngp)?, conv(k.ntk)?))
}

/// Where one kernel of an out-of-core call goes: a `.npy` path, or a writable C-ordered array of
/// the kernel's shape and dtype (`release`: it is a shared file mapping whose written pages may be
/// handed back to the OS).
enum Target<'py, T: numpy::Element> {
    File(String),
    Array(PyReadwriteArray2<'py, T>, bool),
}

/// One out-of-core call in precision `T`, through [`run_long`].
#[allow(clippy::too_many_arguments)]
fn typed_kernel_to<'py, T: ntkrs_core::Element + numpy::Element>(
    py: Python<'py>,
    net: &core::Network,
    a: &PyReadonlyArray2<'py, T>,
    b: Option<&PyReadonlyArray2<'py, T>>,
    get: Get,
    opts: &OutOptions,
    targets: &[Bound<'py, PyAny>],
    release: &[bool],
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Stats> {
    let (ma, mb) = (mat(a), b.map(mat));
    let (n1, n2) = (ma.nrows(), mb.map_or(ma.nrows(), |m| m.nrows()));
    let mut held: Vec<Target<'py, T>> = Vec::with_capacity(targets.len());
    for (k, t) in targets.iter().enumerate() {
        if let Ok(path) = t.extract::<String>() {
            held.push(Target::File(path));
            continue;
        }
        let arr = t.extract::<PyReadwriteArray2<'py, T>>().map_err(|_| {
            PyTypeError::new_err(format!(
                "out: expected a path or a writable 2-D {} array, got {}",
                T::NAME,
                t.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?;
        if arr.shape() != [n1, n2] || !arr.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "out: the array must be C-contiguous of shape ({n1}, {n2}), got shape {:?}",
                arr.shape()
            )));
        }
        held.push(Target::Array(arr, release.get(k).copied().unwrap_or(false)));
    }
    let mut sinks: Vec<Box<dyn Sink<T> + '_>> = Vec::with_capacity(held.len());
    for t in held.iter_mut() {
        match t {
            Target::File(path) => sinks.push(Box::new(
                NpyFile::<T>::create(path.as_str(), n1, n2).map_err(PyErrWrap)?,
            )),
            Target::Array(arr, release) => {
                let ptr = arr.as_array_mut().as_mut_ptr();
                // SAFETY: the array is C-contiguous of shape (n1, n2), borrowed mutably (numpy's
                // borrow checker) until `held` is dropped after the call; `release` only for a
                // shared file mapping (checked by the Python caller).
                sinks.push(Box::new(unsafe { MemorySink::from_raw(ptr, n1, n2, *release) }));
            }
        }
    }
    let mut refs: Vec<&mut dyn Sink<T>> = sinks.iter_mut().map(|b| b.as_mut() as &mut dyn Sink<T>).collect();
    let out = run_long(py, progress, |ctl| net.kernel_to(ma, mb, get, opts, &mut refs, ctl));
    drop(refs);
    drop(sinks); // an unfinished file is deleted here
    out
}

fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("plan_s", s.plan_s)?;
    d.set_item("gram_s", s.gram_s)?;
    d.set_item("layers_s", s.layers_s)?;
    d.set_item("wait_s", s.wait_s)?;
    d.set_item("read_s", s.read_s)?;
    d.set_item("mirror_s", s.mirror_s)?;
    d.set_item("write_s", s.write_s)?;
    d.set_item("total_s", s.total_s)?;
    d.set_item("panels", s.panels)?;
    d.set_item("panel_rows", s.panel_rows)?;
    d.set_item("buffer_sets", s.buffer_sets)?;
    d.set_item("buffer_bytes", s.buffer_bytes)?;
    d.set_item("bytes_written", s.bytes_written)?;
    Ok(d)
}

#[pymethods]
impl PyNetwork {
    #[new]
    fn new(root: &Bound<'_, PyLayer>) -> PyResult<Self> {
        Ok(PyNetwork {
            inner: core::Network::from_layer(root.get().inner.clone()).map_err(PyErrWrap)?,
        })
    }

    /// Output width for inputs of width `in_dim`.
    fn out_dim(&self, in_dim: usize) -> usize {
        self.inner.out_dim(in_dim)
    }

    /// Whether the network has a Dropout layer in train mode.
    fn has_dropout(&self) -> bool {
        self.inner.has_dropout()
    }

    /// kernel_to(x1, x2, nngp, ntk, targets, release, memory_limit, tile_size, threads, progress) -> stats
    #[pyo3(signature = (x1, x2, nngp, ntk, targets, release, memory_limit, tile_size=0, threads=0, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn kernel_to<'py>(
        &self,
        py: Python<'py>,
        x1: &Bound<'py, PyAny>,
        x2: Option<&Bound<'py, PyAny>>,
        nngp: bool,
        ntk: bool,
        targets: Vec<Bound<'py, PyAny>>,
        release: Vec<bool>,
        memory_limit: u64,
        tile_size: usize,
        threads: usize,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let get = Get { nngp, ntk };
        let opts = OutOptions {
            kernel: KernelOptions {
                tile_size,
                par: Parallelism::from_threads(threads),
                ..Default::default()
            },
            memory_limit,
        };
        let net = &self.inner;
        let a = input(x1, "x1")?;
        let b = x2.map(|x| input(x, "x2")).transpose()?;
        let (t, r) = (&targets[..], &release[..]);
        let stats = match (a, b) {
            (Input::F64(a), None) => typed_kernel_to(py, net, &a, None, get, &opts, t, r, progress),
            (Input::F64(a), Some(Input::F64(b))) => typed_kernel_to(py, net, &a, Some(&b), get, &opts, t, r, progress),
            (Input::F32(a), None) => typed_kernel_to(py, net, &a, None, get, &opts, t, r, progress),
            (Input::F32(a), Some(Input::F32(b))) => typed_kernel_to(py, net, &a, Some(&b), get, &opts, t, r, progress),
            _ => Err(PyTypeError::new_err("x2: must have the same dtype as x1")),
        }?;
        stats_dict(py, &stats)
    }

    /// kernel(x1, x2, nngp, ntk, diagonal, tile_size, progress, threads, shape) -> (nngp | None, ntk | None)
    #[pyo3(signature = (x1, x2=None, nngp=true, ntk=true, diagonal=false, tile_size=0, progress=None, threads=0, shape=None))]
    #[allow(clippy::too_many_arguments)]
    fn kernel<'py>(
        &self,
        py: Python<'py>,
        x1: &Bound<'py, PyAny>,
        x2: Option<&Bound<'py, PyAny>>,
        nngp: bool,
        ntk: bool,
        diagonal: bool,
        tile_size: usize,
        progress: Option<&Bound<'py, PyAny>>,
        threads: usize,
        shape: Option<Vec<usize>>,
    ) -> PyResult<Pair<'py>> {
        let get = Get { nngp, ntk };
        let opts = KernelOptions {
            tile_size,
            par: Parallelism::from_threads(threads),
            shape: input_shape(shape)?,
        };
        let net = &self.inner;
        let a = input(x1, "x1")?;
        let b = x2.map(|x| input(x, "x2")).transpose()?;
        let same = || PyTypeError::new_err("x2: must have the same dtype as x1");
        match (a, b) {
            (Input::F64(a), None) => typed_kernel(py, net, &a, None, get, &opts, diagonal, progress),
            (Input::F64(a), Some(Input::F64(b))) => typed_kernel(py, net, &a, Some(&b), get, &opts, diagonal, progress),
            (Input::F32(a), None) => typed_kernel(py, net, &a, None, get, &opts, diagonal, progress),
            (Input::F32(a), Some(Input::F32(b))) => typed_kernel(py, net, &a, Some(&b), get, &opts, diagonal, progress),
            _ => Err(same()),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.depth()
    }

    /// init(in_dim, seed, sample, float32, shape) -> [(W (in, out), b (out,) | None), ...]
    /// (a Conv's W as its (taps·in, out) matrix; `shape`: the per-example shape of image rows)
    #[pyo3(signature = (in_dim, seed=0, sample=0, float32=false, shape=None))]
    fn init<'py>(
        &self,
        py: Python<'py>,
        in_dim: usize,
        seed: u64,
        sample: u64,
        float32: bool,
        shape: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let shape = input_shape(shape)?;
        fn conv<'py, T: ntkrs_core::Element + numpy::Element>(
            py: Python<'py>,
            p: Vec<core::DenseOwned<T>>,
        ) -> PyResult<Bound<'py, PyList>> {
            let out = PyList::empty(py);
            for l in p {
                let w = PyArray1::from_vec(py, l.w).reshape([l.n_in, l.n_out])?;
                let b = l.b.map(|b| PyArray1::from_vec(py, b));
                out.append((w, b))?;
            }
            Ok(out)
        }
        let net = &self.inner;
        if float32 {
            let p = run(py, None, finite_cost(net, 1, in_dim, 8.0), |_| {
                net.init_shaped::<f32>(in_dim, shape, seed, sample)
            })?;
            conv(py, p)
        } else {
            let p = run(py, None, finite_cost(net, 1, in_dim, 8.0), |_| {
                net.init_shaped::<f64>(in_dim, shape, seed, sample)
            })?;
            conv(py, p)
        }
    }

    /// apply(params, x, dropout_seed, threads, shape) -> f(x) of shape (N, O); params and x of one dtype.
    #[pyo3(signature = (params, x, dropout_seed=0, threads=0, shape=None))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        params: Vec<ParamPair<'py>>,
        x: &Bound<'py, PyAny>,
        dropout_seed: u64,
        threads: usize,
        shape: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let net = &self.inner;
        let opts = core::ApplyOptions {
            par: Parallelism::from_threads(threads),
            dropout_seed,
            shape: input_shape(shape)?,
        };
        match input(x, "x")? {
            Input::F64(x) => {
                let p = typed_params::<f64>(&params)?;
                let v = views(&p)?;
                let mx = mat(&x);
                let cost = finite_cost(net, mx.nrows(), mx.ncols(), 1.0);
                let f = run(py, None, cost, |ctl| net.apply(&v, mx, &opts, ctl))?;
                let o = if mx.nrows() == 0 {
                    net.out_dim(mx.ncols())
                } else {
                    f.len() / mx.nrows()
                };
                Ok(PyArray1::from_vec(py, f).reshape([mx.nrows(), o])?.into_any())
            }
            Input::F32(x) => {
                let p = typed_params::<f32>(&params)?;
                let v = views(&p)?;
                let mx = mat(&x);
                let cost = finite_cost(net, mx.nrows(), mx.ncols(), 1.0);
                let f = run(py, None, cost, |ctl| net.apply(&v, mx, &opts, ctl))?;
                let o = if mx.nrows() == 0 {
                    net.out_dim(mx.ncols())
                } else {
                    f.len() / mx.nrows()
                };
                Ok(PyArray1::from_vec(py, f).reshape([mx.nrows(), o])?.into_any())
            }
        }
    }

    /// empirical(params, x1, x2, nngp, ntk, trace, per_layer, progress, dropout_seed, threads) -> (nngp | None, ntk | None, [ntk per layer])
    #[pyo3(signature = (params, x1, x2=None, nngp=true, ntk=true, trace=true, per_layer=false, progress=None, dropout_seed=0, threads=0, shape=None))]
    #[allow(clippy::too_many_arguments)]
    fn empirical<'py>(
        &self,
        py: Python<'py>,
        params: Vec<ParamPair<'py>>,
        x1: &Bound<'py, PyAny>,
        x2: Option<&Bound<'py, PyAny>>,
        nngp: bool,
        ntk: bool,
        trace: bool,
        per_layer: bool,
        progress: Option<&Bound<'py, PyAny>>,
        dropout_seed: u64,
        threads: usize,
        shape: Option<Vec<usize>>,
    ) -> PyResult<Triple<'py>> {
        let opts = core::EmpiricalOptions {
            get: Get { nngp, ntk },
            trace,
            per_layer,
            par: Parallelism::from_threads(threads),
            dropout_seed,
            shape: input_shape(shape)?,
        };
        let net = &self.inner;
        let a = input(x1, "x1")?;
        let b = x2.map(|x| input(x, "x2")).transpose()?;
        match (a, b) {
            (Input::F64(a), b) => {
                let b = match b {
                    None => None,
                    Some(Input::F64(b)) => Some(b),
                    Some(_) => return Err(PyTypeError::new_err("x2: must have the same dtype as x1")),
                };
                typed_empirical(py, net, &params, &a, b.as_ref(), &opts, progress)
            }
            (Input::F32(a), b) => {
                let b = match b {
                    None => None,
                    Some(Input::F32(b)) => Some(b),
                    Some(_) => return Err(PyTypeError::new_err("x2: must have the same dtype as x1")),
                };
                typed_empirical(py, net, &params, &a, b.as_ref(), &opts, progress)
            }
        }
    }

    /// monte_carlo(x1, x2, n_samples, seed, nngp, ntk, progress, threads) -> (nngp | None, ntk | None)
    #[pyo3(signature = (x1, x2=None, n_samples=64, seed=0, nngp=true, ntk=true, progress=None, threads=0, shape=None))]
    #[allow(clippy::too_many_arguments)]
    fn monte_carlo<'py>(
        &self,
        py: Python<'py>,
        x1: &Bound<'py, PyAny>,
        x2: Option<&Bound<'py, PyAny>>,
        n_samples: usize,
        seed: u64,
        nngp: bool,
        ntk: bool,
        progress: Option<&Bound<'py, PyAny>>,
        threads: usize,
        shape: Option<Vec<usize>>,
    ) -> PyResult<Pair<'py>> {
        let net = &self.inner;
        let a = input(x1, "x1")?;
        let b = x2.map(|x| input(x, "x2")).transpose()?;
        let mc = core::MonteCarloOptions {
            get: Get { nngp, ntk },
            n_samples,
            seed,
            par: Parallelism::from_threads(threads),
            shape: input_shape(shape)?,
        };
        match (a, b) {
            (Input::F64(a), None) => typed_monte_carlo(py, net, &a, None, mc, progress),
            (Input::F64(a), Some(Input::F64(b))) => typed_monte_carlo(py, net, &a, Some(&b), mc, progress),
            (Input::F32(a), None) => typed_monte_carlo(py, net, &a, None, mc, progress),
            (Input::F32(a), Some(Input::F32(b))) => typed_monte_carlo(py, net, &a, Some(&b), mc, progress),
            _ => Err(PyTypeError::new_err("x2: must have the same dtype as x1")),
        }
    }

    /// train(params, x, y, x_test, y_test, learning_rate, steps, record_every, record_ntk, progress, dropout_seed, threads, record_at) -> dict
    #[pyo3(signature = (params, x, y, x_test=None, y_test=None, learning_rate=1.0, steps=100, record_every=1, record_ntk=false, progress=None, dropout_seed=0, threads=0, record_at=None))]
    #[allow(clippy::too_many_arguments)]
    fn train<'py>(
        &self,
        py: Python<'py>,
        params: Vec<ParamPair<'py>>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        x_test: Option<&Bound<'py, PyAny>>,
        y_test: Option<&Bound<'py, PyAny>>,
        learning_rate: f64,
        steps: usize,
        record_every: usize,
        record_ntk: bool,
        progress: Option<&Bound<'py, PyAny>>,
        dropout_seed: u64,
        threads: usize,
        record_at: Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let opts = core::TrainOptions {
            learning_rate,
            steps,
            record_every,
            record_at,
            record_ntk,
            par: Parallelism::from_threads(threads),
            dropout_seed,
        };
        match input(x, "x")? {
            Input::F64(_) => typed_train::<f64>(py, &self.inner, &params, x, y, x_test, y_test, &opts, progress),
            Input::F32(_) => typed_train::<f32>(py, &self.inner, &params, x, y, x_test, y_test, &opts, progress),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn typed_train<'py, T: ntkrs_core::Element + numpy::Element>(
    py: Python<'py>,
    net: &core::Network,
    params: &[ParamPair<'py>],
    x: &Bound<'py, PyAny>,
    y: &Bound<'py, PyAny>,
    x_test: Option<&Bound<'py, PyAny>>,
    y_test: Option<&Bound<'py, PyAny>>,
    opts: &core::TrainOptions,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let arr = |a: &Bound<'py, PyAny>, name: &str| -> PyResult<PyReadonlyArray2<'py, T>> {
        a.extract()
            .map_err(|_| PyTypeError::new_err(format!("{name}: expected a 2-D {} array", std::any::type_name::<T>())))
    };
    let p = typed_params::<T>(params)?;
    let v = views(&p)?;
    let (xa, ya) = (arr(x, "x")?, arr(y, "y")?);
    let xt = x_test.map(|a| arr(a, "x_test")).transpose()?;
    let yt = y_test.map(|a| arr(a, "y_test")).transpose()?;
    let (mx, my) = (mat(&xa), mat(&ya));
    let (mxt, myt) = (xt.as_ref().map(mat), yt.as_ref().map(mat));
    let n_test = mxt.map_or(0, |m| m.nrows());
    let records = match &opts.record_at {
        Some(at) => at.len() as f64,
        None => (opts.steps / opts.record_every.max(1) + 2) as f64,
    };
    let cost = finite_cost(net, mx.nrows(), mx.ncols(), 3.0) * (opts.steps as f64 + 1.0)
        + finite_cost(net, n_test, mx.ncols(), 1.0) * records
        + if opts.record_ntk { f64::INFINITY } else { 0.0 };
    let t = run(py, progress, cost, |ctl| net.train(&v, mx, my, mxt, myt, opts, ctl))?;
    let (r, n, o) = (t.steps.len(), mx.nrows(), net.out_dim(mx.ncols()));
    let out = PyDict::new(py);
    out.set_item(
        "steps",
        PyArray1::from_vec(py, t.steps.iter().map(|&s| s as u64).collect()),
    )?;
    out.set_item("f_train", PyArray1::from_vec(py, t.f_train).reshape([r, n, o])?)?;
    if let (Some(f), Some(m)) = (t.f_test, mxt) {
        out.set_item("f_test", PyArray1::from_vec(py, f).reshape([r, m.nrows(), o])?)?;
    }
    out.set_item("loss_train", PyArray1::from_vec(py, t.loss_train))?;
    if let Some(l) = t.loss_test {
        out.set_item("loss_test", PyArray1::from_vec(py, l))?;
    }
    if let Some(k) = t.ntk_train {
        out.set_item("ntk_train", PyArray1::from_vec(py, k).reshape([r, n, n])?)?;
    }
    let plist = PyList::empty(py);
    for l in t.params {
        let w = PyArray1::from_vec(py, l.w).reshape([l.n_in, l.n_out])?;
        plist.append((w, l.b.map(|b| PyArray1::from_vec(py, b))))?;
    }
    out.set_item("params", plist)?;
    Ok(out)
}

/// One Dense layer's `(W, b)` as passed from Python.
type ParamPair<'py> = (Bound<'py, PyAny>, Option<Bound<'py, PyAny>>);
/// Typed, borrowed parameter arrays.
type TypedParams<'py, T> = Vec<(PyReadonlyArray2<'py, T>, Option<PyReadonlyArray1<'py, T>>)>;
/// `(nngp, ntk, ntk per layer)`.
type Triple<'py> = (
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
    Vec<Bound<'py, PyAny>>,
);

fn typed_params<'py, T: numpy::Element>(params: &[ParamPair<'py>]) -> PyResult<TypedParams<'py, T>> {
    let name = std::any::type_name::<T>();
    params
        .iter()
        .enumerate()
        .map(|(l, (w, b))| {
            let w: PyReadonlyArray2<'py, T> = w.extract().map_err(|_| {
                PyTypeError::new_err(format!("params: W of Dense layer {l} must be a 2-D {name} array"))
            })?;
            let b = match b {
                None => None,
                Some(b) => Some(b.extract::<PyReadonlyArray1<'py, T>>().map_err(|_| {
                    PyTypeError::new_err(format!("params: b of Dense layer {l} must be a 1-D {name} array"))
                })?),
            };
            Ok((w, b))
        })
        .collect()
}

fn views<'a, T: ntkrs_core::Element + numpy::Element>(
    p: &'a TypedParams<'_, T>,
) -> PyResult<Vec<core::DenseParams<'a, T>>> {
    p.iter()
        .map(|(w, b)| {
            let b = match b {
                None => None,
                Some(b) => Some(
                    b.as_slice()
                        .map_err(|_| PyValueError::new_err("params: biases must be contiguous arrays"))?,
                ),
            };
            Ok(core::DenseParams { w: mat(w), b })
        })
        .collect()
}

fn typed_monte_carlo<'py, T: ntkrs_core::Element + numpy::Element>(
    py: Python<'py>,
    net: &core::Network,
    a: &PyReadonlyArray2<'py, T>,
    b: Option<&PyReadonlyArray2<'py, T>>,
    opts: core::MonteCarloOptions,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Pair<'py>> {
    let (ma, mb) = (mat(a), b.map(mat));
    let (n1, n2, d) = (ma.nrows(), mb.map_or(0, |m| m.nrows()), ma.ncols());
    let o = net.out_dim(d) as f64;
    let cost =
        opts.n_samples as f64 * (finite_cost(net, n1 + n2, d, 8.0) * (1.0 + o) + (n1 * n1.max(n2)) as f64 * o * 64.0);
    let k = run(py, progress, cost, |ctl| net.monte_carlo(ma, mb, &opts, ctl))?;
    to_numpy(py, k, false)
}

fn typed_empirical<'py, T: ntkrs_core::Element + numpy::Element>(
    py: Python<'py>,
    net: &core::Network,
    params: &[ParamPair<'py>],
    a: &PyReadonlyArray2<'py, T>,
    b: Option<&PyReadonlyArray2<'py, T>>,
    opts: &core::EmpiricalOptions,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Triple<'py>> {
    let p = typed_params::<T>(params)?;
    let v = views(&p)?;
    let (ma, mb) = (mat(a), b.map(mat));
    let (n1, n2, d) = (ma.nrows(), mb.map_or(0, |m| m.nrows()), ma.ncols());
    let o = net.out_dim(d) as f64;
    let cost = finite_cost(net, n1 + n2, d, 2.0) * (1.0 + o) + (n1 * n1.max(n2)) as f64 * o * o * 64.0;
    let e = run(py, progress, cost, |ctl| net.empirical(&v, ma, mb, opts, ctl))?;
    let shape: Vec<usize> = if e.traced {
        vec![e.rows, e.cols]
    } else {
        vec![e.rows, e.cols, e.out_dim, e.out_dim]
    };
    let conv =
        |v: Vec<T>| -> PyResult<Bound<'py, PyAny>> { Ok(PyArray1::from_vec(py, v).reshape(shape.clone())?.into_any()) };
    let nngp = e.nngp.map(conv).transpose()?;
    let ntk = e.ntk.map(conv).transpose()?;
    let layers = e.ntk_layers.into_iter().map(conv).collect::<PyResult<Vec<_>>>()?;
    Ok((nngp, ntk, layers))
}

/// The activation registry: one dict per kind (class, key, aliases, params, numerical, tunable, doc).
#[pyfunction]
fn activation_registry(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for k in registry::KINDS {
        let d = PyDict::new(py);
        d.set_item("class", k.class)?;
        d.set_item("key", k.key)?;
        d.set_item("aliases", k.aliases.to_vec())?;
        let params = PyList::empty(py);
        for p in k.params {
            let pd = PyDict::new(py);
            pd.set_item("name", p.name)?;
            pd.set_item("default", p.default)?;
            pd.set_item("integer", p.integer)?;
            pd.set_item("range", (p.range.0, p.range.1))?;
            pd.set_item("typical", p.typical)?;
            params.append(pd)?;
        }
        d.set_item("params", params)?;
        d.set_item("numerical", k.numerical)?;
        d.set_item("tunable", k.tunable)?;
        let doc = if k.numerical && k.key != "elementwise" {
            format!("{}{}", k.doc, registry::NUMERICAL_DOC)
        } else {
            k.doc.to_string()
        };
        d.set_item("doc", doc)?;
        out.append(d)?;
    }
    Ok(out)
}

/// An activation name as the command line writes it, `NAME` or `NAME(p1, ...)`: (key, params).
#[pyfunction]
fn parse_activation(text: &str) -> PyResult<(String, Vec<f64>)> {
    let (k, p) = core::parse_activation(text).map_err(PyErrWrap)?;
    Ok((k.key.to_string(), p))
}

/// A network spec of the command line (see `ntkrs_core::spec`) as a dict of `mlp`/`resnet`
/// arguments, with `kind` "mlp" or "resnet".
#[pyfunction]
fn parse_spec<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    let s = core::Spec::parse(text).map_err(PyErrWrap)?;
    let d = PyDict::new(py);
    d.set_item("kind", if s.residual { "resnet" } else { "mlp" })?;
    d.set_item("activation", (s.activation.0.key, s.activation.1.clone()))?;
    d.set_item("depth", s.depth)?;
    d.set_item("width", s.width)?;
    d.set_item("W_std", s.w_std)?;
    d.set_item("b_std", s.b_std)?;
    d.set_item("out_dim", s.out_dim)?;
    d.set_item(
        "parameterization",
        match s.parameterization {
            core::Parameterization::Ntk => "ntk",
            core::Parameterization::Standard => "standard",
        },
    )?;
    d.set_item(
        "layer_norm",
        s.layer_norm.map(|p| match p {
            core::LayerNormPosition::Pre => "pre",
            core::LayerNormPosition::Post => "post",
        }),
    )?;
    Ok(d)
}

/// Resize the worker pool (0: one thread per logical CPU).
#[pyfunction]
fn set_num_threads(n: i64) -> PyResult<()> {
    if n < 0 {
        return Err(PyValueError::new_err(format!(
            "n: the number of threads must be ≥ 0, got {n}"
        )));
    }
    core::set_num_threads(n as usize).map_err(|e| PyErrWrap(e).into())
}

/// Number of worker threads.
#[pyfunction]
fn get_num_threads() -> usize {
    core::num_threads()
}

/// Parse a byte count such as "2GB", "512MiB" or "1000" (see `ntkrs_core::parse_bytes`).
#[pyfunction]
fn parse_bytes(text: &str) -> PyResult<u64> {
    core::parse_bytes(text).map_err(|e| PyErrWrap(e).into())
}

/// Bytes the out-of-core path reserves for scratch within a memory limit.
#[pyfunction]
fn reserve_bytes() -> u64 {
    core::RESERVE_BYTES
}

/// The SIMD level in use ("avx512", "avx2+fma" or "scalar"): chosen at first use (`NTKRS_SIMD`,
/// else the best detected) or by `set_simd_level`.
#[pyfunction]
fn simd_level() -> &'static str {
    core::simd_level()
}

/// Force the SIMD level of later calls ("scalar", "avx2", "avx512"); ValueError when unknown or
/// not supported by this CPU.
#[pyfunction]
fn set_simd_level(level: &str) -> PyResult<()> {
    let l = core::SimdLevel::parse(level).map_err(PyErrWrap)?;
    core::set_simd_level(l).map_err(|e| PyErrWrap(e).into())
}

/// The SIMD levels this CPU supports, slowest first.
#[pyfunction]
fn supported_simd_levels() -> Vec<&'static str> {
    core::SimdLevel::supported().into_iter().map(|l| l.name()).collect()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyActivation>()?;
    m.add_class::<PyLayer>()?;
    m.add_class::<PyNetwork>()?;
    m.add_function(wrap_pyfunction!(activation_registry, m)?)?;
    m.add_function(wrap_pyfunction!(parse_activation, m)?)?;
    m.add_function(wrap_pyfunction!(parse_spec, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(set_simd_level, m)?)?;
    m.add_function(wrap_pyfunction!(supported_simd_levels, m)?)?;
    m.add_function(wrap_pyfunction!(parse_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(reserve_bytes, m)?)?;
    m.add("NonFiniteError", m.py().get_type::<NonFiniteError>())?;
    m.add("__version__", core::VERSION)?;
    m.add("DEFAULT_QUAD_DEGREE", core::DEFAULT_QUAD_DEGREE)?;
    Ok(())
}
