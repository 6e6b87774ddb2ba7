"""Judge a target's trajectory against the reference, element by element, step by step.

For every step the reference starts from the *target's own* weights (and
its own ``m``/``u`` when the target exposes them), so errors never accumulate
in the weights and a bug shows at the step where it happens.  Hidden state is
carried exactly by the reference, with its bound carried along (the moment
recurrences contract, so that bound stays small).

Hyperparameters: a correct target may use them as passed (torch, in Python
doubles), rounded to its dtype (optax), or rounded to float32 first (Keras,
which also rounds the step count to the dtype).  Each is an *interpretation*;
a target conforms if one interpretation keeps every comparison within bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import exact
from .formats import Format, fmt, round_to, ulp
from .model import VARIANTS, Scalars, Variant, reference_step
from .schedules import schedule_value

__all__ = ["Comparison", "Verdict", "interpretations", "judge"]


@dataclass
class Comparison:
    """One compared element: where, what was expected and found, and by how much it is off."""

    step: int
    param: int
    index: tuple[int, ...]
    quantity: str  # "w" | "m" | "u"
    expected: float
    actual: float
    bound: float
    ratio: float  # |actual - expected| / bound  (inf for NaN where a number was due)
    ulps: float  # |actual - expected| in ULPs of the target's dtype

    def describe(self) -> str:
        return (
            f"step {self.step}, params[{self.param}]{list(self.index)}, {self.quantity}: "
            f"expected {self.expected!r}, got {self.actual!r} "
            f"({self.ratio:.3g} x bound, {self.ulps:.3g} ULP; bound {self.bound:.3g})"
        )


@dataclass
class Verdict:
    ok: bool
    variant: str
    interpretation: str
    worst: Comparison | None
    failures: list[Comparison] = field(default_factory=list)
    compared: int = 0

    @property
    def max_ratio(self) -> float:
        return 0.0 if self.worst is None else self.worst.ratio


def interpretations(hyper: dict[str, Any], dtype: str) -> dict[str, dict[str, Any]]:
    """The hyperparameter values a correct target may actually use, deduplicated."""
    keys = ("beta_1", "beta_2", "epsilon")
    lr = hyper["learning_rate"]
    base = {k: float(hyper[k]) for k in keys}
    if not isinstance(lr, dict):
        base["learning_rate"] = float(lr)

    def rounded(d: str, via32: bool) -> dict[str, Any]:
        out = {}
        for k, v in base.items():
            v2 = float(round_to(v, "float32")) if via32 and k != "epsilon" else v
            out[k] = float(round_to(v2, d))
        return out

    cands = {
        "as passed": dict(base),
        "rounded to dtype": rounded(dtype, False),
        "float32 hyperparameters, step in dtype": {**rounded(dtype, True), "_round_t": True},
    }
    seen: dict[str, dict[str, Any]] = {}
    for name, c in cands.items():
        if c not in seen.values():
            seen[name] = c
    return seen


def _clip(grads: list[Any], hyper: dict[str, Any], f: Format, dtype: str):
    """Clipping in Keras 2.9's order on exact values; returns (values, errors) per param.

    Sparse gradients are clipped on their values as given (before duplicates are summed).
    """
    vals = [None if g is None else exact.array(g.values if hasattr(g, "indices") else g) for g in grads]
    errs: list[Any] = [None if v is None else np.zeros(v.shape) for v in vals]
    cv, cn, gn = hyper.get("clipvalue"), hyper.get("clipnorm"), hyper.get("global_clipnorm")
    e = f.unit
    if cv is not None:
        c = exact.num(float(round_to(cv, dtype)))
        vals = [None if v is None else np.minimum(np.maximum(v, -c), c) for v in vals]
    if cn is not None:
        c = exact.num(float(round_to(cn, dtype)))
        for i, v in enumerate(vals):
            if v is None or v.size == 0:
                continue
            norm = _sqrt(np.sum(v * v))
            vals[i] = v * c / max(norm, c)
            errs[i] = (errs[i] + (v.size / 2 + 4) * e * exact.to_float(np.abs(vals[i]))) + f.tiny
    if gn is not None:
        present = [v for v in vals if v is not None and v.size]
        if present:
            total = sum(np.sum(v * v) for v in present)
            n = sum(v.size for v in present)
            c = exact.num(float(round_to(gn, dtype)))
            norm = _sqrt(total)
            scale = c / max(norm, c)
            for i, v in enumerate(vals):
                if v is not None:
                    vals[i] = v * scale
                    errs[i] = errs[i] + (n / 2 + 5) * e * exact.to_float(np.abs(vals[i])) + f.tiny
    return vals, errs


def _sqrt(x: Any) -> Any:
    return x.sqrt() if hasattr(x, "sqrt") else x ** exact.num(0.5)


def _coalesce(indices: np.ndarray, values: np.ndarray, errs: np.ndarray, f: Format):
    """Sum duplicate rows exactly; a correct target's sum may differ by (k-1) roundings."""
    rows = np.unique(indices)
    out = np.empty((rows.size, *values.shape[1:]), dtype=object)
    bound = np.zeros(out.shape)
    for j, r in enumerate(rows):
        sel = np.flatnonzero(indices == r)
        s = values[sel[0]]
        for k in sel[1:]:
            s = s + values[k]
        out[j] = s
        absum = exact.to_float(np.sum(np.abs(values[sel]), axis=0)) if sel.size > 1 else 0.0
        bound[j] = errs[sel].sum(axis=0) + (sel.size - 1) * f.unit * absum
    return rows, out, bound


def _compare(
    actual: np.ndarray, expected: np.ndarray, bound: np.ndarray, dtype: str,
    step: int, param: int, quantity: str, rows: np.ndarray | None = None,
) -> list[Comparison]:
    expected = np.asarray(expected, dtype=object)
    exp_f = exact.to_float(expected)
    diff = exact.to_float(np.abs(exact.array(actual) - expected))
    nan_bad = np.isnan(actual) & ~np.isnan(exp_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bound > 0, diff / bound, np.where(diff > 0, np.inf, 0.0))
    ratio = np.where(nan_bad, np.inf, ratio)
    ulps = np.where(nan_bad, np.inf, diff / ulp(exp_f, dtype))
    out = []
    flat = np.argsort(-ratio, axis=None)[:3] if ratio.size else []
    for k in flat:
        idx = np.unravel_index(k, ratio.shape)
        full = idx if rows is None else (int(rows[idx[0]]), *idx[1:])
        out.append(Comparison(step, param, tuple(int(i) for i in full), quantity,
                              float(exp_f[idx]), float(actual[idx]), float(bound[idx]),
                              float(ratio[idx]), float(ulps[idx])))
    return out


def judge(case: Any, traj: Any, variant: str | Variant, *, max_failures: int = 5) -> Verdict:
    """Verdict of ``traj`` (what the target did) on ``case`` under ``variant``."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    best: Verdict | None = None
    for name, interp in interpretations(case.hyper, case.dtype).items():
        verdict = _judge_one(case, traj, v, name, interp, max_failures)
        if verdict.ok:
            return verdict
        if best is None or verdict.max_ratio < best.max_ratio:
            best = verdict
    assert best is not None
    return best


def _judge_one(case, traj, v: Variant, name: str, interp: dict, max_failures: int) -> Verdict:
    dtype = case.dtype
    f = fmt(dtype)
    n = len(case.params)
    m = [exact.array(np.zeros(p.shape)) for p in case.params]
    u = [exact.array(np.zeros(p.shape)) for p in case.params]
    m_err: list[Any] = [0.0] * n
    u_err: list[Any] = [0.0] * n
    prev = [np.asarray(p, dtype=np.float64) for p in case.params]
    worst: Comparison | None = None
    failures: list[Comparison] = []
    compared = 0
    lr_spec = case.hyper["learning_rate"]
    for k, grads in enumerate(case.grads):
        t = k + 1
        if isinstance(lr_spec, dict):
            lr_val, lr_err = schedule_value(lr_spec, k)
        else:
            lr_val, lr_err = interp["learning_rate"], 0.0
        t_used = float(round_to(t, dtype)) if interp.get("_round_t") else float(t)
        s = Scalars(
            lr=exact.num(lr_val), b1=exact.num(interp["beta_1"]), b2=exact.num(interp["beta_2"]),
            eps=exact.num(interp["epsilon"]), t=t_used, lr_err=lr_err,
        )
        vals, errs = _clip(grads, case.hyper, f, dtype)
        out_w = traj.params[k]
        obs_m = traj.m[k] if k < len(traj.m) else None
        obs_u = traj.u[k] if k < len(traj.u) else None
        comps: list[Comparison] = []
        for i in range(n):
            w_old = exact.array(prev[i])
            g = grads[i]
            if g is None:
                comps += _unchanged(out_w[i], prev[i], k + 1, i, dtype)
                continue
            if hasattr(g, "indices"):
                rows, gv, gb = _coalesce(np.asarray(g.indices), vals[i], errs[i], f)
                if v.lazy:
                    sel = (rows,)
                    res = reference_step(v, w_old[sel], gv, m[i][sel], u[i][sel], s, f,
                                         g_err=gb, m_err=_rows(m_err[i], rows),
                                         u_err=_rows(u_err[i], rows))
                    untouched = np.ones(prev[i].shape[0], dtype=bool)
                    untouched[rows] = False
                    comps += _unchanged(out_w[i][untouched], prev[i][untouched], k + 1, i, dtype)
                    comps += _compare(out_w[i][rows], res.w, res.w_bound, dtype, k + 1, i, "w", rows)
                    new_m, new_u = m[i].copy(), u[i].copy()
                    new_m[rows], new_u[rows] = res.m, res.u
                    me = np.broadcast_to(np.asarray(m_err[i], float), prev[i].shape).copy()
                    ue = np.broadcast_to(np.asarray(u_err[i], float), prev[i].shape).copy()
                    me[rows], ue[rows] = res.m_bound, res.u_bound
                    mb, ub = me, ue
                else:
                    dense = exact.array(np.zeros(prev[i].shape))
                    derr = np.zeros(prev[i].shape)
                    dense[rows], derr[rows] = gv, gb
                    res = reference_step(v, w_old, dense, m[i], u[i], s, f,
                                         g_err=derr, m_err=m_err[i], u_err=u_err[i])
                    comps += _compare(out_w[i], res.w, res.w_bound, dtype, k + 1, i, "w")
                    new_m, new_u, mb, ub = res.m, res.u, res.m_bound, res.u_bound
            else:
                res = reference_step(v, w_old, vals[i], m[i], u[i], s, f,
                                     g_err=errs[i], m_err=m_err[i], u_err=u_err[i])
                comps += _compare(out_w[i], res.w, res.w_bound, dtype, k + 1, i, "w")
                new_m, new_u, mb, ub = res.m, res.u, res.m_bound, res.u_bound
            for q, obs, ref, bnd in (("m", obs_m, new_m, mb), ("u", obs_u, new_u, ub)):
                if obs is not None:
                    comps += _compare(obs[i], ref, np.broadcast_to(bnd, ref.shape), dtype, k + 1, i, q)
            if obs_m is not None:
                m[i], m_err[i] = exact.array(obs_m[i]), 0.0
            else:
                m[i], m_err[i] = new_m, mb
            if obs_u is not None:
                u[i], u_err[i] = exact.array(obs_u[i]), 0.0
            else:
                u[i], u_err[i] = new_u, ub
        for c in comps:
            compared += 1
            if worst is None or c.ratio > worst.ratio:
                worst = c
            if c.ratio > 1.0 and len(failures) < max_failures:
                failures.append(c)
        prev = [np.asarray(p, dtype=np.float64) for p in out_w]
    ok = not failures
    return Verdict(ok, v.name, name, worst, failures, compared)


def _rows(err: Any, rows: np.ndarray) -> Any:
    a = np.asarray(err, dtype=np.float64)
    return a[rows] if a.ndim else a


def _unchanged(actual: np.ndarray, before: np.ndarray, step: int, param: int, dtype: str) -> list[Comparison]:
    """Values that must stay bit-identical (no gradient, or rows a lazy step does not touch)."""
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(before, dtype=np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return []
    idx = np.unravel_index(int(np.argmin(same)), same.shape)
    d = abs(float(a[idx]) - float(b[idx]))
    return [Comparison(step, param, tuple(int(i) for i in idx), "w (must be unchanged)",
                       float(b[idx]), float(a[idx]), 0.0, math.inf,
                       float(d / ulp(np.asarray(b[idx]), dtype)))]
