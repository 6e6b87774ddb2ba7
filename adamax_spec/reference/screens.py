"""The float64 screens: cheap float64 work that ranks or settles comparisons before the 256-bit path.

Both change no verdict (``tests/reference/test_reference_mutants.py`` compares every verdict with the
screens forced on, ``SCREEN_MIN = 0``, and off); ``docs/error-model.md`` ("Speed") has the
full argument.

* :func:`estimate_ratios`: a plain float64 run of the update under one interpretation,
  estimating every comparison's ``error / bound``.  Not rigorous: it only picks the few
  elements that :func:`~adamax_spec.reference.verdict.judge` probes exactly.
* :func:`_certify` (state observed: every input a float64 value, nothing clipped or
  summed): with error-free transformations (:mod:`~adamax_spec.reference.eft`), ``m'``
  correctly rounded and ``u'`` exactly, hence the very bounds the 256-bit path computes,
  and an interval ``[lo, hi]`` that holds each comparison's ratio as that path computes
  it.  With ``L`` the largest ``lo``, a comparison with ``hi < min(1, L)`` is neither a
  failure nor the worst: it is recorded with ratio ``hi`` and not evaluated at 256 bits.
* :func:`_certify_w`: the same for the ``w`` comparisons alone, where the state is
  hidden (carried exactly by the reference).

:data:`SCREEN_MIN` switches them off on small cases.  The judge reads it, and calls
``_certify``/``_certify_w``, through this module at call time, so a test can set or spy
on them here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adamax_spec.reference import eft
from adamax_spec.reference.comparisons import Found
from adamax_spec.reference.formats import Format, fmt, round_to
from adamax_spec.reference.inputs import Grad, Observed
from adamax_spec.reference.model import SAFETY, Hyper, Moments, Variant, moment_bounds, weight_bound
from adamax_spec.reference.schedules import learning_rate_at

__all__ = ["SCREEN_MIN", "estimate_ratios"]

#: below this many compared elements (all steps), the float64 screens cost more than they save
SCREEN_MIN = 256


def estimate_ratios(case: Any, obs: Observed, grads: list[list[Grad | None]], v: Variant,
                    interp: dict) -> list[np.ndarray] | None:
    """Float64 estimates of each comparison's error / bound, as (steps, elements) arrays per parameter
    (the larger of the ``w``, ``m``, ``u`` comparisons).  Only ranks elements for
    :func:`~adamax_spec.reference.verdict._probe`:
    rounding makes it meaningless for float64 targets, which costs speed, never correctness."""
    b1, b2, eps = interp["beta_1"], interp["beta_2"], interp["epsilon"]
    f = fmt(case.dtype)
    e, tiny = f.unit, f.tiny
    steps = len(grads)
    ts = np.arange(1, steps + 1, dtype=np.float64)
    t_used = round_to(ts, case.dtype) if interp.get("_round_t") else ts
    lr = np.array([learning_rate_at(case.hyper, interp.get("learning_rate"), k, e)[0] for k in range(steps)])
    lr_t = (lr / (1.0 - interp.get("_b1_bias", b1) ** t_used) if v.bias_correction else lr)[:, None]
    out = []
    for i in range(len(case.params)):
        g = np.array([row[i].g_f for row in grads])  # type: ignore[union-attr]
        a = np.array([row[i].magnitude()[1] for row in grads])  # type: ignore[union-attr]
        w_act = np.array([ps[i] for ps in obs.w[:steps]])
        w_old = np.concatenate([obs.start[i][None], w_act[:-1]])
        seen = {q: [obs.state(q, k) for k in range(steps)] for q in ("m", "u")}
        mag = a + (eps if v.epsilon == "inside" else 0.0)
        add = eps if v.epsilon == "inside_decay" else 0.0
        m_old, u_old = np.zeros_like(g), np.zeros_like(g)
        m_new, u_new = np.empty_like(g), np.empty_like(g)
        m, u = m_old[0], u_old[0]
        for k in range(steps):  # the state each step starts from (the target's, where it shows it)
            m_old[k], u_old[k] = m, u
            m_new[k] = b1 * m + (1.0 - b1) * g[k]
            u_new[k] = np.maximum(b2 * u + add, mag[k])
            sm, su = seen["m"][k], seen["u"][k]
            m = m_new[k] if sm is None else sm[i]
            u = u_new[k] if su is None else su[i]
        d = u_new + eps if v.epsilon == "outside" else u_new
        delta = lr_t * m_new / d
        em = e * (2 * b1 * np.abs(m_old) + 2 * (1 - b1) * np.abs(g) + 3 * np.abs(g - m_old) + np.abs(m_new)) + tiny
        bw = e * (np.abs(w_act) + 4 * np.abs(delta)) + np.abs(lr_t / d) * em + tiny
        r = np.abs(w_act - (w_old - delta)) / bw
        for q, ref, bnd in (("m", m_new, em), ("u", u_new, e * u_new + tiny)):
            have = [k for k in range(steps) if seen[q][k] is not None]
            if have:
                act = np.array([seen[q][k][i] for k in have])  # type: ignore[index]
                r[have] = np.maximum(r[have], np.abs(act - ref[have]) / bnd[have])
        if not np.all(np.isfinite(r)):
            return None
        out.append(r)
    return out


def _certify(found: Found, v: Variant, h: Hyper, f: Format, ins: dict[str, np.ndarray], flr_t: np.ndarray,
             rel: np.ndarray, w_old: np.ndarray, w_act: np.ndarray, m_act: np.ndarray, u_act: np.ndarray,
             step: np.ndarray, param: np.ndarray, flat: np.ndarray, *, inv_c: Any = 1.0) -> np.ndarray | None:
    """Settle in float64 the comparisons that provably cannot be a failure nor the worst one.

    For each element (teacher forced, every input a float64 value) :mod:`.eft` gives ``m'`` correctly
    rounded (certified) and ``u'`` exactly, hence the very bounds the exact path computes (same
    float64 code, same inputs), and an interval ``[lo, hi]`` holding each comparison's ratio as the
    256-bit evaluation computes it.  With ``L`` the largest ``lo``, a comparison with
    ``hi < min(1, L)`` is no failure and not the worst (the element attaining ``L`` is evaluated
    exactly and its ratio is at least ``L``): it is recorded with ratio ``hi`` and not evaluated
    at 256 bits.  Returns the indices left to the exact path, or ``None`` when nothing is settled.
    """
    fb1, fb2, feps = float(h.b1), float(h.b2), float(h.eps)
    omb1, lost = eft.two_sum(np.ones(1), np.full(1, -fb1))  # 1 - b1 must be a float64 value
    if v.epsilon not in ("outside", "inside", "none") or not feps >= 0 or lost[0] != 0 or not np.isfinite(omb1[0]) \
            or np.any(ins["g_err"]) or np.any(ins["m_err"]) or np.any(ins["u_err"]) or "a" in ins:
        return None
    g_f, m_f, u_f = ins["g_f"], ins["m_f"], ins["u_f"]
    sc = eft.moments(v.epsilon, fb1, float(omb1[0]), fb2, feps, g_f, m_f, u_f)
    m_bound, u_est, u_bound = moment_bounds(v, h, f, g_f, m_f, u_f, sc.m_float, g_err=ins["g_err"],
                                            m_err=ins["m_err"], u_err=ins["u_err"])
    w_bound, delta_est = weight_bound(v, h, f, sc.m_float, m_bound, u_est, u_bound, w_old, flr_t, rel, inv_c)
    m_bnd, u_bnd = SAFETY * m_bound, SAFETY * u_bound
    s, err = eft.two_sum(w_act, -w_old)
    # delta_est = fl(fl(flr_t m_float) / fl(u_est [+ eps])): six roundings of relative U at most
    # (flr_t, m_float, u_est, the sum, the product, the quotient), all operands positive or exact
    lo_w, hi_w = eft.diff_interval([s, delta_est, err], 8 * eft.U * np.abs(delta_est))
    x, y = eft.two_sum(m_act, -sc.m_float)
    # the 256-bit path rounds m' and |g| + eps at 2**-256 where they need more bits
    lo_m, hi_m = eft.diff_interval([x, y, -sc.m_res], sc.m_res_err + 2.0**-250 * sc.m_mag)
    x2, y2 = eft.two_sum(u_act, -sc.u_hi)
    lo_u, hi_u = eft.diff_interval([x2, y2, -sc.u_lo], 2.0**-250 * np.abs(sc.u_hi))
    ok = sc.ok & (u_f >= 0) & eft.in_range(w_old, w_act, m_act, u_act, s, delta_est, sc.m_float, flr_t,
                                           flr_t * sc.m_float, w_bound, m_bnd, u_bnd, u_est)
    ok &= (flr_t > 0) & (w_bound > 0) & (m_bnd > 0) & (u_bnd > 0)
    if not ok.any():
        return None
    tiny = 2.0**-1074
    ratios = []
    for lo, hi, b in ((lo_w, hi_w, w_bound), (lo_m, hi_m, m_bnd), (lo_u, hi_u, u_bnd)):
        with np.errstate(all="ignore"):
            ratios.append((lo / b * (1 - 2.0**-50), (hi + tiny) / b * (1 + 2.0**-50)))
    big_l = max(float(np.max(np.where(ok, r[0], 0.0))) for r in ratios)
    thr = min(1.0, big_l)
    settled = ok & (ratios[0][1] < thr) & (ratios[1][1] < thr) & (ratios[2][1] < thr)
    if not settled.any():
        return None
    j = np.flatnonzero(settled)
    for order, (_, hi), b, diff_lo in ((0, ratios[0], w_bound, lo_w), (1, ratios[1], m_bnd, lo_m),
                                        (2, ratios[2], u_bnd, lo_u)):
        found.add(step[j], param[j], order, flat[j], hi[j], (_unreported, b[j], diff_lo[j], "wmu"[order]))
    return np.flatnonzero(~settled)


def _certify_w(found: Found, v: Variant, h: Hyper, f: Format, mo: Moments, u_f: np.ndarray, flr_t: np.ndarray,
               rel: np.ndarray, w_old: np.ndarray, w_act: np.ndarray, step: np.ndarray, param: np.ndarray,
               flat: np.ndarray, *, inv_c: Any = 1.0) -> np.ndarray | None:
    """:func:`_certify` for the ``w`` comparisons alone, where the state is carried exactly: ``m'``
    is known exactly, so ``mo.m_float`` is correctly rounded and the bound is the exact path's own;
    ``delta_est`` is within ``10 U |delta_est|`` of the exact ``delta`` (seven roundings: ``lr_t``,
    ``m'``, ``u`` and ``g`` to float64, ``b2 u`` or ``|g| + eps``, ``+ eps``, the product and the
    quotient, at most six in one chain); the largest ``lo`` of these comparisons bounds the verdict's
    largest ratio from below."""
    fb2, feps = float(h.b2), float(h.eps)
    if v.epsilon not in ("outside", "inside", "none") or not feps >= 0 or not fb2 >= 0:
        return None
    w_bound, delta_est = weight_bound(v, h, f, mo.m_float, mo.m_bound, mo.u_est, mo.u_bound, w_old, flr_t, rel,
                                      inv_c)
    s, err = eft.two_sum(w_act, -w_old)
    lo, hi = eft.diff_interval([s, delta_est, err], 10 * eft.U * np.abs(delta_est))
    ok = (u_f >= 0) & eft.in_range(w_old, w_act, s, delta_est, mo.m_float, mo.u_est, flr_t, flr_t * mo.m_float,
                                   w_bound)
    ok &= (flr_t > 0) & (w_bound > 0)
    if not ok.any():
        return None
    with np.errstate(all="ignore"):
        r_lo, r_hi = lo / w_bound * (1 - 2.0**-50), (hi + 2.0**-1074) / w_bound * (1 + 2.0**-50)
    thr = min(1.0, float(np.max(np.where(ok, r_lo, 0.0))))
    settled = ok & (r_hi < thr)
    if not settled.any():
        return None
    j = np.flatnonzero(settled)
    found.add(step[j], param[j], 0, flat[j], r_hi[j], (_unreported, w_bound[j], lo[j], "w"))
    return np.flatnonzero(~settled)


def _unreported(j: int) -> tuple[float, float]:
    """A settled comparison is never the worst nor a failure, so it is never reported."""
    raise AssertionError("a comparison settled in float64 was asked for its values")
