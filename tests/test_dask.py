"""ntkrs.dask: kernels as dask arrays whose blocks the Rust core computes, on the threaded
scheduler and on a LocalCluster of worker processes; and the shared pool after fork."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import dask
import dask.array as da
import ntkrs as nk
import ntkrs.dask as nkd
import numpy as np
import pytest
from distributed import Client, LocalCluster


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((611, 20))
    y = rng.standard_normal((250, 20))
    net = nk.mlp(depth=3, width=64, activation="erf", W_std=1.4, b_std=0.1)
    return net, x, y


def close(a, b, dtype=np.float64):
    """Blocks are computed from sub-matrices of X, so their input Gram comes from faer products of
    other shapes than the whole kernel's: equal up to rounding in the summation (1e-13 / 1e-5 of
    the largest entry for float64 / float32), though usually bitwise."""
    tol = 1e-13 if dtype == np.float64 else 1e-5
    return np.abs(a - b).max() <= tol * np.abs(b).max()


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


def test_symmetric_blocks_on_the_threaded_scheduler(data):
    net, x, _ = data
    want = net.kernel(x, get=("nngp", "ntk"))
    nngp, ntk = nkd.kernel(net, x, get=("nngp", "ntk"), chunks=200)
    assert ntk.shape == (611, 611) and ntk.chunks[0] == (200, 200, 200, 11)
    n, t = dask.compute(nngp, ntk, scheduler="threads")
    assert close(n, want.nngp) and close(t, want.ntk)
    assert np.array_equal(t, t.T)  # lower blocks are transposes of the upper tasks
    # each upper block pair is one task: 4·5/2 = 10 kernel calls, not 16
    graph = dict(ntk.__dask_graph__())
    assert sum(1 for k in graph if str(k[0] if isinstance(k, tuple) else k).startswith("_block")) == 10


def test_cross_kernel_float32_and_dask_input(data):
    net, x, y = data
    want = net.kernel(x, y, get="ntk", dtype=np.float32)
    got = nkd.kernel(net, da.from_array(x, chunks=(150, 7)), y, get="ntk", dtype=np.float32, threads_per_task=2)
    assert got.dtype == np.float32 and got.shape == (611, 250)
    assert close(got.compute(scheduler="threads"), want, np.float32)


def test_local_cluster_of_processes(data, client):
    net, x, y = data
    want = net.kernel(x, get="ntk")
    got = nkd.kernel(net, x, get="ntk", chunks=160).compute()
    assert close(got, want) and np.array_equal(got, got.T)
    want_xy = net.kernel(x, y, get="nngp")
    assert close(nkd.kernel(net, x, y, get="nngp", chunks=300).compute(), want_xy)


def test_store_to_npy_stack_through_dask(tmp_path, data, client):
    net, x, _ = data
    K = nkd.kernel(net, x, get="ntk", chunks=256, dtype=np.float32)
    da.to_npy_stack(tmp_path / "K", K, axis=0)
    back = da.from_npy_stack(tmp_path / "K").compute()
    assert close(back, net.kernel(x, get="ntk", dtype=np.float32), np.float32)


def test_bad_arguments(data):
    net, x, y = data
    with pytest.raises(TypeError, match="net"):
        nkd.kernel("relu", x)
    with pytest.raises(ValueError, match="chunks"):
        nkd.kernel(net, x, chunks=0)
    with pytest.raises(ValueError, match="threads_per_task"):
        nkd.kernel(net, x, threads_per_task=-1)
    with pytest.raises(ValueError, match="features"):
        nkd.kernel(net, x, y[:, :5])
    with pytest.raises(ValueError, match="get"):
        nkd.kernel(net, x, get="ntc")


def test_networks_pickle(data):
    net, x, _ = data
    nets = [net, nk.serial(nk.Dense(8, W_std=1.2), nk.Polynomial([0.1, 1.0, 0.3]), nk.Dense(4),
                           nk.Tanh(quad_degree=24), nk.Dense(1, parameterization="standard"))]
    for n in nets:
        back = pickle.loads(pickle.dumps(n))
        assert repr(back) == repr(n)
        assert np.array_equal(back.kernel(x[:40]).ntk, n.kernel(x[:40]).ntk)


def _child(q):
    x = np.random.default_rng(1).standard_normal((1200, 16))
    q.put(float(nk.mlp(2, 8, "relu").kernel(x, get="ntk").sum()))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_pool_works_in_a_forked_child():
    """The parent's pool threads do not exist in a forked child; the child rebuilds the pool
    instead of waiting forever for them."""
    x = np.random.default_rng(1).standard_normal((1200, 16))
    want = float(nk.mlp(2, 8, "relu").kernel(x, get="ntk").sum())  # the parent's pool is running
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(60)
    if p.is_alive():
        p.kill()
        pytest.fail("the forked child hung in its kernel call")
    assert p.exitcode == 0 and q.get(timeout=5) == want


# --- kernel regression with block products as tasks ----------------------------------------------


def test_kernel_regression_on_a_cluster_of_processes_matches_the_single_machine_solve(client):
    """ntkrs.dask.kernel_regression on a LocalCluster of two worker processes: the same centres,
    preconditioner and iteration as predict.kernel_regression(solver="nystrom"), the block products
    as tasks; the predictions agree to rounding (sums in another order), float64 and float32."""
    from ntkrs.predict import kernel_regression

    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 6))
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
    xt = rng.standard_normal((70, 6))
    net = nk.mlp(depth=2, width=64, activation="erf", W_std=1.3, b_std=0.2)
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 1e-3)):
        want = kernel_regression(net, x, y, xt, solver="nystrom", n_centers=120, seed=2, dtype=dtype, diag_reg=1e-2)
        got = nkd.kernel_regression(net, x, y, xt, n_centers=120, seed=2, dtype=dtype, diag_reg=1e-2, chunks=128)
        assert got.solver == "nystrom" and got.info["blocks"] == 4 and got.info["converged"]
        assert np.abs(got.mean - want.mean).max() <= tol * np.abs(want.mean).max(), dtype
        assert abs(got.info["iterations"] - want.info["iterations"]) <= (0 if dtype == np.float64 else 2)


def test_kernel_regression_on_the_threaded_scheduler_with_all_centres_is_exact():
    from ntkrs.predict import kernel_regression

    rng = np.random.default_rng(6)
    x, xt = rng.standard_normal((150, 4)), rng.standard_normal((20, 4))
    y = np.cos(x[:, 0])
    net = nk.mlp(depth=2, width=64, activation="relu", W_std=1.4, b_std=0.1)
    with dask.config.set(scheduler="threads"):
        got = nkd.kernel_regression(net, x, y, xt, n_centers=150, dtype=np.float64, chunks=40, diag_reg=1e-3, tol=1e-12)
    want = kernel_regression(net, x, y, xt, solver="exact", diag_reg=1e-3)
    assert got.mean.shape == (20,) and np.abs(got.mean - want.mean).max() <= 1e-8 * np.abs(want.mean).max()


def test_kernel_regression_bad_arguments(data):
    net, x, _ = data
    y = np.ones(len(x))
    with pytest.raises(ValueError, match="n_centers"):
        nkd.kernel_regression(net, x, y, x[:5], n_centers=len(x) + 1)
    with pytest.raises(ValueError, match="chunks"):
        nkd.kernel_regression(net, x, y, x[:5], chunks=0)
    with pytest.raises(ValueError, match="y_train.*NaN"):
        nkd.kernel_regression(net, x, np.full(len(x), np.nan), x[:5])
    with pytest.raises(ValueError, match="get"):
        nkd.kernel_regression(net, x, y, x[:5], get="ntc")
