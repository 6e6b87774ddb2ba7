"""adamax_spec on every installed backend, checked against the independent reference."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import adamax_spec
from adamax_spec import Adamax, IndexedSlices
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.runner import PROPERTIES, run_property

BACKENDS = [b for b in ("numpy", "torch", "jax", "array_api_strict") if importlib.util.find_spec(b)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.id for p in PROPERTIES])
def test_ours_conforms_to_keras_profile(backend, prop):
    r = run_property(prop, OursTarget(backend, "keras"), "keras", examples=4, seed=1)
    assert r.status in ("pass", "not supported"), f"{r.detail}\n{r.reproducer}"


@pytest.mark.parametrize("profile", ["keras3", "torch", "optax"])
@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.id for p in PROPERTIES])
def test_ours_conforms_to_other_profiles(profile, prop):
    r = run_property(prop, OursTarget("numpy", profile), profile, examples=3, seed=2)
    assert r.status in ("pass", "not supported"), f"{prop.id}: {r.detail}\n{r.reproducer}"


def test_torch_profile_is_rejected_under_keras():
    r = run_property(PROPERTIES[0], OursTarget("numpy", "torch"), "keras", examples=30, seed=0)
    assert r.status == "fail"


def test_matches_tf_keras_legacy_bit_for_bit():
    tf_keras = pytest.importorskip("tf_keras")
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((5, 3)).astype(np.float32)
    grads = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(5)]
    ours, opt = w0.copy(), Adamax(0.01, clipnorm=1.0)
    var, ref = tf.Variable(w0), tf_keras.optimizers.legacy.Adamax(0.01, clipnorm=1.0)
    for g in grads:
        opt.apply_gradients([(g, ours)])
        ref.apply_gradients([(tf.constant(g), var)])
    # Same kernel-form formula and operation order as TF's CPU kernel: bit-identical
    # (only the clipnorm scale may differ by an ULP, see clause C-2; none here).
    np.testing.assert_array_max_ulp(ours, var.numpy(), maxulp=2)
    sg = IndexedSlices(np.ones((3, 3), np.float32), np.array([1, 1, 4]), (5, 3))
    before = ours.copy()
    opt.apply_gradients([(sg, ours)])
    ref.apply_gradients([(tf.IndexedSlices(tf.ones((3, 3)), tf.constant([1, 1, 4]), tf.constant([5, 3])), var)])
    np.testing.assert_array_equal(ours[[0, 2, 3]], before[[0, 2, 3]])  # lazy: untouched rows
    np.testing.assert_array_max_ulp(ours, var.numpy(), maxulp=2)


def _nearest_float32(x) -> np.float32:
    """The float32 nearest the rational ``x`` (exact comparison of the three candidates)."""
    from fractions import Fraction

    c = np.float32(float(x))
    cands = [c, np.nextafter(c, np.float32(np.inf)), np.nextafter(c, np.float32(-np.inf))]
    return min(cands, key=lambda f: abs(Fraction(float(f)) - x))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_round_to_format_matches_ieee_casts(dtype):
    """NumPy's float64 -> float16/float32 casts round once, ties to even (IEEE): the reference
    for normals, subnormals and ties."""
    from adamax_spec._xp import round_to_format

    fi = np.finfo(dtype)
    rng = np.random.default_rng(5)
    xs = np.concatenate([rng.uniform(0, 1, 3000), 10.0 ** rng.uniform(-320, 0, 3000),
                         rng.uniform(0, 4, 1000) * float(fi.smallest_normal),
                         [1 + float(fi.eps) / 2, 1 + 1.5 * float(fi.eps), -0.0, 0.0]])
    for x in xs:
        want = float(np.asarray(x).astype(dtype))
        assert round_to_format(float(x), float(fi.eps), float(fi.smallest_normal)) == want, repr(x)


def test_round_to_format_rounds_once_for_bfloat16():
    """bfloat16 (8 significant bits): on [0.5, 1) its ULP is 2**-8, so 0.998046860541912 lies
    between 0.99609375 and 1.0, just below their midpoint 0.998046875: it rounds down (a cast
    through float32 rounds twice, to 0.998046875 and then, a tie, up to 1.0)."""
    from adamax_spec._xp import round_to_format

    assert round_to_format(0.998046860541912, 2.0**-7, 2.0**-126) == 0.99609375


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_correction_power_is_nearest_float32_on_every_machine(backend):
    """keras profile, float32 weights: ``lr_t = lr / (1 - b1**t)`` with ``b1**t`` the float32
    nearest the exact power of float32(b1), so that the bits do not depend on the CPU (NumPy's
    SIMD float32 ``pow`` is off by one ULP for 0.9**4 on AVX512 machines).  Expected values:
    the power from exact rationals, then float32 ``1 - p`` and ``lr / (...)``, which IEEE
    arithmetic rounds correctly (NumPy float32 scalars)."""
    from fractions import Fraction

    import array_api_compat

    from adamax_spec.core import Hyper, step_scalars
    from adamax_spec.profiles import get_profile

    xp = array_api_compat.array_namespace(OursTarget(backend, "keras").xp.zeros(1))
    like = xp.zeros((), dtype=xp.float32)
    hyper = Hyper(get_profile("keras"), 1e-3, 0.9, 0.999, 1e-7)
    lr, b1 = np.float32(1e-3), np.float32(0.9)
    for t in range(1, 201):
        want = lr / (np.float32(1) - _nearest_float32(Fraction(float(b1)) ** t))
        got = np.float32(float(step_scalars(hyper, 1e-3, t, like).lr_t))
        assert got == want, f"t={t}: {got!r} != {want!r}"


BAD_CONSTRUCTOR = [
    (dict(learning_rate=-1.0), ValueError, "learning_rate"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(learning_rate="a"), TypeError, "learning_rate"),
    (dict(beta_1=1.0), ValueError, "beta_1"),
    (dict(beta_1=-0.1), ValueError, "beta_1"),
    (dict(beta_2=float("inf")), ValueError, "beta_2"),
    (dict(beta_2=True), TypeError, "beta_2"),
    (dict(epsilon=0.0), ValueError, "epsilon"),
    (dict(epsilon=-1e-7), ValueError, "epsilon"),
    (dict(clipnorm=-1.0), ValueError, "clipnorm"),
    (dict(clipvalue="x"), TypeError, "clipvalue"),
    (dict(clipnorm=1.0, global_clipnorm=2.0), ValueError, "global_clipnorm"),
    (dict(foo=1), TypeError, "foo"),
    (dict(decay=-0.1), ValueError, "decay"),
    (dict(name=3), TypeError, "name"),
    (dict(profile="adam"), ValueError, "profile"),
]


@pytest.mark.parametrize("kwargs,exc,word", BAD_CONSTRUCTOR, ids=[str(k) for k, _, _ in BAD_CONSTRUCTOR])
def test_bad_constructor_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        Adamax(**kwargs)


def _bad_steps():
    w = np.ones((4, 2), np.float32)
    return [
        ([w], [np.ones((4, 3), np.float32)], ValueError, "shape"),
        ([w], [np.ones((4, 2), np.float64)], TypeError, "dtype"),
        ([w], [None], ValueError, "No gradients"),
        ([np.ones(3, np.int32)], [np.ones(3, np.int32)], TypeError, "floating"),
        ([w], [IndexedSlices(np.ones((1, 2), np.float32), np.array([9]), (4, 2))], ValueError, "9"),
        ([w], [IndexedSlices(np.ones((1, 2), np.float32), np.array([-1]), (4, 2))], ValueError, "-1"),
        ([w], [IndexedSlices(np.ones((1, 2), np.float32), np.array([0.5]), (4, 2))], TypeError, "integer"),
        ([w], [IndexedSlices(np.ones((2, 2), np.float32), np.array([0]), (4, 2))], ValueError, "values"),
        ([w], [np.ones((4, 2), np.float32), np.ones((4, 2), np.float32)], ValueError, "one entry"),
    ]


@pytest.mark.parametrize("params,grads,exc,word", _bad_steps())
def test_bad_step_is_atomic(params, grads, exc, word):
    opt = Adamax(0.1)
    w_good = np.ones((4, 2), np.float32)
    opt.apply_gradients([(np.full((4, 2), 0.5, np.float32), w_good)])
    state_before = [x.copy() for x in opt.state.m + opt.state.u]
    snapshot = [p.copy() for p in params]
    with pytest.raises(exc, match=word):
        opt.apply(params, grads)
    assert opt.iterations == 1
    for a, b in zip(opt.state.m + opt.state.u, state_before, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(params, snapshot, strict=True):
        np.testing.assert_array_equal(a, b)


def test_schedule_returning_nan_is_refused_atomically():
    opt = Adamax(lambda: float("nan"))
    w = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="learning_rate"):
        opt.apply_gradients([(np.ones(3, np.float32), w)])
    assert opt.iterations == 0 and (w == 1).all()


def test_nan_gradient_propagates_like_keras_dense():
    opt = Adamax(0.1)
    w = np.ones(2, np.float32)
    opt.apply_gradients([(np.array([np.nan, 1.0], np.float32), w)])
    assert np.isnan(w[0]) and not np.isnan(w[1])
    assert np.isnan(opt.state.m[0][0]) and opt.state.u[0][0] == 0  # Eigen cwiseMax keeps b2*u


def test_array_api_strict_device_is_kept():
    xps = pytest.importorskip("array_api_strict")
    dev = xps.Device("device1")
    w = xps.asarray([1.0, 2.0], dtype=xps.float32, device=dev)
    out = Adamax(0.1).apply([w], [xps.asarray([0.5, -0.5], dtype=xps.float32, device=dev)])
    assert out[0].device == dev and out[0].dtype == xps.float32


def test_core_imports_no_array_library():
    code = ("import sys, adamax_spec, adamax_spec.reference.verdict; "
            "bad = [m for m in ('torch', 'jax', 'cupy', 'tensorflow', 'keras', 'dask') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_core_modules_name_no_library():
    import pathlib

    root = pathlib.Path(adamax_spec.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for lib in ("import torch", "import jax", "import cupy", "import numpy", "import dask"):
            assert lib not in text, f"{path.name} names a library: {lib}"
