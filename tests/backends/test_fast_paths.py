"""The per-library fast paths (``adamax_spec.backends``) against the generic array-API path.

Three kinds of evidence: the conformance properties run over each fast path (against
the independent reference), every bit of ``w``, ``m``, ``u`` compared with the generic
path (``Adamax(fast=False)``) on many shapes, and the step taken by the fast path at
all (a spy on the dispatcher), atomic, and lazy about importing libraries.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from adamax_spec import Adamax, IndexedSlices, dispatch, get_profile
from adamax_spec.backends import cupy_backend
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.engine import run_property
from adamax_spec.conformance.properties import PROPERTIES

HAVE = {b: importlib.util.find_spec(b) is not None for b in ("torch", "jax", "cupy")}
SHAPES = [(), (0,), (1,), (7,), (5, 3), (4, 2, 3), (70_001,)]


@pytest.fixture
def spy(monkeypatch):
    """Counts the steps each fast path took (returned a result)."""
    taken: list[str] = []
    original = dispatch.fast_step

    def fast_step(params, grads, state, hyper, *, in_place, cache):
        out = original(params, grads, state, hyper, in_place=in_place, cache=cache)
        if out is not None:
            taken.append(dispatch.library_of(params[0]))
        return out

    monkeypatch.setattr(dispatch, "fast_step", fast_step)
    return taken


# -- conformance over the fast paths --------------------------------------------------------

# The properties a fast path can change (the update, dtypes, epsilon values, sparse rows, clipping
# (of sparse gradients too), schedules, checkpoints, non-finite values); the rest check validation
# and bookkeeping the fast paths share.
FAST_PROPERTIES = {
    "numpy": ("U-1", "U-2", "U-3", "H-1", "SP-1", "C-1", "LR-1", "CK-1", "N-1", "G-1"),
    "torch": ("U-1", "U-2", "H-1", "SP-1", "C-1", "CK-1", "N-1"),
    "jax": ("U-1", "U-2", "H-1", "SP-1", "C-1"),
}
CASES = [(b, p) for b in ("numpy", "torch", "jax") if b == "numpy" or HAVE[b]
         for p in PROPERTIES if p.id in FAST_PROPERTIES[b]]


@pytest.mark.parametrize("backend,prop", CASES, ids=[f"{b}-{p.id}" for b, p in CASES])
def test_fast_path_conforms_to_keras_profile(backend, prop, spy):
    r = run_property(prop, OursTarget(backend, "keras", fast=True), "keras", examples=4, seed=1)
    assert r.status in ("pass", "not supported"), f"{r.detail}\n{r.reproducer}"
    if prop.id in ("U-1", "SP-1"):
        assert backend in spy, "the fast path never took a step"


@pytest.mark.parametrize("profile", ["keras3", "torch", "optax"])
def test_fast_path_conforms_to_other_profiles(profile):
    for prop in PROPERTIES:
        if prop.id in ("U-1", "U-2", "SP-1"):
            r = run_property(prop, OursTarget("numpy", profile, fast=True), profile, examples=4, seed=2)
            assert r.status in ("pass", "not supported"), f"{prop.id}: {r.detail}\n{r.reproducer}"


@pytest.mark.skipif(not HAVE["jax"], reason="jax is not installed")
@pytest.mark.parametrize("profile", ["torch", "optax"])
def test_jax_sparse_steps_conform_under_dense_sparse_profiles(profile, spy):
    """The jitted sparse step's other branch: rows summed, scattered into zeros, dense step."""
    prop = next(p for p in PROPERTIES if p.id == "SP-1")
    r = run_property(prop, OursTarget("jax", profile, fast=True), profile, examples=6, seed=3)
    assert r.status == "pass", f"{r.detail}\n{r.reproducer}"
    assert "jax" in spy


def test_generic_in_place_path_conforms():
    for prop in PROPERTIES:
        if prop.id not in ("U-1", "SP-1"):
            continue
        r = run_property(prop, OursTarget("numpy", "keras", fast=False), "keras", examples=4, seed=5)
        assert r.status in ("pass", "not supported"), f"{prop.id}: {r.detail}\n{r.reproducer}"


# -- bit identity with the generic path -------------------------------------------------------


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize in (2, 4, 8) else a


def _run_pair(make_array, dtype, profile, steps=3, specials=False, seed=0, sparse=None):
    """The same steps with fast=True and fast=False; returns both (params, m, u) lists.

    ``sparse`` (default: where the profile's fast paths take sparse steps, i.e. ``abs_of_sum``):
    parameter 4 gets an ``IndexedSlices`` gradient with repeated rows, else a dense one."""
    if sparse is None:
        sparse = get_profile(profile).sparse_magnitude == "abs_of_sum"
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    fast_p = [make_array(x, dtype) for x in init]
    slow_p = [make_array(x, dtype) for x in init]
    fast, slow = Adamax(0.01, profile=profile), Adamax(0.01, profile=profile, fast=False)
    for k in range(steps):
        grads = []
        for j, s in enumerate(SHAPES):
            g = rng.standard_normal(s)
            if specials and g.size > 4:
                g.reshape(-1)[:4] = [np.nan, np.inf, 0.0, -0.0]
            grads.append(None if (j == 2 and k == 1) else make_array(g, dtype))
        if sparse:
            grads[4] = IndexedSlices(make_array(rng.standard_normal((6, 3)), dtype),
                                     make_array(np.array([1, 1, 4, 0, 4, 1]), None), (5, 3))
        with np.errstate(all="ignore"):   # the generic path warns about NaN and inf; the kernels do not
            fast.apply_gradients(list(zip(grads, fast_p, strict=True)))
            slow.apply_gradients(list(zip(grads, slow_p, strict=True)))
    return (fast_p + list(fast.state.m + fast.state.u), slow_p + list(slow.state.m + slow.state.u))


def _np_array(x, dtype):
    return np.asarray(x).astype(dtype if dtype is not None else np.int64)


@pytest.mark.parametrize("profile", ["keras", "keras3", "torch", "optax", "paddle", "mxnet", "mlx"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("specials", [False, True])
def test_numpy_fast_path_is_bit_identical(profile, dtype, specials, spy):
    fast, slow = _run_pair(_np_array, dtype, profile, specials=specials)
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a.shape == b.shape and (_bits(a) == _bits(b)).all(), f"array {i} ({a.shape}) differs"
    assert spy.count("numpy") == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_of_abs_sparse_steps_take_the_generic_path(dtype, spy):
    """keras3's ``u`` from the sum of ``|values|`` is left to the generic path (the kernels take
    ``|g|`` of the summed rows): the fast optimizer declines those steps and gets the same bits."""
    fast, slow = _run_pair(_np_array, dtype, "keras3", sparse=True)
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a.shape == b.shape and (_bits(a) == _bits(b)).all(), f"array {i} ({a.shape}) differs"
    assert spy.count("numpy") == 0


def test_numpy_many_tensors_and_mixed_dtypes_bit_identical():
    rng = np.random.default_rng(1)
    sizes = [int(n) for n in rng.integers(0, 3000, size=300)]
    dts = [np.float32, np.float64, np.float16]
    ws = [rng.standard_normal(n).astype(dts[i % 3]) for i, n in enumerate(sizes)]
    vs = [w.copy() for w in ws]
    a, b = Adamax(0.02), Adamax(0.02, fast=False)
    for _ in range(2):
        gs = [rng.standard_normal(w.shape).astype(w.dtype) for w in ws]
        a.apply_gradients(zip(gs, ws, strict=True))
        b.apply_gradients(zip(gs, vs, strict=True))
    for x, y in zip(ws + list(a.state.u), vs + list(b.state.u), strict=True):
        assert (_bits(x) == _bits(y)).all()


def test_numpy_sparse_touches_only_named_rows_and_sums_duplicates():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((1000, 8)).astype(np.float32)
    v = w.copy()
    idx = np.array([5, 999, 5, 0, 5, 17])
    g = IndexedSlices(rng.standard_normal((6, 8)).astype(np.float32), idx, w.shape)
    a, b = Adamax(0.1), Adamax(0.1, fast=False)
    for _ in range(3):
        a.apply_gradients([(g, w)])
        b.apply_gradients([(g, v)])
    assert (_bits(w) == _bits(v)).all() and (_bits(a.state.m[0]) == _bits(b.state.m[0])).all()
    untouched = np.setdiff1d(np.arange(1000), idx)
    assert (a.state.m[0][untouched] == 0).all()


def _torch_array(x, dtype):
    import torch

    if dtype is None:
        return torch.from_numpy(np.asarray(x, np.int64))
    return torch.from_numpy(np.asarray(x, np.float64)).to(dtype)


@pytest.mark.skipif(not HAVE["torch"], reason="torch is not installed")
@pytest.mark.parametrize("profile", ["keras", "keras3", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
def test_torch_fast_paths_are_bit_identical(profile, dtype, spy):
    import torch

    dt = getattr(torch, dtype)
    fast, slow = _run_pair(_torch_array, dt, profile, specials=True)
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        # every bit, except NaN payloads (torch's own kernels produce NaNs of either sign)
        x, y = a.to(torch.float64).numpy(), b.to(torch.float64).numpy()
        nan = np.isnan(x)
        assert (nan == np.isnan(y)).all() and (_bits(x[~nan]) == _bits(y[~nan])).all(), f"array {i} differs"
    # bfloat16 (foreach path) leaves a step with a sparse gradient to the generic path: dispatch
    # declines; keras3's runs are dense (its sparse steps are generic on every dtype)
    sparse = get_profile(profile).sparse_magnitude == "abs_of_sum"
    assert spy.count("torch") == (0 if dt == torch.bfloat16 and sparse else 3)


@pytest.mark.skipif(not HAVE["torch"], reason="torch is not installed")
def test_torch_foreach_path_bit_identical_on_dense():
    import torch

    rng = np.random.default_rng(3)
    for dt in (torch.float32, torch.bfloat16):
        ws = [torch.from_numpy(rng.standard_normal(s)).to(dt) for s in SHAPES]
        vs = [w.clone() for w in ws]
        a, b = Adamax(0.01), Adamax(0.01, fast=False)
        for _ in range(3):
            gs = [torch.from_numpy(rng.standard_normal(s)).to(dt) for s in SHAPES]
            a.apply_gradients(zip(gs, ws, strict=True))
            b.apply_gradients(zip(gs, vs, strict=True))
        for x, y in zip(ws + list(a.state.m + a.state.u), vs + list(b.state.m + b.state.u), strict=True):
            assert torch.equal(x.view(torch.int16) if dt == torch.bfloat16 else x.view(torch.int32),
                               y.view(torch.int16) if dt == torch.bfloat16 else y.view(torch.int32))


@pytest.mark.skipif(not HAVE["torch"], reason="torch is not installed")
def test_torch_parameters_requiring_grad_are_updated(spy):
    import torch

    p = torch.nn.Parameter(torch.ones(5))
    q = torch.ones(5)
    g = torch.full((5,), 0.5)
    Adamax(0.1).apply_gradients([(g, p)])
    Adamax(0.1, fast=False).apply_gradients([(g, q)])
    assert torch.equal(p.detach(), q) and p.requires_grad and spy == ["torch"]


@pytest.mark.skipif(not HAVE["jax"], reason="jax is not installed")
def test_jax_jit_path_is_taken_and_close(spy):
    import jax.numpy as jnp

    rng = np.random.default_rng(4)
    ps = [jnp.asarray(rng.standard_normal(s), jnp.float32) for s in SHAPES]
    qs = list(ps)
    a, b = Adamax(0.01), Adamax(0.01, fast=False)
    for _ in range(3):
        gs = [jnp.asarray(rng.standard_normal(s), jnp.float32) for s in SHAPES]
        ps, qs = a.apply(ps, gs), b.apply(qs, gs)
    # XLA compiles the same operations but not bit for bit (a division may become a reciprocal
    # multiply): equal to a fraction of the update size, and conformant (the properties above)
    for x, y in zip(ps, qs, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
    assert spy == ["jax"] * 3


@pytest.mark.skipif(not HAVE["jax"], reason="jax is not installed")
def test_jax_donating_step_matches_apply():
    import jax.numpy as jnp

    from adamax_spec import core
    from adamax_spec.backends import jax_backend

    w = [jnp.arange(6.0, dtype=jnp.float32)]
    g = [jnp.full((6,), 0.5, jnp.float32)]
    opt = Adamax(0.01)
    step = jax_backend.make_step(opt.hyper)
    params, state = step([jnp.array(w[0])], core.init(w), g)
    want = opt.apply(w, g)
    assert state.iterations == 1
    assert (np.asarray(params[0]) == np.asarray(want[0])).all()


@pytest.mark.skipif(not HAVE["jax"], reason="jax is not installed")
@pytest.mark.parametrize("profile", ["keras", "keras3", "torch", "optax", "mlx"])
def test_jax_step_scalars_from_the_host_have_the_device_bits(profile):
    """The jitted step takes its scalars computed on NumPy 0-d arrays of the parameter's dtype
    (no eager JAX work per step): every bit as the core computes them on JAX arrays, at steps
    where ``b1**t`` is inexact, where a float16 step count saturates and past it."""
    import jax
    import jax.numpy as jnp

    from adamax_spec.backends import jax_backend
    from adamax_spec.core import step_scalars

    hyper = Adamax(0.0123, profile=profile).hyper
    dtypes = [jnp.float16, jnp.float32] + ([jnp.float64] if jax.config.jax_enable_x64 else [])
    for dt in dtypes:
        w = jnp.zeros((2,), dt)
        like = jax_backend._host_like(w, 0.0123)
        assert isinstance(like, np.ndarray)
        for t in (1, 4, 2049, 70_000):
            host, device = step_scalars(hyper, 0.0123, t, like), step_scalars(hyper, 0.0123, t, w)
            for name in ("lr_t", "beta_1", "one_minus_beta_1", "beta_2", "epsilon"):
                a, b = np.asarray(getattr(host, name)), np.asarray(getattr(device, name))
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (dt, t, name)
    assert jax_backend._host_like(jnp.zeros(2, jnp.bfloat16), 0.01).dtype == jnp.bfloat16   # stays on JAX
    assert not isinstance(jax_backend._host_like(w, jnp.asarray(0.01)), np.ndarray)


@pytest.mark.skipif(not HAVE["jax"], reason="jax is not installed")
@pytest.mark.parametrize("nnz", [0, 1, 7, 8, 9])
def test_jax_padded_coalesce_is_bit_identical_to_the_core(nnz):
    """The jitted sums add the same slices in the same order as ``coalesce_rows`` (each addition
    rounded once, so every bit agrees), the padding (index n) never shows as a row, and sizes
    at a power of two (8: no padding; 9: padded to 16) are handled alike."""
    import jax.numpy as jnp

    from adamax_spec.backends import jax_backend
    from adamax_spec.sparse import coalesce_rows

    n = 5
    rng = np.random.default_rng(nnz)
    idx = rng.integers(0, n, nnz)
    if nnz:
        idx[-1] = n - 1                  # the last row, next to the padding index
    vals = rng.standard_normal((nnz, 3)).astype(np.float32)
    if nnz >= 2:
        vals[:2] = -0.0                  # the sign of a zero sum follows the core's additions
        idx[:2] = idx[0]
    g = jax_backend._padded(IndexedSlices(jnp.asarray(vals), jnp.asarray(idx, jnp.int32), (n, 3)))
    assert g.indices.shape[0] == max(8, 1 << max(nnz - 1, 0).bit_length())
    rows, sums = jax_backend._coalesce(g.indices, g.values, n)
    want_rows, want_sums = coalesce_rows(idx, vals)
    k = len(want_rows)
    np.testing.assert_array_equal(np.asarray(rows[:k]), want_rows)
    assert (np.asarray(rows[k:]) == n).all()
    assert (_bits(np.asarray(sums[:k])) == _bits(want_sums)).all()


@pytest.mark.skipif(not HAVE["jax"], reason="jax is not installed")
def test_jax_sparse_step_is_jitted_lazy_and_donates(spy):
    import jax.numpy as jnp

    from adamax_spec import core
    from adamax_spec.backends import jax_backend

    w = jnp.asarray(np.arange(12.0).reshape(6, 2), jnp.float32)
    dense = jnp.ones((3,), jnp.float32)
    g = IndexedSlices(jnp.asarray([[1.0, -2.0], [0.5, 0.5], [3.0, 3.0]], jnp.float32), jnp.asarray([4, 1, 4]), (6, 2))
    opt = Adamax(0.01)
    new = opt.apply([w, dense], [g, dense])
    assert spy == ["jax"]
    untouched = np.array([0, 2, 3, 5])
    assert (_bits(np.asarray(new[0])[untouched]) == _bits(np.asarray(w)[untouched])).all()
    assert (np.asarray(opt.state.u[0])[untouched] == 0).all()
    assert (np.asarray(new[0])[[1, 4]] != np.asarray(w)[[1, 4]]).all()
    step = jax_backend.make_step(Adamax(0.01).hyper)
    donated, state = step([jnp.array(w), jnp.array(dense)], core.init([w, dense]), [g, dense])
    assert state.iterations == 1
    for x, y in zip(donated, new, strict=True):
        assert (_bits(np.asarray(x)) == _bits(np.asarray(y))).all()
    with pytest.raises(TypeError, match="keras3"):
        jax_backend.make_step(Adamax(0.01, profile="keras3").hyper)([w], core.init([w]), [g])



@pytest.mark.skipif(importlib.util.find_spec("dask") is None, reason="dask is not installed")
@pytest.mark.parametrize("profile", ["keras", "keras3", "torch", "optax", "paddle", "mxnet", "mlx"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dask_fast_path_is_bit_identical_and_lazy(profile, dtype, spy):
    """One ``map_blocks`` layer per tensor runs the core's update on each chunk: every bit as
    the generic path's ten-layer graph, NaN/inf/signed zeros included, over 0-d, empty and
    multi-chunk tensors whose gradient is chunked differently; and no step computes anything."""
    import dask
    import dask.array as da

    shapes, chunks = [(), (0,), (7,), (5, 6)], [(), (1,), (3,), (2, 4)]
    rng = np.random.default_rng(9)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    fast_p = [da.from_array(x, chunks=c) for x, c in zip(init, chunks, strict=True)]
    slow_p = list(fast_p)
    fast, slow = Adamax(0.01, profile=profile, clipnorm=3.0), Adamax(0.01, profile=profile, clipnorm=3.0, fast=False)
    with dask.config.set(scheduler=_no_compute):
        for k in range(3):
            grads = []
            for j, s in enumerate(shapes):
                g = (10.0 ** rng.integers(-3, 3) * rng.standard_normal(s)).astype(dtype)
                if g.size > 4 and k == 1:
                    g.reshape(-1)[:4] = [np.nan, np.inf, 0.0, -0.0]
                grads.append(None if (j == 2 and k == 1) else da.from_array(g, chunks=g.shape))
            fast_p, slow_p = fast.apply(fast_p, grads), slow.apply(slow_p, grads)
    assert spy == ["dask"] * 3
    for x, y in zip(fast_p, slow_p, strict=True):   # the point of the fast path: a smaller graph
        assert len(x.dask.layers) < len(y.dask.layers)
    with np.errstate(all="ignore"):
        got, want = dask.compute(fast_p + list(fast.state.m + fast.state.u), slow_p + list(slow.state.m + slow.state.u),
                                 scheduler="synchronous")
    for x, y in zip(got, want, strict=True):
        assert x.dtype == y.dtype == dtype and (_bits(x) == _bits(y)).all()


def _no_compute(*args, **kwargs):
    raise AssertionError("a dask graph was computed during a step")


# -- declining, opt-out, laziness ---------------------------------------------------------------


def test_fast_path_declines_what_it_cannot_do_in_place(spy):
    base = np.ones(8, np.float32)
    w1, w2 = base[:4], base[2:6]                 # overlapping views: generic path
    v = np.ones(8, np.float32)
    v1, v2 = v[:4], v[2:6]
    g = np.full(4, 0.25, np.float32)
    Adamax(0.1).apply_gradients([(g, w1), (g, w2)])
    Adamax(0.1, fast=False).apply_gradients([(g, v1), (g, v2)])
    assert spy == [] and (base == v).all()


def test_opt_out_takes_the_generic_path(spy):
    opt = Adamax(0.1, fast=False)
    opt.apply_gradients([(np.ones(3, np.float32), np.ones(3, np.float32))])
    opt.fast = True
    opt.apply_gradients([(np.ones(3, np.float32), np.ones(3, np.float32))])
    assert spy == ["numpy"]


def test_numpy_fast_path_imports_no_other_library():
    code = ("import sys, numpy as np; from adamax_spec import Adamax, IndexedSlices; "
            "w = np.ones((4, 2), np.float32); opt = Adamax(0.1); "
            "opt.apply_gradients([(np.ones((4, 2), np.float32), w)]); "
            "opt.apply_gradients([(IndexedSlices(np.ones((1, 2), np.float32), np.array([1]), (4, 2)), w)]); "
            "bad = [m for m in ('torch', 'jax', 'cupy', 'tensorflow', 'dask') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# -- CuPy: the kernel math on the CPU, the kernels where a GPU is --------------------------------


def _eval_body(body: str, env: dict) -> dict:
    """Evaluate a generated CUDA body with NumPy arrays: one NumPy ufunc per operation."""
    ns = dict(env, add_rn=np.add, sub_rn=np.subtract, mul_rn=np.multiply, div_rn=np.divide,
              abs_=np.abs, max_keep=lambda d, m: np.where(d < m, m, d),
              max_prop=np.maximum)
    with np.errstate(all="ignore"):
        for stmt in body.replace("\n", " ").split(";"):
            stmt = stmt.strip()
            if stmt:
                exec(stmt.removeprefix("T "), ns)
    return ns


@pytest.mark.parametrize("epsilon,nan_in_max", [("outside", "keep_decayed"), ("outside", "propagate"),
                                                 ("inside", "propagate"), ("inside_decay", "propagate")])
def test_cupy_dense_kernel_math_matches_generic_on_cpu(epsilon, nan_in_max):
    from adamax_spec.core import Hyper, step_scalars, update_rows
    from adamax_spec.profiles import PROFILES

    profile = next(p for p in PROFILES.values() if p.epsilon == epsilon and p.nan_in_max == nan_in_max)
    rng = np.random.default_rng(5)
    w, g, m = (rng.standard_normal(999).astype(np.float32) for _ in range(3))
    u = np.abs(rng.standard_normal(999)).astype(np.float32)
    g[:3] = [np.nan, 0.0, 1e-9]
    s = step_scalars(Hyper(profile, 0.01, 0.9, 0.999, 1e-7), 0.01, 3, w)
    env = {"w": w.copy(), "g": g, "m": m.copy(), "u": u.copy(), "lr_t": s.lr_t, "omb1": s.one_minus_beta_1,
           "b2": s.beta_2, "eps": s.epsilon}
    got = _eval_body(cupy_backend.dense_body(epsilon, nan_in_max), env)
    want = update_rows(profile, w, g, m, u, s, kernel_form=True)
    for name, x in zip("wmu", want, strict=True):
        assert (_bits(got[name]) == _bits(x)).all(), name


@pytest.mark.skipif(not HAVE["cupy"], reason="cupy is not installed (the CuPy kernels need it and a CUDA device)")
def test_cupy_fast_path_matches_generic_on_device():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cp.cuda.runtime.CUDARuntimeError as e:
        pytest.skip(f"no CUDA device: {e}")
    rng = np.random.default_rng(6)
    w = cp.asarray(rng.standard_normal((50, 4)), cp.float32)
    v = w.copy()
    a, b = Adamax(0.01), Adamax(0.01, fast=False)
    for _ in range(3):
        g = cp.asarray(rng.standard_normal((50, 4)), cp.float32)
        sg = IndexedSlices(cp.asarray(rng.standard_normal((3, 4)), cp.float32), cp.asarray([1, 1, 7]), (50, 4))
        for opt, p in ((a, w), (b, v)):
            opt.apply_gradients([(g, p)])
            opt.apply_gradients([(sg, p)])
    np.testing.assert_array_max_ulp(cp.asnumpy(w), cp.asnumpy(v), maxulp=1)


# -- torch: the planned step (pointers cached on the parameter list) ------------------------------


def _torch_pair_run(dt, steps, *, mutate=None, flat=False):
    """Parameters requiring grad through the planned path and the generic path, same gradients."""
    import torch

    rng = np.random.default_rng(8)
    sizes = [int(s) for s in rng.integers(0, 2000, size=40)] + [70_001]
    fast_p = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s)).to(dt)) for s in sizes]
    slow_p = [torch.nn.Parameter(p.detach().clone()) for p in fast_p]
    fast, slow = Adamax(0.01), Adamax(0.01, fast=False)
    for k in range(steps):
        if flat:      # all gradients views of one flat buffer, new objects every step
            buf = torch.from_numpy(rng.standard_normal(sum(sizes))).to(dt)
            gs = list(torch.split(buf, sizes))
        else:
            gs = [torch.from_numpy(rng.standard_normal(s)).to(dt) for s in sizes]
        if mutate is not None:
            mutate(k, fast, slow, fast_p, slow_p)
        fast.apply_gradients(zip(gs, fast_p, strict=True))
        slow.apply_gradients(zip(gs, slow_p, strict=True))
    return fast, slow, fast_p, slow_p


def _assert_torch_same(fast, slow, fast_p, slow_p):
    import torch

    for a, b in zip([*fast_p, *fast.state.m, *fast.state.u], [*slow_p, *slow.state.m, *slow.state.u], strict=True):
        a, b = a.detach(), b.detach()
        assert a.shape == b.shape and a.dtype == b.dtype
        if a.dtype == torch.float64:
            assert torch.equal(a.view(torch.int64), b.view(torch.int64))
        else:
            assert torch.equal(a.view(torch.int32), b.view(torch.int32))


@pytest.mark.skipif(not HAVE["torch"], reason="torch is not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("flat", [False, True])
def test_torch_planned_step_bit_identical(dtype, flat):
    import torch

    fast, slow, fast_p, slow_p = _torch_pair_run(getattr(torch, dtype), 3, flat=flat)
    _assert_torch_same(fast, slow, fast_p, slow_p)
    assert "plan" in fast._fast_cache["torch"], "the planned step was not taken"
    assert all(p.requires_grad for p in fast_p)


@pytest.mark.skipif(not HAVE["torch"], reason="torch is not installed")
def test_torch_plan_follows_new_state_and_new_storage():
    """load_state_dict (new moment tensors), ``p.data = ...`` (new storage) and a new parameter
    list each invalidate what was cached: every step still matches the generic path."""
    import torch

    def mutate(k, fast, slow, fast_p, slow_p):
        if k == 2:        # a checkpoint round trip: new m and u tensors
            for opt in (fast, slow):
                sd = opt.state_dict()
                opt.load_state_dict({**sd, "m": [m.clone() for m in sd["m"]], "u": [u.clone() for u in sd["u"]]})
        if k == 3:        # a parameter moved to new storage, as Module.to() does
            for ps in (fast_p, slow_p):
                ps[0].data = ps[0].data.clone()
                ps[5].data = torch.zeros_like(ps[5].data)
        if k == 4:        # a new list object with the same parameters
            fast_p[:] = list(fast_p)

    fast, slow, fast_p, slow_p = _torch_pair_run(torch.float32, 6, mutate=mutate)
    _assert_torch_same(fast, slow, fast_p, slow_p)


@pytest.mark.skipif(not HAVE["torch"], reason="torch is not installed")
def test_torch_planned_step_atomic_and_declines():
    import torch

    ps = [torch.nn.Parameter(torch.ones(6)), torch.nn.Parameter(torch.ones(2, 3))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt, slow = Adamax(0.1), Adamax(0.1, fast=False)
    for o, q in ((opt, ps), (slow, ref)):
        o.apply_gradients([(torch.full((6,), 0.5), q[0]), (torch.full((2, 3), 0.5), q[1])])
    before = [t.detach().clone() for t in (*ps, *opt.state.m, *opt.state.u)]
    with pytest.raises(ValueError, match="shape"):
        opt.apply_gradients([(torch.full((6,), 0.5), ps[0]), (torch.full((3, 2), 0.5), ps[1])])
    for a, b in zip((*ps, *opt.state.m, *opt.state.u), before, strict=True):
        assert torch.equal(a.detach(), b)
    assert opt.iterations == 1
    # a non-contiguous gradient: the planned step declines, another path takes it, same numbers
    g1 = torch.arange(6.0).reshape(3, 2).t()
    opt.apply_gradients([(torch.full((6,), 0.25), ps[0]), (g1, ps[1])])
    slow.apply_gradients([(torch.full((6,), 0.25), ref[0]), (g1, ref[1])])
    for a, b in zip(ps, ref, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_numpy_read_only_variable_still_refused_after_fast_steps():
    w = np.ones(4, np.float32)
    opt = Adamax(0.1)
    opt.apply_gradients([(np.ones(4, np.float32), w)])
    w.flags.writeable = False
    with pytest.raises(TypeError, match="cannot be written in place"):
        opt.apply_gradients([(np.ones(4, np.float32), w)])
    assert opt.iterations == 1
