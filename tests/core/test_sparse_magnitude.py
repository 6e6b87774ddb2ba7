"""Rows named twice by one sparse gradient: ``u`` sees ``|sum v|`` (keras) or ``sum |v|`` (keras3).

Keras 3 takes ``|values|`` slice by slice before densifying (``docs/peers.md``); the
``keras3`` profile records it (``Profile.sparse_magnitude``), our implementation follows
the profile, and the reference's ``keras3`` variant judges by it.  The expected values
are derived by hand: with zero initial state, slices ``+1`` and ``-3`` for one row give
``m = (1 - b1) * (1 - 3)`` and ``u = max(0, |1 - 3|) = 2`` (keras) or
``max(0, |1| + |-3|) = 4`` (keras3); every such number is exact in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

from adamax_spec import Adamax, IndexedSlices
from adamax_spec.conformance.case import Case, SparseGrad, Trajectory
from adamax_spec.reference.verdict import judge

B1, B2, LR, EPS = 0.5, 0.75, 0.125, 1e-7


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(("profile", "u_row"), [("keras", 2.0), ("keras3", 4.0)])
def test_ours_u_of_a_duplicated_row(profile: str, u_row: float, fast: bool) -> None:
    w = np.zeros((3, 2), np.float32)
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, profile=profile, fast=fast)
    g = IndexedSlices(np.array([[1.0, 1.0], [-3.0, -3.0]], np.float32), np.array([1, 1]), (3, 2))
    opt.apply_gradients([(g, w)])
    state = opt.state
    assert state is not None
    assert np.array_equal(state.u[0][1], np.full(2, u_row, np.float32))
    assert np.array_equal(state.m[0][1], np.full(2, (1 - B1) * -2.0, np.float32))
    assert np.array_equal(state.u[0][[0, 2]], np.zeros((2, 2), np.float32))


def _run(case: Case, sum_abs: bool, lazy: bool, expose: bool) -> Trajectory:
    """A float64 Adamax (Keras form) rounded to float32 each step, independent of ours."""
    w = case.params[0].astype(np.float64)
    m, u = np.zeros_like(w), np.zeros_like(w)
    traj = Trajectory()
    for k, (g,) in enumerate(case.grads):
        dense = g.dense()
        mag = np.zeros_like(w)
        np.add.at(mag, g.indices, np.abs(g.values.astype(np.float64)))
        mag = mag if sum_abs else np.abs(dense)
        rows = np.unique(g.indices) if lazy else np.arange(w.shape[0])
        m[rows] = B1 * m[rows] + (1 - B1) * dense[rows]
        u[rows] = np.maximum(B2 * u[rows], mag[rows])
        w[rows] = w[rows] - LR / (1 - B1 ** (k + 1)) * m[rows] / (u[rows] + EPS)
        w, m, u = (x.astype(np.float32).astype(np.float64) for x in (w, m, u))
        traj.params.append([w.copy()])
        traj.m.append([m.copy()] if expose else None)
        traj.u.append([u.copy()] if expose else None)
    return traj


def _case(rows: int, cols: int, steps: int, seed: int) -> Case:
    """Every step names every row twice, with values of both signs (so |sum| < sum of |.|)."""
    rng = np.random.default_rng(seed)
    grads = []
    for _ in range(steps):
        idx = np.concatenate([np.arange(rows), rng.permutation(rows)])
        vals = rng.normal(size=(2 * rows, cols)).astype(np.float32)
        grads.append([SparseGrad(idx, vals, (rows, cols))])
    params = [rng.normal(size=(rows, cols)).astype(np.float32)]
    return Case(params, grads, {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": EPS})


@pytest.mark.parametrize("expose", [True, False], ids=["state", "weights-only"])
@pytest.mark.parametrize("size", [(3, 2, 3), (40, 8, 4)], ids=["small", "screened"])
def test_reference_judges_the_duplicate_rule_per_variant(expose: bool, size: tuple[int, int, int]) -> None:
    """``keras3`` accepts ``sum |v|`` and rejects ``|sum v|``; ``keras`` (lazy) the other way round.
    The large case
    (1,280 compared elements, above ``SCREEN_MIN``) goes through the float64 screen and probes."""
    case = _case(*size, seed=sum(size))
    good = judge(case, _run(case, sum_abs=True, lazy=False, expose=expose), "keras3")
    assert good.ok, good.failures[:1]
    bad = judge(case, _run(case, sum_abs=False, lazy=False, expose=expose), "keras3")
    assert not bad.ok and bad.max_ratio > 100
    keras = judge(case, _run(case, sum_abs=False, lazy=True, expose=expose), "keras")
    assert keras.ok, keras.failures[:1]
    assert not judge(case, _run(case, sum_abs=True, lazy=True, expose=expose), "keras").ok


@pytest.mark.parametrize(("scale", "accepted"), [(0.9, True), (2.0, False)], ids=["subnormal", "normal"])
def test_duplicate_sum_flushed_to_zero_only_where_its_addends_are_subnormal(scale: float, accepted: bool) -> None:
    """One row named twice with ``scale * tiny`` each (float32 ``tiny = 2**-126``). A target that
    reads subnormal addends as zero (DAZ, TensorFlow on CPU) gets a zero sum, and with it zero
    ``m``, ``u`` and update: accepted where the addends are subnormal (``0.9 tiny`` each: the sum
    ``1.8 tiny`` is lost), rejected where they are normal (``2 tiny`` each: a sum of ``4 tiny`` lost is
    more than the bound's ``(k-1)`` flushed partial sums and roundings)."""
    tiny = float(np.finfo(np.float32).smallest_normal)
    values = np.full((2, 1), scale * tiny)
    case = Case([np.zeros((3, 1))], [[SparseGrad(np.array([1, 1]), values, (3, 1))]],
                {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": EPS})
    zero = [np.zeros((3, 1))]
    traj = Trajectory(params=[zero], m=[zero], u=[zero])
    assert judge(case, traj, "keras").ok is accepted


#: slices +1 and -3 of row 1 under each clip argument at a value that clips nothing (clipvalue
#: 10 leaves both; the values' norm is sqrt(1 + 1 + 9 + 9) < 10, so clipnorm 10 and global_clipnorm
#: 10 scale by 10/max(sqrt(20), 10) = 1 exactly):
#: Keras 3 keeps the slices through clipvalue and clipnorm (u sees |1| + |-3| = 4), but its
#: global_clipnorm multiplies the IndexedSlices into a dense tensor, summing them (u sees
#: |1 - 3| = 2; measured on Keras 3.15, tests/conformance/test_keras_inputs.py)
KERAS3_CLIPPED_U = {"clipvalue": 4.0, "clipnorm": 4.0, "global_clipnorm": 2.0}


@pytest.mark.parametrize("clip", sorted(KERAS3_CLIPPED_U))
def test_keras3_global_clipnorm_sums_the_slices(clip: str) -> None:
    """Ours under keras3 gives that u (m = (1 - b1) * (1 - 3) under all three); the reference's
    keras3 variant accepts it and rejects the other magnitude."""
    u_row = KERAS3_CLIPPED_U[clip]
    w = np.zeros((3, 2), np.float32)
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, profile="keras3", **{clip: 10.0})
    g = IndexedSlices(np.array([[1.0, 1.0], [-3.0, -3.0]], np.float32), np.array([1, 1]), (3, 2))
    opt.apply_gradients([(g, w)])
    state = opt.state
    assert state is not None
    assert np.array_equal(state.u[0][1], np.full(2, u_row, np.float32))
    assert np.array_equal(state.m[0][1], np.full(2, (1 - B1) * -2.0, np.float32))
    case = Case([np.zeros((3, 2))], [[SparseGrad(np.array([1, 1]), np.array([[1.0, 1.0], [-3.0, -3.0]]), (3, 2))]],
                {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": EPS, clip: 10.0})
    for u, ok in ((u_row, True), (6.0 - u_row, False)):  # 6 - 4 = 2, 6 - 2 = 4: the other rule
        traj = Trajectory(params=[[w.astype(np.float64)]], m=[[state.m[0].astype(np.float64)]],
                          u=[[np.where(np.arange(3)[:, None] == 1, u, 0.0) * np.ones((3, 2))]])
        assert judge(case, traj, "keras3").ok is ok, (u, judge(case, traj, "keras3").failures[:1])
