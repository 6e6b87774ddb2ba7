"""Dtypes and devices on every array library the generic path takes.

* dtypes float16 / bfloat16 / float32 / float64 are kept for params and state on every backend,
  and every step is judged by the independent 256-bit reference (``adamax_spec.reference``);
* array-api-strict's simulated devices, including devices without float64 (and without int64);
* dask: lazy, chunk-preserving dense steps on a ``dask.distributed`` cluster of worker processes,
  checked against a float64 computation of the Keras 2.9 rule written here; sparse gradients raise
  a clear ``NotImplementedError``;
* JAX arrays sharded over 4 simulated CPU devices (in a subprocess: ``XLA_FLAGS`` must be set
  before JAX is imported) keep their sharding and equal an unsharded run bit for bit.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from array_backends import Backend

from adamax_spec import Adamax, IndexedSlices
from adamax_spec.conformance.case import Case, SparseGrad, Trajectory
from adamax_spec.reference.verdict import judge


def _have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


# ---------------------------------------------------------------------------------------------
# A small runner: our optimizer on one backend, recording a Trajectory for the reference judge
# ---------------------------------------------------------------------------------------------


def _round(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` rounded to ``dtype`` (nearest, ties to even), held exactly as float64."""
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    return np.asarray(x).astype(dtype).astype(np.float64)


def _case(dtype: str, *, sparse: bool, steps: int = 5, seed: int = 0, **hyper: Any) -> Case:
    """Two parameters, ``steps`` steps; gradients of mixed scale, one step without a gradient
    for the bias, and (if ``sparse``) a sparse step with a duplicate index."""
    rng = np.random.default_rng(seed)
    w = _round(rng.standard_normal((5, 3)), dtype)
    b = _round(rng.standard_normal(3), dtype)
    grads: list[list[Any]] = []
    for k in range(steps):
        scale = 10.0 ** rng.integers(-3, 2)
        gw: Any = _round(scale * rng.standard_normal((5, 3)), dtype)
        if sparse and k == 2:
            gw = SparseGrad(np.array([4, 1, 4]), _round(rng.standard_normal((3, 3)), dtype), (5, 3))
        gb = None if k == 1 else _round(rng.standard_normal(3), dtype)
        grads.append([gw, gb])
    h = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, **hyper}
    return Case([w, b], grads, h, dtype)


def _run(be: Backend, case: Case, opt: Adamax) -> Trajectory:
    """Run ``case`` with :meth:`Adamax.apply` (the generic array-API path), asserting after every
    step that params and state keep the parameter dtype and device and that the inputs of
    ``apply`` are left unchanged (it is functional); returns host copies for the judge."""
    opt.fast = False  # the per-library fast paths have their own tests (tests/backends/test_fast_paths.py)
    dt = case.dtype
    params = [be.arr(p, dt) for p in case.params]
    where = [be.where(p) for p in params]
    traj = Trajectory()
    for step in case.grads:
        grads: list[Any] = []
        for g in step:
            if g is None:
                grads.append(None)
            elif isinstance(g, SparseGrad):
                grads.append(IndexedSlices(be.arr(g.values, dt), be.idx(g.indices), g.dense_shape))
            else:
                grads.append(be.arr(g, dt))
        before = [be.host(p) for p in params]
        params_in = params
        params = opt.apply(params, grads)
        for i, (p, b) in enumerate(zip(params_in, before, strict=True)):
            assert np.array_equal(be.host(p), b, equal_nan=True), f"{be.name}: apply() wrote into params[{i}]"
        st = opt.state
        assert st is not None
        for kind, xs in (("param", params), ("m", st.m), ("u", st.u)):
            for i, x in enumerate(xs):
                assert be.dtype_name(x) == dt, f"{be.name}: {kind}[{i}] has dtype {x.dtype}, expected {dt}"
                assert be.where(x) == where[i], f"{be.name}: {kind}[{i}] moved from {where[i]} to {be.where(x)}"
        traj.params.append([be.host(p) for p in params])
        traj.m.append([be.host(x) for x in st.m])
        traj.u.append([be.host(x) for x in st.u])
        traj.dtypes.append(dt)
    return traj


def _assert_conforms(case: Case, traj: Trajectory, variant: str = "keras") -> None:
    v = judge(case, traj, variant)
    assert v.ok, "\n".join(f.describe() for f in v.failures) + f"\n(interpretation: {v.interpretation})"


# ---------------------------------------------------------------------------------------------
# 4. dtypes kept, results judged by the 256-bit reference
# ---------------------------------------------------------------------------------------------

DTYPE_MATRIX = [
    ("numpy", "float16"), ("numpy", "float32"), ("numpy", "float64"),
    ("torch", "float16"), ("torch", "bfloat16"), ("torch", "float32"), ("torch", "float64"),
    # JAX float64 needs the process-wide x64 flag; it runs in test_core via the adapter.
    ("jax", "float16"), ("jax", "bfloat16"), ("jax", "float32"),
    ("array_api_strict", "float32"), ("array_api_strict", "float64"),
    # dask: a graph per step, recomputed from the start for every host copy; float32 runs on the cluster below
    ("dask", "float16"), ("dask", "float64"),
]
# the torch profile differs only in scalars and epsilon placement: one lazy backend is enough for keras
DTYPE_CASES = [("keras", b, d) for b, d in DTYPE_MATRIX] + [("torch", b, d) for b, d in DTYPE_MATRIX if b != "dask"]


@pytest.mark.parametrize("profile,backend,dtype", DTYPE_CASES, ids=["-".join(c) for c in DTYPE_CASES])
def test_dtype_is_kept_and_steps_conform(profile, backend, dtype):
    """Params, m and u keep the parameter dtype (float16/bfloat16 too) through dense, sparse
    and gradient-less steps, and each step is within the reference's error bound for that
    dtype, with the profile's hyperparameter rounding among the interpretations the judge
    allows (clause H-2: Keras rounds lr, b1, b2 to float32, then to the dtype)."""
    be = Backend(backend)
    case = _case(dtype, sparse=be.sparse, clipnorm=2.0)
    traj = _run(be, case, Adamax(0.01, 0.9, 0.999, 1e-7, profile=profile, clipnorm=2.0))
    _assert_conforms(case, traj, profile)


def test_judge_rejects_a_float16_run_whose_state_was_rounded_to_bfloat16():
    """The harness above can fail: a state kept in a coarser format than the parameter's
    (bfloat16 moments for float16 weights) is caught by the same judge."""
    case = _case("float16", sparse=True)
    traj = _run(Backend("numpy"), case, Adamax(0.01))
    traj.m = [[_round(x, "bfloat16") for x in step] for step in traj.m]
    assert not judge(case, traj, "keras").ok


# ---------------------------------------------------------------------------------------------
# 3. array-api-strict: simulated devices, and devices without float64 / int64
# ---------------------------------------------------------------------------------------------

STRICT_DEVICES = ["device1", "no_float64"]


@pytest.mark.parametrize("device_name", STRICT_DEVICES)
@pytest.mark.parametrize("profile", ["keras", "torch"])
@pytest.mark.parametrize("clips", [{}, {"clipvalue": 0.5, "global_clipnorm": 1.0}], ids=["noclip", "clips"])
def test_strict_device_is_kept_dense_and_sparse(device_name, profile, clips):
    """Params and state stay on a non-default device through dense and sparse steps (keras:
    lazy rows; torch: densified); on ``no_float64`` any float64 intermediate would raise."""
    xp = pytest.importorskip("array_api_strict")
    be = Backend("array_api_strict", device_name)
    case = _case("float32", sparse=True, **clips)
    # a 0-d learning rate on the same device: no Python double reaches a float64 array
    lr = xp.asarray(0.01, dtype=xp.float32, device=xp.Device(device_name))
    traj = _run(be, case, Adamax(lr, 0.9, 0.999, 1e-7, profile=profile, **clips))
    case = Case(case.params, case.grads, {**case.hyper, "learning_rate": float(lr)}, case.dtype)
    _assert_conforms(case, traj, profile)


def test_strict_device_without_int64_dense():
    """``no_x64`` has neither float64 nor int64: dense steps run there.  (Sparse steps do not:
    array-api-strict 2.6's ``unique_counts``/``argsort`` return int64 even there.)"""
    be = Backend("array_api_strict", "no_x64")
    case = _case("float32", sparse=False, clipnorm=1.0)
    traj = _run(be, case, Adamax(0.01, clipnorm=1.0))
    _assert_conforms(case, traj)


# ---------------------------------------------------------------------------------------------
# 1. dask: lazy, chunked, on a distributed cluster of worker processes
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, worker_dashboard_address=None)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _no_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a dask graph was computed eagerly")


def _keras_step_f64(w, g, m, u, t, *, lr, b1, b2, eps):
    """One Keras 2.9 dense step (adamax.py/training_ops.cc), written out here in float64 from
    the float32 state: hyperparameters rounded to float32 as Keras stores them, ``t`` cast to
    float32 (exact), epsilon converted straight to float32.  Returns the exact results and the
    first-order rounding bounds of a float32 evaluation (unit roundoff u32 = 2**-24):

    * ``m + (g - m)*(1 - b1)``: ``1 - b1`` is exact (Sterbenz); three roundings give
      ``|err| <= u32*(|m'| + 2|g - m|(1 - b1))``, to first order (factor 1.01 for the rest);
    * ``max(b2*u, |g|)``: one rounding of ``b2*u``, ``|err| <= u32*b2*|u|``;
    * ``w - lr_t*(m'/(u' + eps))`` from the float32 m', u' actually produced: ``lr_t`` is one
      division (``1 - b1**t`` is exact for b1 = 0.75, t <= 15), then +, /, *, - round once each:
      ``|err| <= u32*(|w'| + 4|step|)``.
    """
    f32 = np.float32
    b1_, b2_, lr_, eps_ = (float(f32(x)) for x in (b1, b2, lr, eps))
    w, g, m, u = (np.asarray(x, dtype=np.float64) for x in (w, g, m, u))
    c = 1.0 - b1_
    m_new = m + (g - m) * c
    u_new = np.maximum(b2_ * u, np.abs(g))
    bias = 1.0 - b1_ ** float(f32(t))
    assert bias == float(f32(bias)), "the test's b1 must make 1 - b1**t exact in float32"
    lr_t = lr_ / bias
    u32 = 2.0**-24
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    tol_m = 1.01 * u32 * (np.abs(m_new) + 2 * np.abs(g - m) * c) + tiny
    tol_u = 1.01 * u32 * b2_ * np.abs(u) + tiny

    def w_and_tol(m_obs, u_obs):
        step = lr_t * (np.asarray(m_obs, np.float64) / (np.asarray(u_obs, np.float64) + eps_))
        w_new = w - step
        return w_new, 1.01 * u32 * (np.abs(w_new) + 4 * np.abs(step)) + tiny

    return m_new, tol_m, u_new, tol_u, w_and_tol


def test_dask_distributed_dense_is_lazy_chunked_and_matches_float64(dask_client):
    """Three dense steps build a graph and compute nothing; params and state stay dask arrays
    with the parameter's chunks; computed on 2 worker processes, every step agrees with the
    float64 Keras rule within the float32 rounding bounds derived in ``_keras_step_f64``."""
    import dask
    import dask.array as da

    rng = np.random.default_rng(5)
    shape, chunks = (12, 8), (4, 4)
    w0 = rng.standard_normal(shape).astype(np.float32)
    gs = [(10.0 ** rng.integers(-2, 2) * rng.standard_normal(shape)).astype(np.float32) for _ in range(3)]
    hyper = {"lr": 0.01, "b1": 0.75, "b2": 0.999, "eps": 1e-7}
    opt = Adamax(hyper["lr"], hyper["b1"], hyper["b2"], hyper["eps"])
    params = [da.from_array(w0, chunks=chunks)]
    history = []
    with dask.config.set(scheduler=_no_compute):
        for g in gs:
            params = opt.apply(params, [da.from_array(g, chunks=chunks)])
            st = opt.state
            assert st is not None
            for x in (params[0], st.m[0], st.u[0]):
                assert isinstance(x, da.Array) and x.chunks == ((4, 4, 4), (4, 4)) and x.dtype == np.float32
            history.append((params[0], st.m[0], st.u[0]))
        clipped = Adamax(0.01, clipvalue=0.5, clipnorm=1.0).apply(params, [da.from_array(gs[0], chunks=chunks)])
        assert clipped[0].chunks == params[0].chunks
        global_clipped = Adamax(0.01, global_clipnorm=1.0).apply(params, [da.from_array(gs[0], chunks=chunks)])
        assert global_clipped[0].chunks == params[0].chunks
    computed = dask_client.gather(dask_client.compute(history))
    w, m, u = w0, np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    for t, (g, (w1, m1, u1)) in enumerate(zip(gs, computed, strict=True), start=1):
        assert w1.dtype == m1.dtype == u1.dtype == np.float32
        m_x, tol_m, u_x, tol_u, w_and_tol = _keras_step_f64(w, g, m, u, t, **hyper)
        w_x, tol_w = w_and_tol(m1, u1)
        for name, got, want, tol in (("m", m1, m_x, tol_m), ("u", u1, u_x, tol_u), ("w", w1, w_x, tol_w)):
            excess = np.abs(got.astype(np.float64) - want) / tol
            assert excess.max() <= 1, f"step {t} {name}: {excess.max():.3g} x bound at {np.argmax(excess)}"
        w, m, u = w1, m1, u1


def test_dask_distributed_persist_each_step_keeps_graph_small(dask_client):
    """The path for a table larger than one machine: step with apply(), persist params and
    state on the workers after each step, so the graph never grows; same numbers as one lazy
    graph of all steps."""
    import dask.array as da

    rng = np.random.default_rng(6)
    w0 = rng.standard_normal((16, 4)).astype(np.float32)
    gs = [rng.standard_normal((16, 4)).astype(np.float32) for _ in range(4)]
    lazy_opt, opt = Adamax(0.01), Adamax(0.01)
    lazy = [da.from_array(w0, chunks=(4, 4))]
    params = [da.from_array(w0, chunks=(4, 4))]
    for g in gs:
        lazy = lazy_opt.apply(lazy, [da.from_array(g, chunks=(4, 4))])
        params = opt.apply(params, [da.from_array(g, chunks=(4, 4))])
        st = opt.state
        assert st is not None
        w, m, u = dask_client.persist([params[0], st.m[0], st.u[0]])
        params = [w]
        opt.load_state_dict({"iterations": st.iterations, "m": [m], "u": [u]})
        assert len(params[0].__dask_graph__()) == params[0].npartitions  # one key per chunk
    assert opt.iterations == len(gs)
    a, b = dask_client.gather(dask_client.compute([params[0], lazy[0]]))
    np.testing.assert_array_equal(a, b)


def test_dask_sparse_gradient_raises_not_implemented_and_changes_nothing():
    da = pytest.importorskip("dask.array")
    w = da.ones((6, 2), dtype=np.float32, chunks=(3, 2))
    opt = Adamax(0.1)
    params = opt.apply([w], [da.ones((6, 2), dtype=np.float32, chunks=(3, 2))])
    st = opt.state
    sg = IndexedSlices(da.ones((2, 2), dtype=np.float32), da.from_array(np.array([1, 1])), (6, 2))
    with pytest.raises(NotImplementedError, match=r"sparse gradients \(IndexedSlices\)"):
        opt.apply(params, [sg])
    assert opt.state is st and opt.iterations == 1


# ---------------------------------------------------------------------------------------------
# 2. JAX sharded over 4 simulated CPU devices (subprocess: XLA_FLAGS before importing JAX)
# ---------------------------------------------------------------------------------------------

_SHARDED_SCRIPT = textwrap.dedent(
    """
    import time
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from adamax_spec import Adamax, apply_gradients, init

    def same(a, b):
        return np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    shape = (8, 6)
    w0 = rng.standard_normal(shape).astype(np.float32)
    gs = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    # clipnorm large enough to stay inactive (jit only: eager sharded ops compile one by one):
    # an active norm is a cross-device reduction, whose last bit may depend on the layout.
    kw = dict(clipvalue=1.5, clipnorm=1e3)
    for mesh_shape, spec, dtype in (((4,), P("x", None), jnp.float32), ((2, 2), P("x", "y"), jnp.bfloat16)):
        t0 = time.perf_counter()
        mesh = jax.make_mesh(mesh_shape, ("x", "y")[: len(mesh_shape)])
        sh = NamedSharding(mesh, spec)
        opt, ref = Adamax(0.01), Adamax(0.01)
        opt.fast = ref.fast = False  # the generic array-API path (fast paths have their own tests)
        ps = [jax.device_put(jnp.asarray(w0, dtype), sh)]
        us = [jnp.asarray(w0, dtype)]
        for g in gs:
            ps = opt.apply(ps, [jax.device_put(jnp.asarray(g, dtype), sh)])
            us = ref.apply(us, [jnp.asarray(g, dtype)])
            for x in (ps[0], opt.state.m[0], opt.state.u[0]):
                assert x.sharding == sh and x.dtype == dtype, (x.sharding, x.dtype)
            for a, b in ((ps[0], us[0]), (opt.state.m[0], ref.state.m[0]), (opt.state.u[0], ref.state.u[0])):
                assert same(a, b), "eager sharded != eager unsharded"
        # under jit, with the state as a pytree (the step count is traced)
        hyper = Adamax(0.01, **kw).hyper
        step = jax.jit(lambda p, g, s: apply_gradients(p, g, s, hyper))
        p_sh = [jax.device_put(jnp.asarray(w0, dtype), sh)]
        p_un = [jnp.asarray(w0, dtype)]
        s_sh, s_un = init(p_sh), init(p_un)
        for g in gs:
            p_sh, s_sh = step(p_sh, [jax.device_put(jnp.asarray(g, dtype), sh)], s_sh)
            p_un, s_un = step(p_un, [jnp.asarray(g, dtype)], s_un)
            assert p_sh[0].sharding == sh and s_sh.m[0].sharding == sh and s_sh.u[0].sharding == sh
        assert int(s_sh.iterations) == len(gs)
        for a, b in ((p_sh[0], p_un[0]), (s_sh.m[0], s_un.m[0]), (s_sh.u[0], s_un.u[0])):
            assert same(a, b), "jit sharded != jit unsharded"
        print("ok", mesh_shape, dtype.__name__, f"{time.perf_counter() - t0:.1f}s")
    """
)


def test_jax_sharded_keeps_sharding_and_matches_unsharded():
    if not _have("jax"):
        pytest.skip("jax is not installed")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok") == 2, r.stdout


@pytest.mark.skipif(not _have("dask"), reason="dask is not installed")
def test_dask_target_passes_every_property_of_the_suite():
    """``adamax-conformance adamax_spec --backend dask``: the whole suite, a few examples each
    (T-1 runs one case of 2,049+ steps), judged by the reference; sparse gradients and
    parameter groups are "not supported" on dask, not failures."""
    from adamax_spec.conformance.adapters.ours import OursTarget
    from adamax_spec.conformance.engine import run_property
    from adamax_spec.conformance.properties import PROPERTIES

    target = OursTarget("dask", "keras")
    results = {p.id: run_property(p, target, "keras", examples=2, seed=3) for p in PROPERTIES}
    bad = {k: r.detail for k, r in results.items() if r.status not in ("pass", "not supported")}
    assert not bad, bad
    assert {k for k, r in results.items() if r.status == "not supported"} == {"SP-1", "G-1"}
