"""Failures a user can act on (issue #20), at the engine: minimal cases, exact reproducers, scales.

The CLI side (a reproducer run in a fresh interpreter, ``--reproducer``, one root cause reported
once) is in ``test_cli.py``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pytest

from adamax_spec.conformance import reproducer as R
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.case import Case, SparseGrad, Trajectory
from adamax_spec.conformance.engine import run_property
from adamax_spec.conformance.minimize import minimize
from adamax_spec.conformance.properties import by_id
from adamax_spec.conformance.property import Finding
from adamax_spec.reference.comparisons import Comparison
from adamax_spec.reference.formats import fmt, round_to


class LastRowWins(OursTarget):
    """A sparse bug: of the entries of a sparse gradient that name one row, the last wins (SP-1
    requires their sum)."""

    def run(self, case: Case) -> Trajectory:
        grads = []
        for step in case.grads:
            out = []
            for g in step:
                if isinstance(g, SparseGrad) and g.indices.size:
                    _, last = np.unique(g.indices[::-1], return_index=True)
                    keep = np.sort(g.indices.size - 1 - last)
                    g = SparseGrad(g.indices[keep], g.values[keep], g.dense_shape)
                out.append(g)
            grads.append(out)
        return super().run(dataclasses.replace(case, grads=grads))


def drawn_of(script: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example a reproducer script replays (its ``replay`` call intercepted)."""
    seen: dict[str, Any] = {}

    def capture(target: Any, prop: str, drawn: Any, **kw: Any) -> int:
        seen["drawn"] = drawn
        return 0

    monkeypatch.setattr(R, "replay", capture)
    with pytest.raises(SystemExit):
        exec(compile(script, "reproducer.py", "exec"), {})
    return seen["drawn"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sparse_failure_is_minimized(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before (hypothesis's shrunk case, no minimization budget) and after: the minimized case has
    no step after the first failing one (rule 1), one parameter of one element (rule 4: the failing
    index alone, which fails on its own for a bug confined to a row; SP-1 draws tables of rank 1 to
    3, so that is shape (1,), (1, 1) or (1, 1, 1)), and two entries in its sparse
    gradient (each dropped in turn: a duplicate needs two)."""
    prop = by_id("SP-1")
    target = LastRowWins("numpy", "keras")
    before = run_property(dataclasses.replace(prop, minimize=0), target, "keras", examples=25, seed=seed)
    after = run_property(prop, target, "keras", examples=25, seed=seed)
    assert before.status == after.status == "fail"
    old, new = drawn_of(before.reproducer, monkeypatch), drawn_of(after.reproducer, monkeypatch)
    m = re.match(r"step (\d+),", before.detail)
    assert m is not None
    assert new.steps <= int(m.group(1)) <= old.steps
    assert [np.size(p) for p in new.params] == [1]  # one row of one element, whatever the table's rank
    assert [g.indices.size for step in new.grads for g in step if isinstance(g, SparseGrad)][-1] == 2
    assert np.size(old.params[0]) >= np.size(new.params[0])
    assert len(after.reproducer.splitlines()) <= len(before.reproducer.splitlines())
    assert "duplicate indices are not combined" in after.detail  # the diagnosis still names the cause


def test_minimizing_spends_at_most_its_budget_and_is_deterministic() -> None:
    """Each candidate is one target run; past the budget the smallest failure so far stands."""
    case = Case([np.linspace(-1, 1, 12).reshape(3, 4)], [[np.full((3, 4), 0.5)]] * 6,
                {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-7})
    runs: list[int] = []

    def attempt(drawn: Any) -> Finding | None:  # fails (structurally) whenever element [2, 3] is there
        runs.append(1)
        c = drawn
        if c.params[0].shape[0] >= 3 and c.params[0].shape[1] >= 4 and c.steps >= 2:
            return Finding("step 2: params[0] has shape (9,), expected (3, 4)", c, structural=True, drawn=c)
        return None

    first = Finding("step 2: params[0] has shape (9,), expected (3, 4)", case, structural=True, drawn=case)
    for budget in (0, 1, 3, 40):
        runs.clear()
        found, spent = minimize(first, attempt, budget)
        assert spent == len(runs) <= budget
    found, _ = minimize(first, attempt, 40)
    again, _ = minimize(first, attempt, 40)
    assert found.drawn.steps == 2 and R._case(found.drawn) == R._case(again.drawn)


def test_a_comparison_the_rule_leaves_exact_states_the_absolute_error() -> None:
    """A bound that is the underflow allowance alone (the expected value is exact, zero or
    subnormal) makes any real error astronomically many bounds: the line states the error."""
    tiny = fmt("float32").tiny
    c = Comparison(1, 0, (), "u", 0.1, 0.10000009834766388, 1.0125 * tiny, 8.16e30, 13.0, tiny)
    assert c.exact and "x bound" not in c.describe()
    assert "expected 0.1, got 0.10000009834766388 (off by 9.83e-08, 13 ULP" in c.describe()
    zero = Comparison(2, 0, (1,), "m", 0.0, 1e-7, 1.0125 * tiny, 8.4e30, 4.5e8, tiny)  # no subnormal "ULP"
    assert "expected 0.0, got 1e-07 (off by 1e-07, where the rule leaves no rounding" in zero.describe()
    huge = Comparison(1, 0, (), "u", 1.0, 1e30, 2.25e-308, float("inf"), 4.5e45, 2.2250738585072014e-308)
    assert huge.exact and "(off by 1e+30, 4.5e+45 ULP" in huge.describe()
    nan = Comparison(1, 0, (), "w", 1.0, float("nan"), 1.0125 * tiny, float("inf"), float("inf"), tiny)
    assert not nan.exact and "inf x bound" in nan.describe()  # NaN where a number was due: no "off by"
    usual = Comparison(1, 0, (), "w", 1.0, 1.1, 2e-7, 5e5, 8e5, tiny)
    assert not usual.exact and "5e+05 x bound" in usual.describe()


def test_reproducers_write_every_value_back_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values are written in their shortest form for the case's dtype; replay rounds them back
    to exactly the drawn values (signed zeros, NaN, infinities, subnormals, empty and 0-d arrays,
    sparse gradients, missing gradients, groups, checkpoints, schedules)."""
    rng = np.random.default_rng(0)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        def val(*shape: int, dtype: str = dtype) -> np.ndarray:
            x = rng.standard_normal(shape) * np.exp(rng.uniform(-30 if dtype != "float16" else -9, 9, shape))
            return round_to(x, dtype)

        special = round_to(np.array([0.0, -0.0, np.nan, np.inf, -np.inf, fmt(dtype).tiny / 4, 1 / 3]), dtype)
        case = Case(
            [val(3, 2), val(), special, np.zeros((0,))],
            [[SparseGrad(np.array([2, 0, 2]), val(3, 2), (3, 2)), val(), special, np.zeros((0,))]] * 3
            + [[SparseGrad(np.array([], dtype=np.int64), np.zeros((0, 2)), (3, 2)), None, val(7), None]],
            {"learning_rate": {"class_name": "ExponentialDecay", "config": {
                "initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.96, "staircase": True}},
             "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "clipnorm": 1.0},
            dtype, checkpoint_at=2, group_hyper=({"learning_rate": 0.5},) * 4)
        finding = Finding("step 1: something", case, drawn=(case, [(0, 2, 1, float("nan"))]))
        script = R.reproducer("N-1", "title", finding, R.Source("m:f", "keras"), profile="keras")
        back = R._rounded(drawn_of(script, monkeypatch))
        assert back[1] == [(0, 2, 1, back[1][0][3])] and np.isnan(back[1][0][3])
        got = back[0]
        assert (got.hyper, got.dtype, got.checkpoint_at, got.group_hyper) == \
            (case.hyper, case.dtype, case.checkpoint_at, case.group_hyper)
        for a, b in zip([*case.params, *[g for s in case.grads for g in s]],
                        [*got.params, *[g for s in got.grads for g in s]], strict=True):
            if isinstance(a, SparseGrad):
                assert a.indices.tolist() == b.indices.tolist() and a.dense_shape == b.dense_shape
                a, b = a.values, b.values
            if a is None:
                assert b is None
                continue
            assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            assert np.array_equal(np.signbit(a), np.signbit(b))
        assert "] * 3" in script and script.count("SparseGrad(") == 2  # repeated steps written once


def _good(w: np.ndarray, g: np.ndarray, m: np.ndarray, u: np.ndarray, *, t: int, lr: float, beta_1: float,
          beta_2: float, epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dt = w.dtype.type
    b1, b2, eps, lr_ = dt(beta_1), dt(beta_2), dt(epsilon), dt(lr)
    m = m + (g - m) * (dt(1) - b1)
    u = np.maximum(b2 * u, np.abs(g))
    return w - lr_ / (dt(1) - b1 ** dt(t)) * (m / (u + eps)), m, u


def test_the_owner_of_a_fault_is_handed_the_example_that_showed_it() -> None:
    """A dtype fault on a case D-1's own strategy never draws (a float32 0-d weight of 0): U-1 meets
    it and is skipped; D-1 tries U-1's example first, so it reports the fault (alone it passes)."""
    from adamax_spec.conformance.adapters.function import FunctionTarget
    from adamax_spec.conformance.engine import Causes

    def sly(w: np.ndarray, g: np.ndarray, m: np.ndarray, u: np.ndarray, **kw: Any) -> Any:
        w2, m, u = _good(w, g, m, u, **kw)
        odd = w.dtype == np.float32 and w.size == 1 and float(w.reshape(-1)[0]) == 0.0
        return (w2.astype(np.float64) if odd else w2), m, u

    target = FunctionTarget(sly, name="sly")
    assert run_property(by_id("D-1"), target, "keras", examples=10, seed=0).status == "pass"
    causes = Causes(("U-1", "D-1"))
    u1 = run_property(by_id("U-1"), target, "keras", examples=10, seed=0, causes=causes)
    d1 = run_property(by_id("D-1"), target, "keras", examples=10, seed=0, causes=causes)
    assert u1.status == "skipped" and u1.detail.startswith("same root cause as D-1 (see there)")
    assert d1.status == "fail" and "came back as float64" in d1.detail and d1.reproducer


def test_a_fault_the_owner_does_not_meet_again_is_still_reported_there() -> None:
    """A target that upcasts only on its first run: U-1 meets the fault and points at D-1, which
    does not meet it again, and reports it, saying where it was met."""
    from adamax_spec.conformance.adapters.function import FunctionTarget
    from adamax_spec.conformance.engine import Causes

    calls = [0]

    def once(w: np.ndarray, g: np.ndarray, m: np.ndarray, u: np.ndarray, **kw: Any) -> Any:
        calls[0] += 1
        w2, m, u = _good(w, g, m, u, **kw)
        return (w2.astype(np.float64) if calls[0] == 1 else w2), m, u

    target = FunctionTarget(once, name="once")
    causes = Causes(("U-1", "D-1"))
    u1 = run_property(by_id("U-1"), target, "keras", examples=5, seed=0, causes=causes)
    d1 = run_property(by_id("D-1"), target, "keras", examples=5, seed=0, causes=causes)
    assert u1.status == "skipped"
    assert d1.status == "fail" and "came back as float64" in d1.detail and "(met while checking U-1)" in d1.detail
