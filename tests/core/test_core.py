"""adamax_spec on every installed backend, checked against the independent reference."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from adamax_spec import Adamax, IndexedSlices
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.engine import run_property
from adamax_spec.conformance.properties import PROPERTIES

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


def test_core_imports_no_array_library():
    """Importing every module of the core loads no array library, NumPy included; the reference
    (which computes with NumPy) loads no other.  Imports inside functions are checked by
    tests/architecture/test_imports.py::test_core_names_no_array_library."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import adamax_spec
        LIBS = ("numpy", "torch", "jax", "cupy", "tensorflow", "keras", "dask")
        for m in pkgutil.iter_modules(adamax_spec.__path__):
            if m.name != "reference":
                importlib.import_module(f"adamax_spec.{m.name}")
        core = [m for m in LIBS if m in sys.modules]
        import adamax_spec.reference.verdict
        reference = [m for m in LIBS[1:] if m in sys.modules]
        print("core:", core, "reference:", reference)
        sys.exit(1 if core or reference else 0)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
