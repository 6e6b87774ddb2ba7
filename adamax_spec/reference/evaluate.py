"""Judge one interpretation: teacher-forced evaluation of every step, at 256 bits.

For every step the reference starts from the *target's own* weights (and its own ``m``/``u``
when the target exposes them), so errors never accumulate in the weights and a bug shows at
the step where it happens.  Hidden state is carried exactly by the reference, with its bound
carried along (the moment recurrences contract, so that bound stays small).

Teacher forcing makes the steps independent once the state is known, so the work is done in
two passes.  :func:`judge_one` walks the steps and gathers, per step and parameter, the
elements the step updates with their inputs (a :class:`_Segment`: the target's previous
weights and state, or the reference's own exact state where the target hides it: only then
is the state recurrence evaluated step by step).  :func:`_evaluate` then computes, for all
gathered elements of all steps at once, as NumPy object-array arithmetic
(:mod:`~adamax_spec.reference.model`)::

    m' = b1 m + (1 - b1) g        u' = max(b2 u, |g|)   (epsilon placement per variant)
    w' = w - lr_t m' / (u' + eps)                        (lr_t = lr / (1 - b1^t): bias correction)

and compares the target's ``w`` (and ``m``, ``u`` where shown) with them, each within its
bound.  Where the inputs are float64 values, the float64 screens
(:mod:`~adamax_spec.reference.screens`) first settle the comparisons they can prove.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adamax_spec.reference import exact, screens
from adamax_spec.reference.comparisons import (
    Found,
    Verdict,
    exact_nan,
    make_verdict,
    ratio_to_bound,
    same_state,
    unchanged,
)
from adamax_spec.reference.formats import Format, round_to
from adamax_spec.reference.inputs import Grad, Observed
from adamax_spec.reference.model import SAFETY, Hyper, Moments, Variant, moments, step_size, weights
from adamax_spec.reference.schedules import learning_rate_at

__all__ = ["judge_one"]


@dataclass
class _Segment:
    """The elements of parameter ``param`` that step ``step`` updates, with their inputs."""

    step: int
    param: int
    flat: np.ndarray  # flat element indices within the parameter
    gr: Grad
    m: np.ndarray
    m_f: np.ndarray
    m_err: Any
    u: np.ndarray
    u_f: np.ndarray
    u_err: Any
    w_old: np.ndarray
    w_act: np.ndarray
    m_act: np.ndarray | None
    u_act: np.ndarray | None
    lr: tuple[Any, float, float, float]
    mo: Moments | None = None


def judge_one(case: Any, obs: Observed, grads: list[list[Grad | None]], v: Variant, f: Format,
              name: str, interp: dict, max_failures: int, per_step: bool = False,
              screen: bool = True) -> Verdict:
    """The verdict of ``traj`` (as ``obs``) on ``case`` under one interpretation ``interp`` named ``name``.

    Walks the steps, gathering per step and parameter the updated elements with their inputs, runs the
    hidden-state recurrence where the target does not show ``m``/``u``, then evaluates everything at once
    (:func:`_evaluate`).  ``screen``: allow the float64 certification (:mod:`.screens`)."""
    dtype = case.dtype
    h = Hyper.of(interp["beta_1"], interp["beta_2"], interp["epsilon"])
    n = len(case.params)
    shapes = [np.shape(p) for p in case.params]
    # the state each parameter's next step starts from: exact values, float64 copies, error bounds
    zeros = [np.zeros(int(np.prod(s))) for s in shapes]
    # (the error is the scalar 0.0 while the state is exact: zero at the start, or observed)
    st: dict[str, list[list[Any]]] = {q: [[exact.floats(z), z, 0.0] for z in zeros] for q in ("m", "u")}
    prev = list(obs.start)
    found = Found()
    segments: list[_Segment] = []
    for k, row in enumerate(grads):
        t = k + 1
        lr_val, lr_err = learning_rate_at(case.hyper, interp.get("learning_rate"), k, f.unit)
        t_used = float(round_to(t, dtype)) if interp.get("_round_t") else float(t)
        b1_bias = exact.num(interp["_b1_bias"]) if "_b1_bias" in interp else h.b1
        lr3 = step_size(v, exact.num(lr_val), b1_bias, t_used, f, lr_err=lr_err, t_err=abs(t_used - t))
        c = 1.0 - float(b1_bias) ** t_used if v.bias_correction else 1.0
        lr = (*lr3, 1.0 / c if c > 0 else math.inf)  # (lr_t, float lr_t, rel, 1/c): 1/c for the FTZ term
        w_now = obs.w[k]
        seen = {q: obs.state(q, k) for q in ("m", "u")}
        for i in range(n):
            gr = row[i]
            if gr is None:
                unchanged(found, w_now[i], prev[i], np.arange(prev[i].size), k + 1, i, dtype)
                continue
            flat = np.arange(prev[i].size) if gr.idx is None else gr.idx
            sel = slice(None) if gr.idx is None else gr.idx
            if gr.idx is not None:  # lazy rows: the others must not move
                rest = np.ones(prev[i].size, dtype=bool)
                rest[gr.idx] = False
                rest_idx = np.flatnonzero(rest)
                unchanged(found, w_now[i][rest_idx], prev[i][rest_idx], rest_idx, k + 1, i, dtype)
                for q in ("m", "u"):
                    obs_q = seen[q]
                    if obs_q is not None:
                        same_state(found, obs_q[i][rest_idx], st[q][i], rest_idx, k + 1, i, q, dtype)
            stm, stu = st["m"][i], st["u"][i]
            seg = _Segment(k + 1, i, flat, gr, stm[0][sel], stm[1][sel], _at(stm[2], sel),
                           stu[0][sel], stu[1][sel], _at(stu[2], sel), prev[i][sel], w_now[i][sel],
                           None if seen["m"] is None else seen["m"][i][sel],
                           None if seen["u"] is None else seen["u"][i][sel], lr)
            if seen["m"] is None or seen["u"] is None:  # hidden state: the recurrence runs now
                a, a_f, a_err = gr.magnitude()
                seg.mo = moments(v, h, f, gr.g, gr.g_f, seg.m, seg.m_f, seg.u, seg.u_f,
                                 g_err=gr.g_err, m_err=seg.m_err, u_err=seg.u_err, a=a, a_f=a_f, a_err=a_err)
            for q in ("m", "u"):
                s = st[q][i]
                obs_q = seen[q]
                if obs_q is not None:
                    s[0], s[1], s[2] = exact.floats(obs_q[i]), obs_q[i], 0.0
                else:
                    assert seg.mo is not None
                    new = seg.mo.m if q == "m" else seg.mo.u
                    bnd = seg.mo.m_bound if q == "m" else seg.mo.u_bound
                    err = s[2].copy() if isinstance(s[2], np.ndarray) else np.zeros(s[1].shape)
                    s[0], s[1], s[2] = s[0].copy(), s[1].copy(), err
                    s[0][sel] = new
                    s[1][sel] = seg.mo.m_float if q == "m" else exact.to_float(new)
                    s[2][sel] = SAFETY * bnd
            segments.append(seg)
        prev = list(w_now)
    if segments:
        _evaluate(found, segments, v, h, f, dtype, shapes, screen=screen and not per_step)
    return make_verdict(found, v, name, max_failures, shapes, dtype, per_step, case.steps)


def _at(err: Any, sel: Any) -> Any:
    """``err[sel]``, or the scalar 0.0 where the state is known exactly (observed, or zero)."""
    if not isinstance(err, np.ndarray):
        return 0.0
    out = err[sel]
    return 0.0 if not out.any() else out


def _cat(parts: list[Any], sizes: list[int]) -> np.ndarray:
    """Concatenate per-segment arrays (scalars are repeated to the segment's size)."""
    arrays = [isinstance(p, np.ndarray) and p.ndim > 0 for p in parts]
    if not any(arrays):
        one = np.empty(len(parts), dtype=np.asarray(parts[0]).dtype)
        one[:] = parts
        return np.repeat(one, sizes)
    return np.concatenate([p if a else np.full(s, p, dtype=np.asarray(p).dtype)
                           for p, s, a in zip(parts, sizes, arrays, strict=True)])


def _evaluate(found: Found, segs: list[_Segment], v: Variant, h: Hyper, f: Format, dtype: str,
              shapes: list[tuple[int, ...]], screen: bool = False) -> None:
    """The exact update and the bound for every gathered element at once, and the comparisons.

    ``screen``: the inputs are float64 values (no clipping, no summed duplicates) and no per-step
    series is wanted; where every segment's state is observed, :func:`_certify` settles the
    comparisons a float64 evaluation provably decides, and only the rest is evaluated at 256 bits."""
    sizes = [s.flat.size for s in segs]
    cat = lambda get: _cat([get(s) for s in segs], sizes)  # noqa: E731
    todo = [j for j, s in enumerate(segs) if s.mo is None]
    lr_t = cat(lambda s: s.lr[0])
    flr_t = cat(lambda s: np.float64(s.lr[1]))
    rel = cat(lambda s: np.float64(s.lr[2]))
    inv_c = cat(lambda s: np.float64(s.lr[3]))
    w_old, w_act = cat(lambda s: s.w_old), cat(lambda s: s.w_act)
    step = cat(lambda s: np.int64(s.step))
    param = cat(lambda s: np.int64(s.param))
    flat = cat(lambda s: s.flat)
    acts: dict[str, tuple[Any, np.ndarray]] = {}
    for q in ("m", "u"):
        have = [j for j, sg in enumerate(segs) if (sg.m_act if q == "m" else sg.u_act) is not None]
        if not have:
            continue
        if len(have) == len(segs):
            acts[q] = (slice(None), cat(lambda sg, q=q: sg.m_act if q == "m" else sg.u_act))
        else:
            starts = np.concatenate([[0], np.cumsum(sizes)])
            acts[q] = (np.concatenate([np.arange(starts[j], starts[j + 1]) for j in have]),
                       np.concatenate([segs[j].m_act if q == "m" else segs[j].u_act for j in have]))
    if todo:
        part = [segs[j] for j in todo]
        psz = [sizes[j] for j in todo]
        pc = lambda get: _cat([get(s) for s in part], psz)  # noqa: E731
        ins = dict(g=pc(lambda s: s.gr.g), g_f=pc(lambda s: s.gr.g_f), m=pc(lambda s: s.m),
                   m_f=pc(lambda s: s.m_f), u=pc(lambda s: s.u), u_f=pc(lambda s: s.u_f),
                   g_err=pc(lambda s: np.float64(s.gr.g_err) if np.ndim(s.gr.g_err) == 0 else s.gr.g_err),
                   m_err=pc(lambda s: np.float64(s.m_err) if np.ndim(s.m_err) == 0 else s.m_err),
                   u_err=pc(lambda s: np.float64(s.u_err) if np.ndim(s.u_err) == 0 else s.u_err))
        if any(s.gr.a is not None for s in part):  # a sum_abs variant's summed |slices|
            ins.update(a=pc(lambda s: s.gr.magnitude()[0]), a_f=pc(lambda s: s.gr.magnitude()[1]),
                       a_err=pc(lambda s: np.float64(s.gr.magnitude()[2]) if np.ndim(s.gr.magnitude()[2]) == 0
                                else s.gr.magnitude()[2]))
        if screen and len(todo) == len(segs) and set(acts) == {"m", "u"} and w_old.size >= screens.SCREEN_MIN:
            keep = screens._certify(found, v, h, f, ins, flr_t, rel, w_old, w_act, acts["m"][1], acts["u"][1],
                                    step, param, flat, inv_c=inv_c)
            if keep is not None:
                if not keep.size:
                    return
                ins = {k: x[keep] for k, x in ins.items()}
                lr_t, flr_t, rel, w_old, w_act = lr_t[keep], flr_t[keep], rel[keep], w_old[keep], w_act[keep]
                inv_c = inv_c[keep]
                step, param, flat = step[keep], param[keep], flat[keep]
                acts = {q: (slice(None), act[keep]) for q, (_, act) in acts.items()}
        mo = moments(v, h, f, ins["g"], ins["g_f"], ins["m"], ins["m_f"], ins["u"], ins["u_f"],
                     g_err=ins["g_err"], m_err=ins["m_err"], u_err=ins["u_err"], a=ins.get("a"),
                     a_f=ins.get("a_f"), a_err=ins.get("a_err", 0.0))
        if len(todo) == len(segs):
            allmo = mo
        else:
            cuts = np.cumsum(psz)[:-1]
            pieces = {fld: np.split(getattr(mo, fld), cuts) for fld in mo.__dataclass_fields__}
            for r, j in enumerate(todo):
                segs[j].mo = Moments(**{fld: pieces[fld][r] for fld in pieces})
    if not todo or len(todo) != len(segs):
        allmo = Moments(**{fld: cat(lambda s, fld=fld: getattr(s.mo, fld)) for fld in Moments.__dataclass_fields__})
    wmo, w_idx = allmo, (step, param, flat)
    if screen and len(todo) != len(segs) and w_old.size >= screens.SCREEN_MIN:
        # the state was carried exactly (hidden): settle the w comparisons that float64 decides
        keep = screens._certify_w(found, v, h, f, allmo, cat(lambda s: s.u_f), flr_t, rel, w_old, w_act, step, param,
                                  flat, inv_c=inv_c)
        if keep is not None:
            wmo = Moments(**{fld: getattr(allmo, fld)[keep] for fld in Moments.__dataclass_fields__})
            lr_t, flr_t, rel, w_old, w_act = lr_t[keep], flr_t[keep], rel[keep], w_old[keep], w_act[keep]
            inv_c = inv_c[keep]
            w_idx = (step[keep], param[keep], flat[keep])
    wt = weights(v, h, f, wmo, w_old, lr_t, flr_t, rel, inv_c)
    # w: actual - (w_old - delta) = (w_act - w_old) + delta; the float64 difference and its exact
    # rounding error (TwoSum) are exact, so only the sum with delta rounds (at 256 bits).
    s = w_act - w_old
    bb = s - w_act
    err = (w_act - (s - bb)) - (-w_old - bb)
    err = np.where(np.isfinite(err), err, 0.0)
    dw = wt.delta + s.astype(object)
    nz = np.flatnonzero(err)
    if nz.size:
        dw[nz] = dw[nz] + err[nz].astype(object)
    diff = np.abs(exact.to_float(dw))
    nan_exp = exact_nan(w_act, lambda j: w_old[j] - wt.delta[j], diff)

    def w_maker(j: int) -> tuple[float, float]:
        return float(w_old[j] - wt.delta[j]), float(w_act[j])

    ratio_w = ratio_to_bound(diff, wt.w_bound, w_act, nan_exp)
    # An infinite lr_t (1 - b1**t exactly 0: b1 is 1.0 in the dtype) has no relative bound, so
    # w_bound is inf; but w - inf * m'/d is then +-inf or NaN whatever m' and d are, never finite.
    ratio_w = np.where(np.isinf(flr_t) & np.isfinite(w_act), np.inf, ratio_w)
    found.add(w_idx[0], w_idx[1], 0, w_idx[2], ratio_w, (w_maker, wt.w_bound, diff, "w"))
    for order, q, ref, bnd in ((1, "m", allmo.m, allmo.m_bound), (2, "u", allmo.u, allmo.u_bound)):
        if q not in acts:
            continue
        pick, act = acts[q]
        ref_q, bnd_q = ref[pick], SAFETY * bnd[pick]
        diff_q = np.abs(exact.to_float(act.astype(object) - ref_q))
        nan_q = exact_nan(act, lambda j, ref_q=ref_q: ref_q[j], diff_q)

        def maker(j: int, ref_q: np.ndarray = ref_q, act: np.ndarray = act) -> tuple[float, float]:
            return float(ref_q[j]), float(act[j])

        found.add(step[pick], param[pick], order, flat[pick], ratio_to_bound(diff_q, bnd_q, act, nan_q),
                  (maker, bnd_q, diff_q, q))
