"""docs/spec.md, "NaN and infinity": N-1, non-finite gradients propagate as the profile's framework
does; elements whose gradients stay finite are judged by the reference as usual."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from adamax_spec.reference.formats import fmt
from adamax_spec.reference.verdict import judge

from .. import strategies as S
from ..case import Case, Target, Trajectory
from ..property import Finding, Property, profile_rules

__all__ = ["N_1"]


def _nonfinite_check(target: Target, drawn: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    case, where = drawn
    traj = run(case)
    f = fmt(case.dtype)
    first: dict[tuple[int, int], tuple[int, float]] = {}
    for k, i, j, val in sorted(where, key=lambda x: x[:3]):
        first.setdefault((i, j), (k, val))
    rules = profile_rules(variant)
    keep_decayed = rules is not None and rules.nan_in_max == "keep_decayed"
    for (i, j), (k, val) in sorted(first.items()):
        loc = f"step {k + 1}, params[{i}] element {j} (gradient {val})"
        for kk in range(k, case.steps):
            w = np.asarray(traj.params[kk][i], float).reshape(-1)[j]
            if not math.isnan(w):
                return Finding(f"N-1: {loc}: w is {w!r} at step {kk + 1}, expected NaN "
                               "(a non-finite gradient must not become a number in w)", case)
        m_k = traj.m[k] if k < len(traj.m) else None
        u_k = traj.u[k] if k < len(traj.u) else None
        if m_k is None or u_k is None:
            continue
        m = float(np.asarray(m_k[i], float).reshape(-1)[j])
        u = float(np.asarray(u_k[i], float).reshape(-1)[j])
        if math.isnan(val):
            if not math.isnan(m):
                return Finding(f"N-1: {loc}: m is {m!r}, expected NaN", case)
            if keep_decayed:
                prev = 0.0 if k == 0 else float(np.asarray(traj.u[k - 1][i], float).reshape(-1)[j])  # type: ignore[index]
                b2 = float(case.hyper["beta_2"])
                # b2 used as passed or rounded (<= 1 rounding), times one rounded product.
                tol = 3 * max(f.unit, fmt("float32").unit) * b2 * prev + f.tiny
                if not math.isnan(u) and abs(u - b2 * prev) > tol:
                    return Finding(f"N-1 ({variant}): {loc}: u is {u!r}, expected b2*u = {b2 * prev!r} "
                                   "(Keras's dense max keeps b2*u when |g| is NaN) or NaN", case)
            elif not math.isnan(u):
                return Finding(f"N-1 ({variant}): {loc}: u is {u!r}, expected NaN (NaN propagates into u)", case)
        else:
            if u != math.inf:
                return Finding(f"N-1: {loc}: u is {u!r}, expected inf", case)
            if not (math.isnan(m) or m == val):
                return Finding(f"N-1: {loc}: m is {m!r}, expected {val} (or NaN, from a lerp form)", case)
    # Elements that never saw a non-finite gradient: the reference, as usual.
    hit = {(i, j) for (i, j) in first}
    masks = []
    for i, p in enumerate(case.params):
        mk = np.ones(p.size, dtype=bool)
        for (ii, j) in hit:
            if ii == i:
                mk[j] = False
        masks.append(mk)

    def pick(arrs: list[Any] | None) -> list[Any] | None:
        if arrs is None:
            return None
        return [np.asarray(a, float).reshape(-1)[masks[i]] for i, a in enumerate(arrs)]

    sub = Case([np.asarray(p, float).reshape(-1)[masks[i]] for i, p in enumerate(case.params)],
               [pick(s) or [] for s in case.grads], case.hyper, case.dtype, label="finite elements")
    t = Trajectory(params=[pick(s) or [] for s in traj.params], m=[pick(s) for s in traj.m],
                   u=[pick(s) for s in traj.u])
    v = judge(sub, t, variant)
    if not v.ok:
        return Finding("elements with finite gradients (flat indices): " + v.failures[0].describe(), sub, v)
    return None


N_1 = Property("N-1", "NaN and inf gradients propagate as the profile's framework does",
               frozenset({"dense"}), lambda: S.nonfinite_cases(), check=_nonfinite_check)
