"""Tests of adamax_spec.schedules: the Keras 2.9 learning-rate schedules in double precision.

Four kinds of evidence:

1. values verified by hand (the notes' list, each derived in a comment);
2. properties against the real ``tf_keras.optimizers.schedules`` (numerically identical to
   Keras 2.9 for these six classes), with tolerances derived from float32 rounding;
3. an independent high-precision check with mpmath;
4. round trips and every validation rule.

Tolerances.  tf_keras computes in float32 (the dtype of a Python-float
``initial_learning_rate``); we compute in float64.  The generated arguments are float32
numbers (``width=32``) and the steps are integers < 2**24 or float32 numbers, so Keras's casts
are exact and only its float32 *operations* round: each contributes at most ``u = 2**-24``
relative (``+``, ``*``, ``/``; about one ulp, <= 2u, for ``pow``/``log``/``cos``).  Each
``*_error_bound`` below propagates those roundings through the formula to first order (the
rounding of each intermediate times the condition number of what follows it) and the tests
allow ``SAFETY`` times that bound.  The same bounds with ``u = 2**-53`` bound our own double
result against mpmath.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adamax_spec import schedules
from adamax_spec.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
)

U32 = 2.0**-24  # float32 unit roundoff
U64 = 2.0**-53  # float64 unit roundoff
SAFETY = 4.0  # the first-order bounds below, times this, are the tolerances
# TF flushes float32 subnormals to zero on CPU (inputs and intermediates): each flushed value
# loses less than the smallest normal, 2**-126, and a formula here has at most four of them.
FLUSH32 = 4.0 * 2.0**-126
FEW = settings(max_examples=60, deadline=None)


# -- 1. verified values ---------------------------------------------------------------------------

def test_verified_exponential() -> None:
    # 0.1 * 0.5 ** (5/10) = 0.1 / sqrt(2) = 0.0707107
    assert ExponentialDecay(0.1, 10, 0.5)(5) == pytest.approx(0.1 / math.sqrt(2.0), rel=1e-15)
    assert round(ExponentialDecay(0.1, 10, 0.5)(5), 7) == 0.0707107
    # staircase: 0.1 * 0.5 ** floor(15/10) = 0.1 * 0.5 = 0.05
    assert ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == 0.05


def test_verified_piecewise_constant() -> None:
    schedule = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    # s=10 <= b[0]=10, so values[0]
    assert schedule(10) == 1.0
    # b[0]=10 < s=20 <= b[1]=20, so values[1]
    assert schedule(20) == 0.5
    # s=25 > b[-1]=20, so values[-1]
    assert schedule(25) == 0.1


def test_verified_polynomial_cycle() -> None:
    # d = 20 * ceil(25/20) = 40; (0.1 - 0.01) * (1 - 25/40) ** 1 + 0.01 = 0.09 * 0.375 + 0.01
    assert PolynomialDecay(0.1, 20, 0.01, cycle=True)(25) == pytest.approx(0.04375, rel=1e-15)


def test_verified_cosine_restarts() -> None:
    schedule = CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5)
    # F=1 = (1-2**1)/(1-2): cycle i=1 starts, f=0: 0.1 * 0.5**1 * 0.5 * (1 + cos 0) = 0.05
    assert schedule(10) == pytest.approx(0.05, rel=1e-15)
    # F=3 = (1-2**2)/(1-2): cycle i=2 starts, f=0: 0.1 * 0.5**2 = 0.025
    assert schedule(30) == pytest.approx(0.025, rel=1e-15)


def test_polynomial_cycle_edges() -> None:
    schedule = PolynomialDecay(0.1, 20, 0.01, cycle=True)
    # step 0: the multiplier is 1 (not ceil(0) = 0), so p = 0 and lr = lr0
    assert schedule(0) == 0.1
    # exact multiples: d = 20*k and p = 1, giving end_learning_rate (no restart there)
    assert schedule(20) == 0.01
    assert schedule(40) == 0.01
    # one step later a new, longer cycle: d = 20 * 3 = 60, (0.09) * (1 - 41/60) + 0.01
    assert schedule(41) == pytest.approx(0.09 * (19 / 60) + 0.01, rel=1e-15)
    # without cycle the step is clamped at decay_steps
    assert PolynomialDecay(0.1, 20, 0.01)(1000) == pytest.approx(0.01, rel=1e-15)


def test_cosine_restarts_arithmetic_branch_and_limits() -> None:
    # t_mul == 1: i = floor(s/d); every cycle lasts d steps and restarts at lr0 * m**i
    schedule = CosineDecayRestarts(1.0, 10, t_mul=1.0, m_mul=0.5, alpha=0.1)
    assert schedule(10) == pytest.approx(0.9 * 0.5 + 0.1, rel=1e-15)
    assert schedule(25) == pytest.approx(0.9 * 0.25 * 0.5 * (1 + math.cos(math.pi / 2)) + 0.1)
    # t_mul < 1: the cycles d, d t, d t**2, ... sum to d / (1 - t) = 20 steps
    shrinking = CosineDecayRestarts(1.0, 10, t_mul=0.5)
    assert shrinking(15) == pytest.approx(1.0, rel=1e-15)  # F = 1.5 = 1 + 0.5 starts cycle 2
    with pytest.raises(ValueError, match=r"step=20\b"):
        shrinking(20)


def test_cosine_decay_ends_at_alpha() -> None:
    # min(s, d) = d: 0.5 * (1 + cos(pi)) = 0, so lr = lr0 * alpha for every s >= d
    assert CosineDecay(0.2, 10, alpha=0.25)(10) == pytest.approx(0.05, rel=1e-15)
    assert CosineDecay(0.2, 10, alpha=0.25)(1e9) == pytest.approx(0.05, rel=1e-15)


def test_restart_index_is_exact_at_every_restart() -> None:
    # With d=1, t=2 cycle k starts at F = 2**k - 1, with lr = lr0 * m**k exactly.  (tf_keras's
    # float32 floor(log(1+F)/log(2)) is one short at some of these, e.g. k=13: see below.)
    schedule = CosineDecayRestarts(0.1, 1, t_mul=2.0, m_mul=0.5)
    for k in range(1, 50):
        assert schedule(2**k - 1) == pytest.approx(0.1 * 0.5**k, rel=1e-15), k


# -- 2. against tf_keras --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tfk() -> Any:
    """``tf_keras.optimizers.schedules``, imported with its warnings silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf_keras = pytest.importorskip("tf_keras")
        return tf_keras.optimizers.schedules


def keras_value(schedule: Any, step: float) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(schedule(step))


def f32(low: float, high: float) -> st.SearchStrategy[float]:
    """float32 numbers in about [low, high], as Python floats (so Keras's casts are exact).

    No subnormals: TF flushes float32 subnormals to zero on CPU.
    """
    return st.floats(
        float(np.float32(low)), float(np.float32(high)), width=32, allow_subnormal=False
    )


lr0s = st.one_of(st.just(0.0), f32(1e-6, 1.0))


def exponential_error_bound(lr: float, p: float, rate: float, u: float) -> float:
    """|lr0 r**p| error: p=s/d rounds (u, amplified by |d ln(r**p)/dp| p = |p ln r|), pow and
    the final product round (2u + u)."""
    log_factor = abs(p * math.log(rate)) if rate > 0 else 0.0
    return abs(lr) * u * (log_factor + 3.0)


def inverse_time_error_bound(lr: float, u: float) -> float:
    """lr0/(1 + r p): p and r p round (2u relative in r p, damped by r p/(1 + r p) <= 1), the
    sum and the quotient round (u + u): 4u relative, whatever the arguments."""
    return abs(lr) * 4.0 * u


def polynomial_error_bound(
    lr0: float, end: float, power: float, p: float, u: float
) -> float:
    """(lr0 - end) q**power + end with q = 1 - p: p rounds (u p absolute), q rounds (u q), so
    q is off by (p + q) u / q relative, amplified by ``power`` in q**power; pow, the difference,
    the product and the sum add (2u + u + u) |(lr0 - end) q**power| + u (lr0 + end)."""
    q = 1.0 - p
    scale = abs(lr0 - end)
    if q <= 0.0:
        return u * (abs(lr0) + abs(end)) * 2.0
    b = q**power
    return scale * b * (power * (p + q) / q + 4.0) * u + u * (abs(lr0) + abs(end)) * 2.0


def cosine_error_bound(lr0: float, u: float) -> float:
    """lr0((1 - a) c + a), c = (1 + cos(pi x))/2, x = min(s, d)/d <= 1.  Absolute, in units of
    lr0, since c is near 0 at the end (relative error is meaningless there): x rounds (u),
    float32 pi is off by 0.5u and pi x rounds (u), so the angle is off by <= pi 2.5u ~ 8u,
    moving c by <= 4u (|dc/dangle| <= 1/2); cos (~1 ulp), 1 + cos, 1 - a, the product, + a and
    * lr0 add about 6u more: ~10u lr0."""
    return abs(lr0) * 10.0 * u


def restarts_error_bound(
    lr0: float, d: float, t: float, m: float, alpha: float, step: float, u: float
) -> float:
    """Absolute error of lr0((1 - a) m**i (1 + cos(pi f))/2 + a), to first order.

    With F = s/d (rounded: u F) and i exact (the tests stay away from restarts):
    t == 1: f = F - i, exact, so f is off by u F.
    t != 1: S = (1 - t**i)/(1 - t): t**i rounds (2u t**i), 1 - t**i (u |1 - t**i|), 1 - t
    (u, amplified by 1/|1 - t|) and the quotient (u S); f = (F - S)/t**i, whose difference and
    quotient round again (u |F - S| and 3u f).  Then f moves the angle by pi df, the cosine term
    by 1/2 of that; m**i (2u), the other products and sums add about 6u of lr0 max(m**i, 1).
    """
    big_f = step / d
    i, f, _ = mp_restarts(lr0, d, t, m, alpha, step)
    if t == 1.0:
        df = u * big_f
    else:
        tk = t**i
        s = (tk - 1.0) / (t - 1.0)
        ds = u * (2.0 * tk + abs(1.0 - tk) + s) / abs(1.0 - t) + u * s
        df = (u * big_f + ds + u * abs(big_f - s)) / tk + 3.0 * u * f
    mi = m**i
    angle = math.pi * (df + 1.5 * u * f)
    return abs(lr0) * ((1.0 - alpha) * mi * (0.5 * angle + 2.0 * u) + 6.0 * u * max(mi, 1.0))


def mp_restarts(
    lr0: float, d: float, t: float, m: float, alpha: float, step: float
) -> tuple[int, float, mpmath.mpf]:
    """(i, f, lr) with i found by exact comparison against the restart points, at 60 digits."""
    with mpmath.workdps(60):
        big_f = mpmath.mpf(step) / mpmath.mpf(d)
        mt = mpmath.mpf(t)
        if t == 1.0:
            i = int(mpmath.floor(big_f))
            f = big_f - i
        else:

            def start(k: int) -> mpmath.mpf:
                return (mt**k - 1) / (mt - 1)

            i = 0
            while start(i + 1) <= big_f:
                i += 1
            f = (big_f - start(i)) / mt**i
        lr = lr0 * ((1 - mpmath.mpf(alpha)) * mpmath.mpf(m) ** i * (1 + mpmath.cos(mpmath.pi * f))
                    / 2 + alpha)
        return i, float(f), +lr


def mp_exponential(lr0: float, d: float, rate: float, staircase: bool, step: float) -> Any:
    with mpmath.workdps(60):
        p = mpmath.mpf(step) / mpmath.mpf(d)
        if staircase:
            p = mpmath.floor(p)
        return +(mpmath.mpf(lr0) * mpmath.mpf(rate) ** p)


def assert_within(
    ours: float, theirs: float, bound: float, what: str, slack: float = 0.0
) -> None:
    """|ours - theirs| <= SAFETY * bound + slack (slack: FLUSH32 against float32 Keras)."""
    err = abs(ours - theirs)
    assert err <= SAFETY * bound + slack, (
        f"{what}: ours={ours!r} theirs={theirs!r}, error {err:.3g} = "
        f"{err / bound if bound else math.inf:.3g} x the first-order bound {bound:.3g}"
    )


@FEW
@given(
    lr0=lr0s,
    d=st.integers(1, 1000),
    rate=f32(0.05, 2.0),
    staircase=st.booleans(),
    data=st.data(),
)
def test_exponential_matches_tf_keras(
    tfk: Any, lr0: float, d: int, rate: float, staircase: bool, data: st.DataObject
) -> None:
    # at most 20 decay periods: |p ln r| <= 60, so lr stays far from float32 underflow
    step = data.draw(st.one_of(st.integers(0, 20 * d), f32(0.0, 20.0 * d)), label="step")
    if staircase:
        step = int(step)  # integer s and d < 2**24: float32 floor(s/d) is exact
    ours = ExponentialDecay(lr0, d, rate, staircase)(step)
    theirs = keras_value(tfk.ExponentialDecay(lr0, d, rate, staircase), step)
    p = math.floor(step / d) if staircase else step / d
    bound = exponential_error_bound(ours, p, rate, U32)
    assert_within(ours, theirs, bound, "ExponentialDecay", slack=FLUSH32)


@FEW
@given(
    lr0=lr0s,
    d=st.integers(1, 1000),
    rate=f32(0.0, 10.0),
    staircase=st.booleans(),
    data=st.data(),
)
def test_inverse_time_matches_tf_keras(
    tfk: Any, lr0: float, d: int, rate: float, staircase: bool, data: st.DataObject
) -> None:
    step = data.draw(st.one_of(st.integers(0, 100 * d), f32(0.0, 100.0 * d)), label="step")
    if staircase:
        step = int(step)
    ours = InverseTimeDecay(lr0, d, rate, staircase)(step)
    theirs = keras_value(tfk.InverseTimeDecay(lr0, d, rate, staircase), step)
    bound = inverse_time_error_bound(ours, U32)
    assert_within(ours, theirs, bound, "InverseTimeDecay", slack=FLUSH32)


@FEW
@given(
    lr0=lr0s,
    d=st.integers(1, 1000),
    end=st.one_of(st.just(0.0001), f32(0.0, 0.1)),
    power=st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]), f32(0.0, 5.0)),
    cycle=st.booleans(),
    data=st.data(),
)
def test_polynomial_matches_tf_keras(
    tfk: Any, lr0: float, d: int, end: float, power: float, cycle: bool, data: st.DataObject
) -> None:
    # with cycle the step is an integer: float32 ceil(s/d) and d * ceil(s/d) are then exact
    step = data.draw(
        st.integers(0, 10 * d) if cycle else st.one_of(st.integers(0, 2 * d), f32(0, 2.0 * d)),
        label="step",
    )
    ours = PolynomialDecay(lr0, d, end, power, cycle)(step)
    theirs = keras_value(tfk.PolynomialDecay(lr0, d, end, power, cycle), step)
    if cycle:
        p = step / (d * (1 if step == 0 else math.ceil(step / d)))
    else:
        p = min(step, d) / d
    bound = polynomial_error_bound(lr0, end, power, p, U32)
    assert_within(ours, theirs, bound, "PolynomialDecay", slack=FLUSH32)


@FEW
@given(
    lr0=lr0s,
    d=st.one_of(st.integers(1, 1000), f32(0.5, 1000.0)),
    alpha=st.one_of(st.just(0.0), f32(0.0, 1.0)),
    data=st.data(),
)
def test_cosine_matches_tf_keras(
    tfk: Any, lr0: float, d: float, alpha: float, data: st.DataObject
) -> None:
    step = data.draw(st.one_of(st.integers(0, int(2 * d) + 1), f32(0.0, 2.0 * d)), label="step")
    ours = CosineDecay(lr0, d, alpha)(step)
    theirs = keras_value(tfk.CosineDecay(lr0, d, alpha), step)
    assert_within(ours, theirs, cosine_error_bound(lr0, U32), "CosineDecay", slack=FLUSH32)


t_muls = st.one_of(
    st.sampled_from([1.0, 2.0, 1.5, 0.5]), f32(1.25, 3.0), f32(0.3, 0.8)
)


RestartCase = tuple[float, float, float, float, float, float]  # lr0, d, t_mul, m_mul, alpha, step


@st.composite
def restart_cases(draw: st.DrawFn) -> RestartCase:
    lr0 = draw(lr0s)
    d = draw(st.one_of(st.integers(1, 200), f32(0.5, 200.0)))
    t = draw(t_muls)
    m = draw(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), f32(0.0, 1.5)))
    alpha = draw(st.one_of(st.just(0.0), f32(0.0, 1.0)))
    # t >= 1: up to 30 first-cycle lengths; t < 1: up to 90% of the finite total length
    top = 30.0 * d if t >= 1.0 else 0.9 * d / (1.0 - t)
    step = draw(st.one_of(st.integers(0, int(top)), f32(0.0, top)))
    return lr0, d, t, m, alpha, step


@settings(max_examples=80, deadline=None)
@given(case=restart_cases())
def test_cosine_restarts_matches_tf_keras(
    tfk: Any, case: RestartCase
) -> None:
    lr0, d, t, m, alpha, step = case
    i, f, _ = mp_restarts(lr0, d, t, m, alpha, step)
    # Away from restarts only: there lr jumps from ~alpha lr0 to lr0 m**i, and float32 picks
    # either side within a few ulps of F (at exact restarts too; see the next test).
    assume(step == 0 or 1e-4 < f < 1.0 - 1e-4)
    ours = CosineDecayRestarts(lr0, d, t, m, alpha)(step)
    theirs = keras_value(tfk.CosineDecayRestarts(lr0, d, t, m, alpha), step)
    bound = restarts_error_bound(lr0, d, t, m, alpha, step, U32)
    assert_within(ours, theirs, bound, f"CosineDecayRestarts (i={i}, f={f})", slack=FLUSH32)


def test_tf_keras_restart_boundaries(tfk: Any) -> None:
    # At F = 2**k - 1 (d=1, t=2) we start cycle k: lr0 m**k.  tf_keras computes
    # i = floor(log(1 + F)/log(2)) in float32, which rounds below k for some k (13 and 15 in
    # tf_keras 2.21), and then returns the end of cycle k-1, alpha lr0 = 0.  Either is a
    # float32 reading of the same formula; ours is the exact one.
    keras = tfk.CosineDecayRestarts(0.1, 1, t_mul=2.0, m_mul=0.5)
    ours = CosineDecayRestarts(0.1, 1, t_mul=2.0, m_mul=0.5)
    early = []
    for k in range(1, 20):
        theirs = keras_value(keras, 2**k - 1)
        if theirs == pytest.approx(0.0, abs=1e-12):
            early.append(k)
        else:
            assert theirs == pytest.approx(ours(2**k - 1), rel=8 * U32), k
    assert len(early) < 19


@settings(max_examples=30, deadline=None)  # tf.case is slow: ~2 ms a call
@given(
    bounds=st.lists(st.integers(0, 1000), min_size=1, max_size=5, unique=True).map(sorted),
    data=st.data(),
)
def test_piecewise_constant_matches_tf_keras(
    tfk: Any, bounds: list[int], data: st.DataObject
) -> None:
    values = data.draw(
        st.lists(f32(0.0, 1.0), min_size=len(bounds) + 1, max_size=len(bounds) + 1),
        label="values",
    )
    ours = PiecewiseConstantDecay(bounds, values)
    theirs = tfk.PiecewiseConstantDecay(bounds, values)
    steps = [0, 1001, *bounds, *(b + 1 for b in bounds), *(max(b - 1, 0) for b in bounds)]
    steps += data.draw(st.lists(st.integers(0, 1100), max_size=5), label="steps")
    for step in steps:
        # exact: values are float32 numbers, comparisons of integers are exact in both
        assert ours(step) == keras_value(theirs, step), step
    # float boundaries and float steps: Keras casts boundaries to the step's dtype (float32)
    float_bounds = [b + 0.5 for b in bounds]
    ours = PiecewiseConstantDecay(float_bounds, values)
    theirs = tfk.PiecewiseConstantDecay(float_bounds, values)
    for float_step in [*float_bounds, *(b + 0.25 for b in float_bounds), 0.0]:
        assert ours(float_step) == keras_value(theirs, float_step), float_step


CONFIG_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("ExponentialDecay", (0.1, 10, 0.5), {"staircase": True, "name": "exp"}),
    ("ExponentialDecay", (1e-3, 2.5, 0.96), {}),
    ("InverseTimeDecay", (0.1, 10, 0.5), {"staircase": True}),
    ("PolynomialDecay", (0.1, 20), {"end_learning_rate": 0.01, "power": 0.5, "cycle": True}),
    ("PolynomialDecay", (0.1, 20), {}),
    ("PiecewiseConstantDecay", ([10, 20], [1.0, 0.5, 0.1]), {"name": "pw"}),
    ("CosineDecay", (0.1, 100), {"alpha": 0.1}),
    ("CosineDecay", (0.1, 100), {}),
    ("CosineDecayRestarts", (0.1, 10), {"t_mul": 1.5, "m_mul": 0.9, "alpha": 0.01}),
    ("CosineDecayRestarts", (0.1, 10), {}),
]


@pytest.mark.parametrize(("class_name", "args", "kwargs"), CONFIG_CASES)
def test_get_config_matches_tf_keras(
    tfk: Any, class_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ours = getattr(schedules, class_name)(*args, **kwargs).get_config()
    theirs = getattr(tfk, class_name)(*args, **kwargs).get_config()
    if class_name == "CosineDecay":
        # tf_keras (like Keras >= 2.13) adds warmup; Keras 2.9 has exactly our four keys
        assert set(theirs) - set(ours) == {"warmup_target", "warmup_steps"}
        assert (theirs["warmup_target"], theirs["warmup_steps"]) == (None, 0)
        theirs = {k: theirs[k] for k in ours}
    assert list(ours) == list(theirs)
    assert ours == theirs


@FEW
@given(
    lr0=f32(0.0, 1.0),
    d=st.one_of(st.integers(1, 10**6), f32(1e-3, 1e6)),
    rate=f32(0.0, 10.0),
    staircase=st.booleans(),
)
def test_exponential_get_config_matches_tf_keras(
    tfk: Any, lr0: float, d: float, rate: float, staircase: bool
) -> None:
    ours = ExponentialDecay(lr0, d, rate, staircase).get_config()
    assert ours == tfk.ExponentialDecay(lr0, d, rate, staircase).get_config()


# -- 3. against mpmath ----------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(
    lr0=st.floats(1e-6, 1.0),
    d=st.one_of(st.integers(1, 10**4), st.floats(1e-2, 1e4)),
    rate=st.floats(1e-3, 10.0),
    staircase=st.booleans(),
    periods=st.floats(0.0, 50.0),  # |p ln r| <= 50 ln 1000 < 350: no double underflow
    integer_step=st.booleans(),
)
def test_exponential_matches_mpmath(
    lr0: float, d: float, rate: float, staircase: bool, periods: float, integer_step: bool
) -> None:
    step: float = round(periods * d) if integer_step else periods * d
    if staircase:
        # double s/d may round onto or across an integer within ~1e-16 s/d of one: stay clear
        # of those (exact multiples, frac == 0, are kept and must give the exact power)
        with mpmath.workdps(60):
            q = mpmath.mpf(step) / mpmath.mpf(d)
            frac = float(q - mpmath.floor(q))
        margin = 1e-12 * max(step / d, 1.0)
        assume(frac == 0.0 or margin < frac < 1.0 - margin)
    p = math.floor(step / d) if staircase else step / d
    ours = ExponentialDecay(lr0, d, rate, staircase)(step)
    exact = float(mp_exponential(lr0, d, rate, staircase, step))
    assert_within(ours, exact, exponential_error_bound(exact, p, rate, U64), "ExponentialDecay")


@settings(max_examples=100, deadline=None)
@given(case=restart_cases())
def test_cosine_restarts_matches_mpmath(case: RestartCase) -> None:
    lr0, d, t, m, alpha, step = case
    i, f, exact = mp_restarts(lr0, d, t, m, alpha, step)
    # restarts that double rounding could move (exact restarts, f == 0, must be found)
    assume(f == 0.0 or 1e-9 < f < 1.0 - 1e-9)
    ours = CosineDecayRestarts(lr0, d, t, m, alpha)(step)
    bound = restarts_error_bound(lr0, d, t, m, alpha, step, U64)
    assert_within(ours, float(exact), bound, f"CosineDecayRestarts (i={i}, f={f})")


# -- 4. round trips, serialization ---------------------------------------------------------------

def all_schedules() -> Iterator[LearningRateSchedule]:
    yield ExponentialDecay(0.1, 10, 0.5, staircase=True, name="exp")
    yield PiecewiseConstantDecay([10, 20.5], [1.0, 0.5, 0.1])
    yield PolynomialDecay(0.1, 20, 0.01, power=0.5, cycle=True)
    yield InverseTimeDecay(0.1, 7, 0.3)
    yield CosineDecay(0.1, 100, alpha=0.1, name="cos")
    yield CosineDecayRestarts(0.1, 10, t_mul=1.5, m_mul=0.9, alpha=0.01)
    yield CosineDecayRestarts(0.1, 10, t_mul=1.0, m_mul=0.5)


SCHEDULES = list(all_schedules())
IDS = [type(s).__name__ for s in SCHEDULES]
STEPS = [0, 1, 5, 10, 10.5, 20, 21, 37, 100, 1000]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_from_config_round_trip(schedule: LearningRateSchedule) -> None:
    config = schedule.get_config()
    before = copy.deepcopy(config)
    rebuilt = type(schedule).from_config(config)
    assert config == before  # not mutated
    assert rebuilt.get_config() == before
    assert [rebuilt(s) for s in STEPS] == [schedule(s) for s in STEPS]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_serialize_round_trip(schedule: LearningRateSchedule) -> None:
    serialized = schedules.serialize(schedule)
    assert serialized == {"class_name": type(schedule).__name__, "config": schedule.get_config()}
    before = copy.deepcopy(serialized)
    for form in (serialized, json.loads(json.dumps(serialized))):
        rebuilt = schedules.deserialize(form)
        assert type(rebuilt) is type(schedule)
        assert [rebuilt(s) for s in STEPS] == [schedule(s) for s in STEPS]
    assert serialized == before
    assert schedules.get(serialized).get_config() == schedule.get_config()
    assert schedules.get(schedule) is schedule
    assert "(" in repr(schedule) and type(schedule).__name__ in repr(schedule)


def test_deserialize_accepts_tf_keras_form(tfk: Any) -> None:
    keras_form = tfk.serialize(tfk.PolynomialDecay(0.1, 20, 0.01, cycle=True))
    assert set(keras_form) == {"module", "class_name", "config", "registered_name"}
    rebuilt = schedules.deserialize(keras_form)
    assert rebuilt(25) == PolynomialDecay(0.1, 20, 0.01, cycle=True)(25)


def test_get_config_is_a_copy() -> None:
    schedule = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    config = schedule.get_config()
    config["boundaries"].append(30)
    config["values"][0] = 9.0
    assert schedule.get_config() == {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1],
                                     "name": None}
    assert schedule(0) == 1.0


# The Keras 2.9 constructors: argument names, in order, with their defaults.
KERAS_29_SIGNATURES: dict[str, list[tuple[str, Any]]] = {
    "ExponentialDecay": [("initial_learning_rate", inspect.Parameter.empty),
                         ("decay_steps", inspect.Parameter.empty),
                         ("decay_rate", inspect.Parameter.empty), ("staircase", False), ("name", None)],
    "PiecewiseConstantDecay": [("boundaries", inspect.Parameter.empty),
                               ("values", inspect.Parameter.empty), ("name", None)],
    "PolynomialDecay": [("initial_learning_rate", inspect.Parameter.empty),
                        ("decay_steps", inspect.Parameter.empty), ("end_learning_rate", 0.0001),
                        ("power", 1.0), ("cycle", False), ("name", None)],
    "InverseTimeDecay": [("initial_learning_rate", inspect.Parameter.empty),
                         ("decay_steps", inspect.Parameter.empty),
                         ("decay_rate", inspect.Parameter.empty), ("staircase", False), ("name", None)],
    "CosineDecay": [("initial_learning_rate", inspect.Parameter.empty),
                    ("decay_steps", inspect.Parameter.empty), ("alpha", 0.0), ("name", None)],
    "CosineDecayRestarts": [("initial_learning_rate", inspect.Parameter.empty),
                            ("first_decay_steps", inspect.Parameter.empty), ("t_mul", 2.0),
                            ("m_mul", 1.0), ("alpha", 0.0), ("name", None)],
}


def parameters(cls: type) -> list[tuple[str, Any]]:
    return [(p.name, p.default) for p in inspect.signature(cls).parameters.values()]


@pytest.mark.parametrize("class_name", sorted(KERAS_29_SIGNATURES))
def test_signature_is_keras_29(class_name: str) -> None:
    cls = getattr(schedules, class_name)
    assert parameters(cls) == KERAS_29_SIGNATURES[class_name]
    kinds = {p.kind for p in inspect.signature(cls).parameters.values()}
    assert kinds == {inspect.Parameter.POSITIONAL_OR_KEYWORD}


@pytest.mark.parametrize("class_name", sorted(KERAS_29_SIGNATURES))
def test_signature_matches_tf_keras(tfk: Any, class_name: str) -> None:
    theirs = parameters(getattr(tfk, class_name))
    if class_name == "CosineDecay":  # warmup came in Keras 2.13
        assert theirs[4:] == [("warmup_target", None), ("warmup_steps", 0)]
        theirs = theirs[:4]
    assert parameters(getattr(schedules, class_name)) == theirs


@pytest.mark.parametrize("class_name", sorted(KERAS_29_SIGNATURES))
def test_every_argument_round_trips_through_get_config(class_name: str) -> None:
    # every argument given a value other than its default (and other than the others'): the
    # config holds each, under its name, in the constructor's order, and rebuilds the schedule
    cls = getattr(schedules, class_name)
    names = [name for name, _ in KERAS_29_SIGNATURES[class_name]]
    given: dict[str, Any] = {**BASE[class_name], "name": f"{class_name}-name"}
    others = {"decay_rate": 0.75, "staircase": True, "cycle": True, "end_learning_rate": 0.002,
              "power": 1.5, "alpha": 0.125, "t_mul": 3, "m_mul": 0.5}
    given.update({k: v for k, v in others.items() if k in names})
    assert sorted(given) == sorted(names)
    config = cls(**given).get_config()
    assert list(config) == names
    assert all(config[k] == v and type(config[k]) is type(v) for k, v in given.items()), config
    rebuilt = cls.from_config(config)
    assert list(rebuilt.get_config().items()) == list(config.items())
    assert [rebuilt(s) for s in STEPS] == [cls(**given)(s) for s in STEPS]
    assert repr(rebuilt) == f"{class_name}({', '.join(f'{k}={given[k]!r}' for k in names)})"


def test_sequence_arguments_are_kept_as_lists() -> None:
    boundaries, values = (10, 20), (1.0, 0.5, 0.1)
    schedule = PiecewiseConstantDecay(boundaries, values)
    assert schedule.get_config() == {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1], "name": None}
    given = [10, 20]
    schedule = PiecewiseConstantDecay(given, [1.0, 0.5, 0.1])
    given.append(30)  # the caller's list is not the schedule's
    assert schedule.get_config()["boundaries"] == [10, 20]
    assert schedule(25) == 0.1


@pytest.mark.parametrize("class_name", ["Foo", "exponentialdecay", "LinearCosineDecay"])
def test_deserialize_unknown(class_name: str) -> None:
    with pytest.raises(ValueError, match="Unknown decay") as info:
        schedules.deserialize({"class_name": class_name, "config": {}})
    assert repr(class_name) in str(info.value)
    for known in ("ExponentialDecay", "PiecewiseConstantDecay", "CosineDecayRestarts"):
        assert known in str(info.value)


def test_deserialize_custom_objects() -> None:
    class Halving(LearningRateSchedule):
        def __init__(self, lr0: float) -> None:
            self.lr0 = lr0

        def __call__(self, step: float) -> float:
            return self.lr0 * 0.5**step

        def get_config(self) -> dict[str, Any]:
            return {"lr0": self.lr0}

    serialized = schedules.serialize(Halving(1.0))
    assert serialized == {"class_name": "Halving", "config": {"lr0": 1.0}}
    assert schedules.deserialize(serialized, custom_objects={"Halving": Halving})(2) == 0.25


@pytest.mark.parametrize(
    ("function", "argument", "fragment"),
    [
        (schedules.serialize, {"class_name": "CosineDecay"}, "{'class_name': 'CosineDecay'}"),
        (schedules.get, "exponential", "'exponential'"),
        (schedules.get, 0.1, "0.1"),
        (schedules.deserialize, "ExponentialDecay", "'ExponentialDecay'"),
        (schedules.deserialize, {"class_name": "CosineDecay", "config": [0.1, 10]}, "[0.1, 10]"),
    ],
)
def test_bad_identifiers(function: Callable[[Any], Any], argument: Any, fragment: str) -> None:
    with pytest.raises(TypeError) as info:
        function(argument)
    assert fragment in str(info.value)


def test_deserialize_missing_keys() -> None:
    with pytest.raises(ValueError, match="class_name"):
        schedules.deserialize({"config": {}})


def test_module_imports_only_the_standard_library() -> None:
    path = Path(schedules.__file__)
    code = (
        "import importlib.util, sys\n"
        "before = set(sys.modules)\n"
        f"spec = importlib.util.spec_from_file_location('standalone_schedules', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "new = {m.partition('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'standalone_schedules'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert importlib.util.find_spec("adamax_spec.schedules") is not None


def test_steps_accept_numbers_and_0d_arrays() -> None:
    schedule = ExponentialDecay(0.1, 10, 0.5)
    expected = schedule(5)
    steps: tuple[Any, ...] = (5, 5.0, np.int64(5), np.float32(5), np.array(5), np.array(5.0))
    for step in steps:
        assert schedule(step) == expected


# -- 5. validation --------------------------------------------------------------------------------

BASE: dict[str, dict[str, Any]] = {
    "ExponentialDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    "InverseTimeDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    "PolynomialDecay": {"initial_learning_rate": 0.1, "decay_steps": 10},
    "CosineDecay": {"initial_learning_rate": 0.1, "decay_steps": 10},
    "CosineDecayRestarts": {"initial_learning_rate": 0.1, "first_decay_steps": 10},
    "PiecewiseConstantDecay": {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]},
}

NAN, INF = math.nan, math.inf


def _rules() -> Iterator[tuple[str, str, Any, type[Exception]]]:
    value: Any
    numeric: list[tuple[Any, type[Exception]]] = [
        ("x", TypeError), (None, TypeError), (True, TypeError), ([0.1], TypeError),
        (1 + 0j, TypeError),
    ]
    for cls in ("ExponentialDecay", "InverseTimeDecay", "PolynomialDecay", "CosineDecay",
                "CosineDecayRestarts"):
        for value, exc in [(-0.1, ValueError), (NAN, ValueError), (INF, ValueError),
                           (10**400, ValueError), *numeric]:
            yield cls, "initial_learning_rate", value, exc
        steps = "first_decay_steps" if cls == "CosineDecayRestarts" else "decay_steps"
        for value, exc in [(0, ValueError), (-1, ValueError), (0.0, ValueError),
                           (NAN, ValueError), (INF, ValueError), *numeric]:
            yield cls, steps, value, exc
        yield cls, "name", 3, TypeError
        yield cls, "name", b"name", TypeError
    for cls in ("ExponentialDecay", "InverseTimeDecay"):
        for value, exc in [(-0.5, ValueError), (INF, ValueError), (NAN, ValueError), *numeric]:
            yield cls, "decay_rate", value, exc
        for value in (1, 0, "yes", None, np.bool_(True)):
            yield cls, "staircase", value, TypeError
    for value, exc in [(-1.0, ValueError), (INF, ValueError), (NAN, ValueError), *numeric]:
        yield "PolynomialDecay", "end_learning_rate", value, exc
        yield "PolynomialDecay", "power", value, exc
    for value in (1, "True", None):
        yield "PolynomialDecay", "cycle", value, TypeError
    for cls in ("CosineDecay", "CosineDecayRestarts"):
        for value, exc in [(-0.1, ValueError), (1.5, ValueError), (NAN, ValueError), *numeric]:
            yield cls, "alpha", value, exc
    for value, exc in [(0.0, ValueError), (-2.0, ValueError), (INF, ValueError),
                       (NAN, ValueError), *numeric]:
        yield "CosineDecayRestarts", "t_mul", value, exc
    for value, exc in [(-0.5, ValueError), (INF, ValueError), (NAN, ValueError), *numeric]:
        yield "CosineDecayRestarts", "m_mul", value, exc
    for value, exc in [([20, 10], ValueError), ([10, 10], ValueError), ([10, NAN], ValueError),
                       ([-INF, 10], ValueError), ([10, "20"], TypeError), ([True, 20], TypeError),
                       ("ab", TypeError), (5, TypeError), (None, TypeError)]:
        yield "PiecewiseConstantDecay", "boundaries", value, exc
    for value, exc in [([1.0, -0.5, 0.1], ValueError), ([1.0, NAN, 0.1], ValueError),
                       ([1.0, INF, 0.1], ValueError), ([1.0, "0.5", 0.1], TypeError),
                       ([1.0, None, 0.1], TypeError), ("abc", TypeError), (3, TypeError)]:
        yield "PiecewiseConstantDecay", "values", value, exc
    yield "PiecewiseConstantDecay", "name", 3, TypeError


RULES = list(_rules())


@pytest.mark.parametrize(
    ("class_name", "argument", "value", "exception"),
    RULES,
    ids=[f"{c}-{a}={v!r:.20}" for c, a, v, _ in RULES],
)
def test_validation(class_name: str, argument: str, value: Any, exception: type[Exception]) -> None:
    kwargs = {**BASE[class_name], argument: value}
    with pytest.raises(exception) as info:
        getattr(schedules, class_name)(**kwargs)
    message = str(info.value)
    assert argument in message
    assert repr(value) in message


@pytest.mark.parametrize("class_name", sorted(BASE))
def test_every_argument_is_checked(class_name: str) -> None:
    # whatever its kind, an argument that is no number, bool, str or sequence is refused,
    # naming the argument and the value
    for argument in inspect.signature(getattr(schedules, class_name)).parameters:
        bad = object()
        with pytest.raises(TypeError) as info:
            getattr(schedules, class_name)(**{**BASE[class_name], argument: bad})
        assert f"{argument}={bad!r}" in str(info.value), argument


@pytest.mark.parametrize("argument", ["boundaries", "values"])
def test_piecewise_int_too_large_for_a_double(argument: str) -> None:
    kwargs = {**BASE["PiecewiseConstantDecay"]}
    kwargs[argument] = [10**400, *kwargs[argument][1:]]
    with pytest.raises(ValueError, match=rf"{argument} must hold finite numbers") as info:
        PiecewiseConstantDecay(**kwargs)
    assert f"{argument}[0]=" in str(info.value)


def test_piecewise_checks_types_then_lengths_then_contents() -> None:
    # the type of either argument first, then Keras's length rule, then each number
    with pytest.raises(TypeError, match="values must be a list or tuple"):
        PiecewiseConstantDecay([20, 10], "abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="The length of boundaries"):
        PiecewiseConstantDecay([20, 10], [1.0, -1.0])
    with pytest.raises(ValueError, match="boundaries must be strictly increasing"):
        PiecewiseConstantDecay([20, 10], [1.0, -1.0, 0.5], name=3)  # type: ignore[arg-type]


def test_piecewise_length_rule_keeps_keras_message() -> None:
    with pytest.raises(ValueError) as info:
        PiecewiseConstantDecay([1, 2], [1.0])
    assert str(info.value) == (
        "The length of boundaries should be 1 less than the length of values. "
        "Received: boundaries=[1, 2] of length 2, and values=[1.0] of length 1."
    )
    with pytest.raises(ValueError, match=r"boundaries=\[\]"):
        PiecewiseConstantDecay([], [1.0])


def test_keras_rejects_warmup_arguments_of_later_versions() -> None:
    with pytest.raises(TypeError, match="warmup_target"):
        CosineDecay(0.1, 10, warmup_target=0.2)  # type: ignore[call-arg]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
@pytest.mark.parametrize(
    ("step", "exception"),
    [(-1, ValueError), (-0.5, ValueError), (NAN, ValueError), (INF, ValueError),
     (10**400, ValueError), (np.array(-1.0), ValueError), ("3", TypeError), (None, TypeError),
     (True, TypeError), (1 + 0j, TypeError), (np.array(True), TypeError), ([3], TypeError)],
    ids=lambda v: getattr(v, "__name__", None) or f"{v!r:.20}",
)
def test_bad_steps(schedule: LearningRateSchedule, step: Any, exception: type[Exception]) -> None:
    with pytest.raises(exception) as info:
        schedule(step)
    assert "step" in str(info.value)
    assert repr(step) in str(info.value)


def test_abstract_base() -> None:
    with pytest.raises(TypeError):
        LearningRateSchedule()  # type: ignore[abstract]
