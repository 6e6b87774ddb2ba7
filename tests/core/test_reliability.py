"""Bad input is refused with a clear error and changes nothing; NaN/Inf, very long runs and
half precision behave as documented in docs/reliability.md (whose every row this file checks)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from array_backends import Backend, bits, installed, snapshot
from hypothesis import given
from hypothesis import strategies as st

from adamax_spec import Adamax, IndexedSlices, get_profile

ROOT = Path(__file__).resolve().parents[2]
HAS = {b: bool(installed(b)) for b in ("torch", "array_api_strict")}
NAN, INF = math.nan, math.inf
BACKENDS = installed("numpy", "torch", "array_api_strict")


# -- helpers ---------------------------------------------------------------------------
def _started(B):
    """An optimizer with one step applied (non-zero state) and its two parameters."""
    w = B.arr([[1.0, -2.0], [0.5, 3.0], [0.0, 1.0], [-1.0, 2.0]])
    v = B.arr([0.25, -0.5, 4.0])
    opt = Adamax(0.1)
    params = opt.apply([w, v], [B.arr([[0.5, -1.0]] * 4), B.arr([1.0, 2.0, -3.0])])
    return opt, params


# -- 1. constructor ------------------------------------------------------------------------
# (id, kwargs, exception, words the message must contain: the argument and the value)
BAD_CONSTRUCTOR = [
    ("learning_rate=nan", dict(learning_rate=NAN), ValueError, ("learning_rate", "nan")),
    ("learning_rate=inf", dict(learning_rate=INF), ValueError, ("learning_rate", "inf")),
    ("learning_rate=-1", dict(learning_rate=-1.0), ValueError, ("learning_rate", "-1.0")),
    ("learning_rate=str", dict(learning_rate="a"), TypeError, ("learning_rate", "'a'")),
    ("learning_rate=bool", dict(learning_rate=True), TypeError, ("learning_rate", "True")),
    ("learning_rate=complex", dict(learning_rate=1j), TypeError, ("learning_rate", "1j")),
    ("learning_rate=list", dict(learning_rate=[0.1]), TypeError, ("learning_rate", "[0.1]")),
    ("learning_rate=1d-array", dict(learning_rate=np.array([0.1, 0.2])), ValueError, ("learning_rate", "(2,)")),
    ("learning_rate=int-array", dict(learning_rate=np.array(1)), TypeError, ("learning_rate", "int64")),
    ("learning_rate=nan-array", dict(learning_rate=np.array(NAN)), ValueError, ("learning_rate", "nan")),
    ("lr=-1", dict(lr=-1.0), ValueError, ("lr", "-1.0")),
    ("beta_1=nan", dict(beta_1=NAN), ValueError, ("beta_1", "nan")),
    ("beta_1=inf", dict(beta_1=INF), ValueError, ("beta_1", "inf")),
    ("beta_1=-0.1", dict(beta_1=-0.1), ValueError, ("beta_1", "-0.1")),
    ("beta_1=1", dict(beta_1=1.0), ValueError, ("beta_1", "1.0")),
    ("beta_1=str", dict(beta_1="0.9"), TypeError, ("beta_1", "'0.9'")),
    ("beta_1=complex-array", dict(beta_1=np.array(0.9j)), TypeError, ("beta_1", "0.9j")),
    ("beta_2=nan", dict(beta_2=NAN), ValueError, ("beta_2", "nan")),
    ("beta_2=1", dict(beta_2=1.0), ValueError, ("beta_2", "1.0")),
    ("beta_2=-inf", dict(beta_2=-INF), ValueError, ("beta_2", "-inf")),
    ("beta_2=inf", dict(beta_2=INF), ValueError, ("beta_2", "inf")),
    ("beta_2=bool", dict(beta_2=True), TypeError, ("beta_2", "True")),
    ("epsilon=0", dict(epsilon=0.0), ValueError, ("epsilon", "0.0")),
    ("epsilon=-1e-7", dict(epsilon=-1e-7), ValueError, ("epsilon", "-1e-07")),
    ("epsilon=nan", dict(epsilon=NAN), ValueError, ("epsilon", "nan")),
    ("epsilon=inf", dict(epsilon=INF), ValueError, ("epsilon", "inf")),
    ("epsilon=str", dict(epsilon="x"), TypeError, ("epsilon", "'x'")),
    ("decay=-0.1", dict(decay=-0.1), ValueError, ("decay", "-0.1")),
    ("decay=nan", dict(decay=NAN), ValueError, ("decay", "nan")),
    ("decay=None", dict(decay=None), TypeError, ("decay", "None")),
    ("clipnorm=0", dict(clipnorm=0.0), ValueError, ("clipnorm", "0.0")),
    ("clipnorm=-1", dict(clipnorm=-1.0), ValueError, ("clipnorm", "-1.0")),
    ("clipnorm=inf", dict(clipnorm=INF), ValueError, ("clipnorm", "inf")),
    ("clipvalue=nan", dict(clipvalue=NAN), ValueError, ("clipvalue", "nan")),
    ("clipvalue=str", dict(clipvalue="x"), TypeError, ("clipvalue", "'x'")),
    ("clipvalue=bool", dict(clipvalue=True), TypeError, ("clipvalue", "True")),
    ("global_clipnorm=-1", dict(global_clipnorm=-1.0), ValueError, ("global_clipnorm", "-1.0")),
    ("clipnorm+global_clipnorm", dict(clipnorm=1.0, global_clipnorm=2.0), ValueError,
     ("clipnorm", "global_clipnorm", "1.0", "2.0")),
    ("keras3-two-clips", dict(profile="keras3", clipnorm=1.0, clipvalue=2.0), ValueError, ("clipnorm", "clipvalue")),
    ("unknown-kwarg", dict(foo=1), TypeError, ("foo",)),
    ("name=int", dict(name=3), TypeError, ("name", "3")),
    ("profile=unknown", dict(profile="adam"), ValueError, ("profile", "'adam'")),
    ("profile=int", dict(profile=3), ValueError, ("profile", "3")),
]


@pytest.mark.parametrize("kwargs,exc,words", [c[1:] for c in BAD_CONSTRUCTOR], ids=[c[0] for c in BAD_CONSTRUCTOR])
def test_bad_constructor(kwargs, exc, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the lr alias warns first
        with pytest.raises(exc) as info:
            Adamax(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_none_takes_the_profile_default():
    """``None`` for learning_rate/beta_1/beta_2/epsilon is documented: the profile's default."""
    for name in ("keras", "torch"):
        p = get_profile(name)
        h = Adamax(None, None, None, None, profile=name).hyper
        want = (p.learning_rate, p.beta_1, p.beta_2, p.epsilon_value)
        assert (h.learning_rate, h.beta_1, h.beta_2, h.epsilon) == want


# -- 1. steps: params, grads, state ----------------------------------------------------------
def _sparse(B, values, indices, shape=(4, 2), idx_dtype="int64"):
    return IndexedSlices(B.arr(values), B.arr(indices, idx_dtype), shape)


# (id, backends it applies to, builder(B, w, v) -> (params, grads), exception, message words)
BAD_STEPS = [
    ("grad-shape", None, lambda B, w, v: ([w, v], [B.arr([[1.0, 2.0, 3.0]] * 4), None]), ValueError,
     ("grads[0]", "(4, 3)", "(4, 2)")),
    ("grad-dtype", ("numpy", "torch"), lambda B, w, v: ([w, v], [B.arr([[1.0, 2.0]] * 4, "float64"), None]),
     TypeError, ("grads[0]", "float64")),
    ("grad-not-array", None, lambda B, w, v: ([w, v], [1.0, None]), TypeError, ("grads[0]", "float")),
    ("grad-other-library", ("torch",), lambda B, w, v: ([w, v], [np.ones((4, 2), np.float32), None]), TypeError,
     ("grads[0]", "ndarray")),
    ("grad-other-device", ("array_api_strict",),
     lambda B, w, v: ([w, v], [B.arr([[1.0, 2.0]] * 4, device=B.other), None]), ValueError,
     ("grads[0]", "device1")),
    ("grads-count", None, lambda B, w, v: ([w, v], [None]), ValueError, ("1 grads", "2 params")),
    ("all-grads-none", None, lambda B, w, v: ([w, v], [None, None]), ValueError, ("No gradients",)),
    ("params-count-vs-state", None, lambda B, w, v: ([w], [B.arr([[1.0, 2.0]] * 4)]), ValueError,
     ("2 parameters", "1 params")),
    ("param-int", ("numpy", "torch"),
     lambda B, w, v: ([w, B.arr([1, 2, 3], "int32")], [None, B.arr([1, 2, 3], "int32")]),
     TypeError, ("params[1]", "int32")),
    ("param-bool", None, lambda B, w, v: ([w, B.arr([True, False, True], "bool")], [None, B.arr([1.0, 2.0, 3.0])]),
     TypeError, ("params[1]", "bool")),
    ("param-list", ("numpy",), lambda B, w, v: ([w, [1.0, 2.0, 3.0]], [None, B.arr([1.0, 2.0, 3.0])]), TypeError,
     ("params[1]", "list")),
    ("param-other-library", ("numpy",),
     lambda B, w, v: ([w, Backend("torch").arr([1.0, 2.0, 3.0])], [None, Backend("torch").arr([1.0, 2.0, 3.0])]),
     TypeError, ("params[1]", "library")),
    ("param-other-device", ("array_api_strict",),
     lambda B, w, v: ([w, B.arr([1.0, 2.0, 3.0], device=B.other)], [None, B.arr([1.0, 2.0, 3.0], device=B.other)]),
     ValueError, ("state.m[1]", "device1")),
    ("params-single-array", ("numpy",), lambda B, w, v: (w, [B.arr([1.0, 2.0])] * 4), TypeError,
     ("params", "single")),
    ("sparse-index-out-of-range", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [4]), None]), ValueError,
     ("grads[0].indices", "4", "[0, 4)")),
    ("sparse-index-negative", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [-1]), None]), ValueError,
     ("grads[0].indices", "-1")),
    ("sparse-index-float", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [0.5], idx_dtype="float32"), None]),
     TypeError, ("grads[0].indices", "float32")),
    ("sparse-index-bool", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [True], idx_dtype="bool"), None]),
     TypeError, ("grads[0].indices", "bool")),
    ("sparse-index-int8", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [1], idx_dtype="int8"), None]),
     TypeError, ("grads[0].indices", "int32 or int64", "int8")),
    ("sparse-index-uint8", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [1], idx_dtype="uint8"), None]),
     TypeError, ("grads[0].indices", "int32 or int64", "uint8")),
    ("sparse-index-2d", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [[0]]), None]), ValueError,
     ("grads[0].indices", "(1, 1)")),
    ("sparse-values-shape", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0, 1.0]], [0]), None]), ValueError,
     ("grads[0].values", "(1, 3)", "(1, 2)")),
    ("sparse-values-rows", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]] * 2, [0]), None]), ValueError,
     ("grads[0].values", "(2, 2)", "(1, 2)")),
    ("sparse-values-dtype", ("numpy", "torch"),
     lambda B, w, v: ([w, v], [IndexedSlices(B.arr([[1.0, 1.0]], "float64"), B.arr([0], "int64"), (4, 2)), None]),
     TypeError, ("grads[0].values", "float64")),
    ("sparse-dense-shape", None, lambda B, w, v: ([w, v], [_sparse(B, [[1.0, 1.0]], [0], shape=(5, 2)), None]),
     ValueError, ("dense_shape", "(5, 2)", "(4, 2)")),
    ("sparse-index-other-device", ("array_api_strict",),
     lambda B, w, v: ([w, v], [IndexedSlices(B.arr([[1.0, 1.0]]), B.arr([0], "int64", device=B.other), (4, 2)), None]),
     ValueError, ("grads[0].indices", "device1")),
]


def _steps(backends):
    out = []
    for case in BAD_STEPS:
        for b in BACKENDS:
            if case[0] == "param-other-library" and not HAS["torch"]:
                continue
            if case[1] is None or b in case[1]:
                out.append(pytest.param(b, *case[2:], id=f"{case[0]}-{b}"))
    return out


@pytest.mark.parametrize("backend,build,exc,words", _steps(BACKENDS))
def test_bad_step_changes_nothing(backend, build, exc, words):
    B = Backend(backend)
    opt, (w, v) = _started(B)
    params, grads = build(B, w, v)
    seq = params if isinstance(params, list) else [params]
    before = snapshot(opt, seq)
    with pytest.raises(exc) as info:
        opt.apply(params, grads)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
    assert snapshot(opt, seq) == before
    if B.writeable and isinstance(params, list) and len(params) == len(grads):
        with pytest.raises(exc):
            opt.apply_gradients(list(zip(grads, params, strict=True)))
        assert snapshot(opt, seq) == before


def test_sparse_grad_for_0d_param_is_refused():
    w = np.float32(1.0) * np.ones((), np.float32)
    opt = Adamax(0.1)
    with pytest.raises(ValueError, match=r"grads\[0\] is sparse, but params\[0\] is 0-d"):
        opt.apply([w], [IndexedSlices(np.ones((1,), np.float32), np.array([0]), ())])
    assert opt.state is None and w == 1


def test_global_clipnorm_with_two_grad_dtypes_is_refused():
    opt = Adamax(0.1, global_clipnorm=1.0)
    params = [np.ones(2, np.float32), np.ones(2, np.float64)]
    with pytest.raises(TypeError, match=r"global_clipnorm needs gradients of one dtype"):
        opt.apply(params, [np.ones(2, np.float32), np.ones(2, np.float64)])
    assert opt.state is None and all((p == 1).all() for p in params)


BAD_SCHEDULES = [
    ("nan", lambda: NAN, ValueError, ("learning_rate", "nan", "step 1")),
    ("negative", lambda: -0.5, ValueError, ("learning_rate", "-0.5", "step 1")),
    ("inf", lambda: INF, ValueError, ("learning_rate", "inf")),
    ("str", lambda: "0.1", TypeError, ("learning_rate", "'0.1'")),
    ("none", lambda: None, TypeError, ("learning_rate", "None")),
    ("1d-array", lambda: np.array([0.1, 0.2]), ValueError, ("learning_rate", "(2,)")),
    ("int-array", lambda: np.array(1), TypeError, ("learning_rate", "int64")),
    ("nan-array", lambda: np.float32(NAN), ValueError, ("learning_rate", "nan")),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value,exc,words", [c[1:] for c in BAD_SCHEDULES], ids=[c[0] for c in BAD_SCHEDULES])
def test_bad_schedule_value_changes_nothing(backend, value, exc, words):
    B = Backend(backend)
    calls = []

    def lr():  # good on the first step, bad on the second
        calls.append(1)
        return 0.1 if len(calls) == 1 else value()

    opt = Adamax(lr)
    w = opt.apply([B.arr([1.0, 2.0])], [B.arr([0.5, 0.5])])
    before = snapshot(opt, w)
    with pytest.raises(exc) as info:
        opt.apply(w, [B.arr([0.5, 0.5])])
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
    assert snapshot(opt, w) == before
    # bad from the first step on: no state is created, the parameter is not written
    fresh, w0 = Adamax(value), B.arr([1.0, 2.0])
    before = snapshot(fresh, [w0])
    with pytest.raises(exc):
        fresh.apply([w0], [B.arr([0.5, 0.5])])
    if B.writeable:
        with pytest.raises(exc):
            fresh.apply_gradients([(B.arr([0.5, 0.5]), w0)])
    assert fresh.state is None and snapshot(fresh, [w0]) == before


BAD_STATE_DICTS = [
    ("not-a-dict", lambda m, u: 5, TypeError, ("state", "int")),
    ("iterations-negative", lambda m, u: dict(iterations=-1, m=m, u=u), ValueError, ("iterations", "-1")),
    ("iterations-float", lambda m, u: dict(iterations=1.5, m=m, u=u), ValueError, ("iterations", "1.5")),
    ("iterations-bool", lambda m, u: dict(iterations=True, m=m, u=u), ValueError, ("iterations", "True")),
    ("iterations-missing", lambda m, u: dict(m=m, u=u), ValueError, ("iterations", "None")),
    ("m-single-array", lambda m, u: dict(iterations=1, m=m[0], u=u), TypeError, ("state['m']", "ndarray")),
    ("m-entry-not-array", lambda m, u: dict(iterations=1, m=[1.0, m[1]], u=u), TypeError, ("state['m'][0]", "float")),
    ("m-u-count", lambda m, u: dict(iterations=1, m=m, u=u[:1]), ValueError, ("2 m arrays", "1 u arrays")),
    ("m-u-shape", lambda m, u: dict(iterations=1, m=m, u=[u[1], u[0]]), ValueError, ("state['u'][0]", "shape")),
    ("m-int-dtype", lambda m, u: dict(iterations=1, m=[np.ones((4, 2), np.int32), m[1]], u=u), TypeError,
     ("state['m'][0]", "int32")),
    ("other-profile", lambda m, u: dict(iterations=1, m=m, u=u, config={"profile": "torch"}), ValueError,
     ("'torch'", "'keras'")),
]


@pytest.mark.parametrize("make,exc,words", [c[1:] for c in BAD_STATE_DICTS], ids=[c[0] for c in BAD_STATE_DICTS])
def test_bad_state_dict_changes_nothing(make, exc, words):
    opt, params = _started(Backend("numpy"))
    before = snapshot(opt, params)
    m, u = [a.copy() for a in opt.state.m], [a.copy() for a in opt.state.u]
    with pytest.raises(exc) as info:
        opt.load_state_dict(make(m, u))
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"
    assert snapshot(opt, params) == before


def test_state_of_wrong_shape_is_refused_at_the_next_step():
    """load_state_dict cannot know the params; the first step checks state against them."""
    opt, params = _started(Backend("numpy"))
    opt.load_state_dict({"iterations": 7, "m": [np.zeros((2, 4), np.float32), np.zeros(3, np.float32)],
                         "u": [np.zeros((2, 4), np.float32), np.zeros(3, np.float32)]})
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=r"state.m\[0\] has shape \(2, 4\), but params\[0\] has shape \(4, 2\)"):
        opt.apply_gradients([(np.ones((4, 2), np.float32), params[0]), (None, params[1])])
    assert snapshot(opt, params) == before


def test_bad_pairs_for_apply_gradients():
    opt = Adamax(0.1)
    w = np.ones(2, np.float32)
    with pytest.raises(TypeError, match=r"grads_and_vars\[0\] must be a \(grad, var\) pair"):
        opt.apply_gradients([(w,)])
    with pytest.raises(TypeError, match="grads_and_vars must be an iterable"):
        opt.apply_gradients(5)
    with pytest.raises(TypeError, match=r"variable 0 \(tuple\) cannot be written in place"):
        opt.apply_gradients([(w, (1.0, 2.0))])
    assert opt.state is None and (w == 1).all()


# -- empty, 0-d, zero-size ------------------------------------------------------------------
def test_empty_parameter_lists_are_a_no_op():
    """Keras 2.9: apply_gradients([]) does nothing and does not count as a step."""
    opt, params = _started(Backend("numpy"))
    before = snapshot(opt, params)
    assert opt.apply([], []) == []
    opt.apply_gradients([])
    assert snapshot(opt, params) == before
    with pytest.raises(ValueError, match="0 params"):
        opt.apply([], [np.ones(2, np.float32)])


def _one_step_exact(w, g, lr, b1, b2, eps):
    """Keras rule, one step from zero state, in exact rationals (hypers rounded to float32 first)."""
    f32 = lambda x: Fraction(float(np.float32(x)))  # noqa: E731
    lr, b1, b2, eps = f32(lr), f32(b1), f32(b2), Fraction(float(np.float32(eps)))
    m = (1 - b1) * Fraction(g)
    u = abs(Fraction(g))
    return Fraction(w) - lr / (1 - b1) * m / (u + eps)


def test_zero_dim_param_steps_like_any_other():
    w, g = np.asarray(np.float32(1.5)), np.asarray(np.float32(-0.75))
    opt = Adamax(0.1)
    (out,) = opt.apply([w], [g])
    assert out.shape == () and out.dtype == np.float32 and opt.iterations == 1
    exact = _one_step_exact(1.5, -0.75, 0.1, 0.9, 0.999, 1e-7)
    np.testing.assert_array_max_ulp(out, np.float32(float(exact)), maxulp=2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_size_params_and_empty_sparse_rows(backend):
    B = Backend(backend)
    e, w = B.zeros((0, 3)), B.arr([[1.0, 2.0]] * 3)
    opt = Adamax(0.1)
    out = opt.apply([e, w], [B.zeros((0, 3)), IndexedSlices(B.zeros((0, 2)), B.zeros((0,), "int64"), (3, 2))])
    assert tuple(out[0].shape) == (0, 3) and opt.iterations == 1  # a step with no rows still counts (Keras)
    assert bits(out[1]) == bits(w) and bits(opt.state.m[1]) == bits(B.arr([[0.0, 0.0]] * 3))


# -- 2. numerical faults ----------------------------------------------------------------------
def _reference(profile, w, g, m, u, t, lr, b1, b2, eps, sparse=False):
    """Independent float64 model of one step (NumPy, IEEE NaN rules written out per profile).

    keras dense: Eigen's cwiseMax(b2*u, |g|) keeps b2*u when |g| is NaN -> np.fmax ignores NaN;
    everything else uses a NaN-propagating max (tf.maximum on the sparse path, torch.maximum,
    jnp.maximum) -> np.maximum.
    """
    p = get_profile(profile)
    w, g, m, u = (np.asarray(x, np.float64) for x in (w, g, m, u))
    b1_bias = b1
    if p.hyper_rounding in ("float32", "keras3"):   # keras3: 1 - b1 and b2 from the doubles
        lr, b1_bias = float(np.float32(lr)), float(np.float32(b1))
        if p.hyper_rounding == "float32":
            b1, b2 = b1_bias, float(np.float32(b2))
    m = b1 * m + (1 - b1) * g
    mag = np.abs(g) + (eps if p.epsilon == "inside" else 0.0)
    keep = p.nan_in_max == "keep_decayed" and not sparse
    u = (np.fmax if keep else np.maximum)(b2 * u, mag)
    denom = u + eps if p.epsilon == "outside" else u
    return w - lr / (1 - b1_bias**t) * m / denom, m, u


FAULTS = [np.nan, np.inf, -np.inf]


@pytest.mark.parametrize("profile", ["keras", "keras3", "torch", "optax"])
@pytest.mark.parametrize("fault", FAULTS, ids=["nan", "inf", "-inf"])
def test_nan_inf_gradients_follow_the_profile(profile, fault):
    """Two steps: a faulty gradient on element 0 at step 2, finite elsewhere; NaN pattern exact,
    finite values within 2 float32 ULP of the float64 model."""
    g1 = np.array([0.5, -1.0, 2.0], np.float32)
    g2 = np.array([fault, 0.25, -0.5], np.float32)
    w0 = np.array([1.0, 2.0, -3.0], np.float32)
    opt = Adamax(0.05, profile=profile)
    with np.errstate(all="ignore"):
        w1 = opt.apply([w0], [g1])
        w2 = opt.apply(w1, [g2])
        p = get_profile(profile)
        rw, rm, ru = _reference(profile, w0, g1, 0.0, 0.0, 1, 0.05, 0.9, 0.999, p.epsilon_value)
        rw, rm, ru = _reference(profile, np.float32(rw), g2, np.float32(rm), np.float32(ru), 2, 0.05, 0.9, 0.999,
                                p.epsilon_value)
    for got, want in ((w2[0], rw), (opt.state.m[0], rm), (opt.state.u[0], ru)):
        want = want.astype(np.float32)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_max_ulp(np.nan_to_num(got), np.nan_to_num(want), maxulp=2)
    assert np.isnan(w2[0][0])  # never a number in w from a NaN/Inf gradient
    if profile == "keras" and np.isnan(fault):  # Eigen cwiseMax: u ignores the NaN, m does not
        assert np.isfinite(opt.state.u[0][0]) and np.isnan(opt.state.m[0][0])


def test_keras_sparse_nan_propagates_into_u():
    """Keras 2.9's sparse path uses tf.maximum, which propagates NaN (unlike the dense kernel)."""
    w = np.ones((3, 2), np.float32)
    opt = Adamax(0.1)
    with np.errstate(all="ignore"):
        opt.apply_gradients([(IndexedSlices(np.array([[np.nan, 1.0]], np.float32), np.array([1]), (3, 2)), w)])
    assert np.isnan(opt.state.u[0][1, 0]) and np.isnan(w[1, 0]) and (w[[0, 2]] == 1).all()


@pytest.mark.skipif(not HAS["torch"], reason="torch not installed")
@pytest.mark.parametrize("fault", FAULTS, ids=["nan", "inf", "-inf"])
def test_torch_profile_faults_match_torch_optim(fault):
    import torch

    g1 = torch.tensor([0.5, -1.0, 2.0])
    g2 = torch.tensor([fault, 0.25, -0.5])
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, -3.0]))
    ref = torch.optim.Adamax([p], lr=0.05, foreach=False)
    ours = torch.tensor([1.0, 2.0, -3.0])
    opt = Adamax(0.05, profile="torch")
    for g in (g1, g2):
        p.grad = g.clone()
        ref.step()
        opt.apply_gradients([(g, ours)])
    st_ = ref.state[p]
    for got, want in ((ours, p.detach()), (opt.state.m[0], st_["exp_avg"]), (opt.state.u[0], st_["exp_inf"])):
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        np.testing.assert_array_max_ulp(np.nan_to_num(got.numpy()), np.nan_to_num(want.numpy()), maxulp=2)


def test_keras_profile_faults_match_tf_keras():
    tf_keras = pytest.importorskip("tf_keras")
    tf = pytest.importorskip("tensorflow")
    g1 = np.array([0.5, -1.0, 2.0, 1.0], np.float32)
    g2 = np.array([np.nan, np.inf, -np.inf, 0.5], np.float32)
    var, ref = tf.Variable([1.0, 2.0, -3.0, 4.0]), tf_keras.optimizers.legacy.Adamax(0.05)
    ours, opt = np.array([1.0, 2.0, -3.0, 4.0], np.float32), Adamax(0.05)
    with np.errstate(all="ignore"):
        for g in (g1, g2):
            ref.apply_gradients([(tf.constant(g), var)])
            opt.apply_gradients([(g, ours)])
    want_u = ref.get_slot(var, "v").numpy()
    for got, want in ((ours, var.numpy()), (opt.state.m[0], ref.get_slot(var, "m").numpy()), (opt.state.u[0], want_u)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_max_ulp(np.nan_to_num(got), np.nan_to_num(want), maxulp=2)


def _exact_step(w, g, m, u, t, lr, b1, b2, eps, profile):
    """One step at step number t in exact rationals (b1**t exact); hypers as the profile rounds them."""
    p = get_profile(profile)
    if p.hyper_rounding == "float32":
        lr, b1, b2 = (float(np.float32(x)) for x in (lr, b1, b2))
    F = Fraction
    lr, b1, b2, eps = F(lr), F(b1), F(b2), F(float(np.float32(eps)) if p.hyper_rounding == "float32" else eps)
    w, g, m, u = F(float(w)), F(float(g)), F(float(m)), F(float(u))
    m = b1 * m + (1 - b1) * g
    if p.epsilon == "inside":
        u = max(b2 * u, abs(g) + eps)
        denom = u
    else:
        u = max(b2 * u, abs(g))
        denom = u + eps
    # b1**t for t ~ 1e6 is astronomically small; bound it instead of computing it exactly
    b1t = math.exp(t * math.log(float(b1))) if b1 > 0 else 0.0
    return float(w - lr / (1 - F(b1t)) * m / denom)


@pytest.mark.parametrize("profile", ["keras", "torch"])
@pytest.mark.parametrize("beta_1", [0.9, 0.999999], ids=["b1=0.9(underflow)", "b1=0.999999(b1^t~0.37)"])
def test_million_steps_stay_finite_and_correct(profile, beta_1):
    """Step 10**6 + 1, set through load_state_dict: b1**t underflows (0.9) or is moderate (0.999999)."""
    t0 = 10**6
    w = np.array([1.0, -2.0, 0.5], np.float32)
    m = np.array([0.01, -0.02, 0.0], np.float32)
    u = np.array([0.5, 0.25, 0.0], np.float32)
    g = np.array([0.1, 0.3, 0.0], np.float32)
    opt = Adamax(0.01, beta_1=beta_1, profile=profile)
    opt.load_state_dict({"iterations": t0, "m": [m.copy()], "u": [u.copy()]})
    (out,) = opt.apply([w], [g])
    assert np.isfinite(out).all() and opt.iterations == t0 + 1
    p = get_profile(profile)
    want = [_exact_step(*args, t0 + 1, 0.01, beta_1, 0.999, p.epsilon_value, profile)
            for args in zip(w, g, m, u, strict=True)]
    # float32 arithmetic on a handful of operations: a few ULP of w (b1**t itself is 1-ULP accurate)
    np.testing.assert_array_max_ulp(out, np.array(want, np.float32), maxulp=3)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_huge_step_counts_stay_finite(dtype):
    """Keras casts t to the parameter dtype: in float16 t >= 65520 becomes inf and b1**inf = 0 (finite)."""
    for t0 in (65519, 10**6, 10**12):
        w = np.ones(2, dtype)
        opt = Adamax(0.01)
        opt.load_state_dict({"iterations": t0, "m": [np.full(2, 0.1, dtype)], "u": [np.full(2, 0.5, dtype)]})
        (out,) = opt.apply([w], [np.full(2, 0.2, dtype)])
        assert np.isfinite(out).all() and out.dtype == np.dtype(dtype) and (out < 1).all()


def _first_step(w, g, lr, b1, eps):
    """Keras rule, first step from zero state, exact: w - lr/(1-b1) * (1-b1)*g / (|g| + eps)."""
    w, g = Fraction(float(w)), Fraction(float(g))
    return float(w - lr / (1 - b1) * ((1 - b1) * g) / (abs(g) + eps))


def test_float16_state_dtype_and_hyper_rounding():
    """keras: lr, b1, b2 are rounded to float32, then to float16; eps goes straight to float16."""
    w, g = np.array([1.0, -0.5], np.float16), np.array([0.25, 0.0], np.float16)
    opt = Adamax(0.1)
    (out,) = opt.apply([w], [g])
    assert out.dtype == np.float16 and all(a.dtype == np.float16 for a in (*opt.state.m, *opt.state.u))
    h = lambda x: Fraction(float(np.float16(np.float32(x))))  # noqa: E731
    lr, b1, eps = h(0.1), h(0.9), Fraction(float(np.float16(1e-7)))
    assert eps > 0  # 1e-7 rounds to a float16 subnormal: a zero gradient gives a zero update, not NaN
    want = [_first_step(x, gg, lr, b1, eps) for x, gg in zip(w, g, strict=True)]
    np.testing.assert_array_max_ulp(out, np.array(want, np.float16), maxulp=2)
    assert out[1] == w[1]


@pytest.mark.skipif(not HAS["torch"], reason="torch not installed")
def test_float16_zero_gradient_torch_profile_gives_nan_like_torch():
    """torch/optax: eps=1e-8 rounds to 0 in float16, so a zero gradient gives 0/0 (optax#1768).
    Profile-true: torch.optim.Adamax does the same; we do not hide it."""
    import torch

    p = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
    ref = torch.optim.Adamax([p], foreach=False)
    p.grad = torch.zeros(2, dtype=torch.float16)
    ref.step()
    ours = torch.ones(2, dtype=torch.float16)
    Adamax(profile="torch").apply_gradients([(torch.zeros(2, dtype=torch.float16), ours)])
    assert torch.isnan(p.detach()).all() and torch.isnan(ours).all()


@pytest.mark.skipif(not HAS["torch"], reason="torch not installed")
def test_bfloat16_state_dtype_and_rounding():
    import torch

    w, g = torch.tensor([1.0, -0.5], dtype=torch.bfloat16), torch.tensor([0.25, -1.0], dtype=torch.bfloat16)
    opt = Adamax(0.1)
    (out,) = opt.apply([w], [g])
    assert out.dtype == torch.bfloat16 and opt.state.m[0].dtype == opt.state.u[0].dtype == torch.bfloat16
    bf = lambda x: Fraction(float(torch.tensor(float(np.float32(x)), dtype=torch.bfloat16)))  # noqa: E731
    lr, b1, eps = bf(0.1), bf(0.9), bf(1e-7)
    want = [_first_step(x, gg, lr, b1, eps) for x, gg in zip(w.float(), g.float(), strict=True)]
    got = out.float().numpy()
    # bfloat16 has an 8-bit significand: within 2 bfloat16 ULP (2**-7 relative) of the exact step
    np.testing.assert_allclose(got, want, rtol=2 * 2.0**-7)


# -- 4. fuzz: random bad input at the public API ------------------------------------------------
BAD_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.booleans(), st.none(),
    st.text(max_size=3), st.complex_numbers(max_magnitude=2), st.lists(st.floats(0, 1), max_size=2),
)
ARGS = ["learning_rate", "beta_1", "beta_2", "epsilon", "decay", "clipnorm", "clipvalue", "global_clipnorm",
        "name", "profile", "bogus"]


@given(st.dictionaries(st.sampled_from(ARGS), BAD_VALUES, max_size=3))
def test_fuzz_constructor_raises_only_documented_errors(kwargs):
    try:
        opt = Adamax(**kwargs)
    except (ValueError, TypeError):
        return
    h = opt.hyper  # accepted: every hyperparameter is in its documented range
    assert 0 <= h.beta_1 < 1 and 0 <= h.beta_2 < 1 and math.isfinite(h.epsilon) and h.epsilon > 0
    assert math.isfinite(float(h.learning_rate)) and float(h.learning_rate) >= 0
    assert all(c is None or (math.isfinite(c) and c > 0) for c in (h.clipnorm, h.clipvalue, h.global_clipnorm))


SHAPES = st.sampled_from([(), (0,), (3,), (4, 2), (2, 4), (4, 3)])
DTYPES = st.sampled_from(["float16", "float32", "float64", "int32", "bool"])


@st.composite
def grads_for(draw):
    kind = draw(st.sampled_from(["dense", "sparse", "none", "scalar"]))
    if kind == "none":
        return None
    if kind == "scalar":
        return draw(BAD_VALUES)
    if kind == "dense":
        arr = np.zeros(draw(SHAPES), dtype=draw(DTYPES))
        if arr.dtype.kind == "f":
            arr[...] = draw(st.floats(width=16, allow_nan=True))
        return arr
    n = draw(st.integers(0, 3))
    idx = np.array(draw(st.lists(st.integers(-2, 6), min_size=n, max_size=n)), dtype=draw(st.sampled_from(
        ["int64", "int32", "float32"])))
    vals = np.ones((n, *draw(st.sampled_from([(2,), (3,), ()]))), dtype=draw(DTYPES))
    return IndexedSlices(vals, idx, draw(st.sampled_from([(4, 2), (3,), (4, 3)])))


@given(st.lists(grads_for(), min_size=0, max_size=3), st.booleans())
def test_fuzz_steps_raise_only_documented_errors_and_change_nothing(grads, in_place):
    opt, params = _started(Backend("numpy"))
    params = [params[0], params[1]]
    before = snapshot(opt, params)
    with np.errstate(all="ignore"):
        try:
            if in_place:
                opt.apply_gradients(list(zip(grads, params, strict=False)) if len(grads) == 2 else
                                    [(g, params[0]) for g in grads])
            else:
                opt.apply(params, grads)
        except (ValueError, TypeError):
            assert snapshot(opt, params) == before
            return
    assert opt.iterations == before[0] + (1 if grads else 0)


@given(st.dictionaries(st.sampled_from(["iterations", "m", "u", "config"]),
                       st.one_of(BAD_VALUES, st.just([np.ones((4, 2), np.float32)]),
                                 st.just([np.ones((4, 2), np.int8), np.ones(3, np.float32)]))))
def test_fuzz_load_state_dict(state):
    """Refused: a documented error, nothing changed.  Accepted: the step count is the one given,
    and the next step either counts or is refused (state that does not fit) changing nothing."""
    opt, params = _started(Backend("numpy"))
    before = snapshot(opt, params)
    try:
        opt.load_state_dict(state)
    except (ValueError, TypeError):
        assert snapshot(opt, params) == before
        return
    assert opt.iterations == state["iterations"]
    loaded = snapshot(opt, params)
    try:
        opt.apply(params, [np.full((4, 2), 0.5, np.float32), None])
    except (ValueError, TypeError):
        assert snapshot(opt, params) == loaded
        return
    assert opt.iterations == state["iterations"] + 1


# -- 5. the reliability table: every row names a test that exists -------------------------------
def test_every_row_of_the_reliability_table_names_an_existing_test():
    text = (ROOT / "docs" / "reliability.md").read_text()
    ids = re.findall(r"`(tests/(?:\w+/)?test_\w+\.py::[^`]+)`", text)
    assert len(ids) >= 40, "the table lists too few tests"
    files = sorted({i.split("::")[0] for i in ids})
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *files],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    collected = set(out.stdout.split())
    functions = {c.split("[")[0] for c in collected}
    missing = [i for i in ids if i not in collected and i not in functions]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}\n{out.stderr[-2000:]}"


@pytest.mark.parametrize("shape, exc", [((2.5, 3), TypeError), ((2, "a"), TypeError), (None, TypeError),
                                        ((True, 3), TypeError), ((-1, 3), ValueError)])
def test_bad_sparse_dense_shape_names_it(shape, exc):
    with pytest.raises(exc, match="dense_shape") as info:
        IndexedSlices(np.ones((1, 3), np.float32), np.array([0]), shape)
    assert repr(shape) in str(info.value)
