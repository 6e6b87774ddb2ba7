"""docs/spec.md, "State and step": U-1, U-2, U-3 and T-1 (judged by the reference), INV-moments.

U-1: dense steps follow the update rule; U-2: in every dtype, within the error bound; U-3: long
runs stay within the per-step bound; T-1: the step count keeps counting past 2048.
INV-moments checks the moments' invariants where a target exposes ``m`` and ``u``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from adamax_spec.reference.formats import fmt

from .. import strategies as S
from ..case import Case, Target, Trajectory, Unsupported
from ..property import Finding, Property

__all__ = ["INV_MOMENTS", "T_1", "U_1", "U_2", "U_3"]


def _invariant_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    """INV-moments: ``u >= |g|``, ``u >= b2*u_prev`` and ``|m| <= A_t*u + B_t`` with ``A_t`` the
    invariant ``(1-b1)(1-(b1/b2)^t)/(1-b1/b2)`` widened by the rounding of each step (docs/spec.md)."""
    traj = run(case)
    if any(x is None for x in traj.m) or any(x is None for x in traj.u) or not traj.m:
        raise Unsupported("state", f"{target.name} does not expose m and u")
    f = fmt(case.dtype)
    e, eta = f.unit, f.tiny
    e_h = max(e, fmt("float32").unit)  # hyperparameters used rounded to the dtype or to float32
    b1, b2 = float(case.hyper["beta_1"]), float(case.hyper["beta_2"])
    alpha, gamma = b1 + e_h + 6 * e, 1 - b1 + 2 * e_h + 6 * e
    beta = b2 * (1 - e_h) * (1 - e)
    n = len(case.params)
    a_t, b_t = 0.0, 0.0
    u_prev = [np.zeros(np.shape(p)) for p in case.params]
    with np.errstate(all="ignore"):
        for k in range(case.steps):
            if beta > 0:
                a_t, b_t = alpha * a_t / beta + gamma, alpha * b_t + alpha * a_t * eta / beta + 3 * eta
            else:
                a_t, b_t = math.inf, math.inf
            for i in range(n):
                g = case.grads[k][i]
                m = np.asarray(traj.m[k][i], float)  # type: ignore[index]
                u = np.asarray(traj.u[k][i], float)  # type: ignore[index]
                if g is None:
                    u_prev[i] = u
                    continue
                ag = np.abs(np.asarray(g, float))
                checks = (
                    (~(u >= ag), "u < |g| (the max must keep |g|)"),
                    (~(u >= beta * u_prev[i] - eta), "u < b2*u_prev (the max must keep b2*u)"),
                    (~(np.abs(m) <= a_t * u + b_t), f"|m| > {a_t:.6g}*u + {b_t:.3g} (|m/u| invariant)"),
                )
                for bad, what in checks:
                    if bad.any():
                        idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
                        return Finding(
                            f"INV-moments: step {k + 1}, params[{i}]{list(int(x) for x in idx)}: {what}; "
                            f"m = {m[idx]!r}, u = {u[idx]!r}, |g| = {ag[idx]!r}, u_prev = {u_prev[i][idx]!r}", case)
                u_prev[i] = u
    return None


U_1 = Property("U-1", "dense steps match the reference within the error bound",
               frozenset({"dense"}), lambda: S.dense_cases())
U_2 = Property("U-2", "float16, bfloat16 and float64 weights follow the same rule in their dtype",
               frozenset({"dense"}), lambda: S.dense_cases(dtypes=("float16", "bfloat16", "float64")))
U_3 = Property("U-3", "long runs (up to 150 steps) stay within the per-step bound",
               frozenset({"dense"}), lambda: S.dense_cases(max_steps=150), scale=lambda n: max(2, n // 10),
               shrink=8, minimize=20)
T_1 = Property("T-1", "step counts past 2048 (float16 / low-precision counters) keep counting",
               frozenset({"dense"}), lambda: S.counter_cases(), scale=lambda n: max(1, n // 25), shrink=2,
               minimize=12)
INV_MOMENTS = Property("INV-moments", "|m| <= u*(1-b1)(1-(b1/b2)^t)/(1-b1/b2), u >= |g|, u >= b2*u (long runs)",
                       frozenset({"state"}), lambda: S.invariant_cases(), check=_invariant_check,
                       scale=lambda n: max(2, n // 5), shrink=8, minimize=20)
