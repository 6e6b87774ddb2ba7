"""Error-free transformations in float64 (vectorized) and the certified float64 screen.

``two_sum(a, b) = (s, t)`` with ``s = fl(a + b)`` and ``a + b = s + t`` exactly (Knuth; no
overflow).  ``two_prod(a, b) = (p, t)`` with ``p = fl(a b)`` and ``a b = p + t`` exactly
(Dekker's splitting, no FMA; exact when ``|a|, |b| < 2**960`` and ``a b`` is 0 or
``|a b| >= 2**-960``, so that no partial product under- or overflows).

:func:`screen` uses them to evaluate, for teacher-forced elements whose inputs are all
float64 values, what the 256-bit evaluation would give, without 256-bit numbers: ``m'`` correctly
rounded to float64 (certified, or the element is left to the exact path), ``u'`` exactly as a
double-double, and for every comparison an interval ``[lo, hi]`` that provably contains the ratio
the 256-bit evaluation computes.  The argument is in ``docs/error-model.md`` ("Speed").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

U = 2.0**-53
#: magnitudes outside [2**-960, 2**960] (other than 0) are left to the exact path
LO, HI = 2.0**-960, 2.0**960
_SPLIT = 134217729.0  # 2**27 + 1


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a: np.ndarray | float, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), np.shape(b))
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def in_range(*xs: np.ndarray) -> np.ndarray:
    """Elementwise: every value finite and 0 or of magnitude in [LO, HI]."""
    ok = np.ones(np.shape(xs[0]), dtype=bool)
    for x in xs:
        a = np.abs(x)
        ok &= (a == 0) | ((a >= LO) & (a <= HI))
    return ok


@dataclass
class Screened:
    """Per element: ``ok`` where everything below is certified; ``m_float`` = RN(m');
    ``u_hi + u_lo`` = u' exactly (``|u_lo| <= ulp(u_hi)/2``); ``m_res`` = RN(m' - m_float) up to
    ``m_res_err`` (absolute)."""

    ok: np.ndarray
    m_float: np.ndarray
    m_res: np.ndarray
    m_res_err: np.ndarray
    u_hi: np.ndarray
    u_lo: np.ndarray
    m_mag: np.ndarray  # |b1 m| + |(1-b1) g| (rounded up)


def moments(epsilon: str, b1: float, omb1: float, b2: float, eps: float, g: np.ndarray, m: np.ndarray,
            u: np.ndarray) -> Screened:
    """``m' = b1 m + (1-b1) g`` and ``u' = max(b2 u, |g| [+ eps])`` from float64 inputs; ``omb1``
    must equal ``1 - b1`` exactly (the caller checks).  ``epsilon`` "outside", "none" or "inside".

    ``m' = p1 + e1 + p2 + e2`` exactly (two products); ``p1 + p2 = s + t`` (two_sum);
    ``q = fl(fl(t + e1) + e2)`` is within ``d = 2.1 u (|t| + |e1| + |e2|)`` of ``t + e1 + e2``;
    ``s + q = S + r`` (two_sum).  So ``m' = S + r + (t + e1 + e2 - q)`` and ``S = RN(m')`` when
    ``|r| + d`` is below half the spacing of the floats around ``S`` (a quarter of ``spacing(S)``
    where ``S`` is a power of two, whose lower neighbour is closer): certified per element.
    """
    p1, e1 = two_prod(b1, m)
    p2, e2 = two_prod(omb1, g)
    s, t = two_sum(p1, p2)
    q = (t + e1) + e2
    d = 2.1 * U * (np.abs(t) + np.abs(e1) + np.abs(e2))
    big, r = two_sum(s, q)
    a = np.abs(big)
    frac, _ = np.frexp(a)
    half = np.where(frac == 0.5, 0.25, 0.5) * np.spacing(a)
    rn = np.where(big == 0, (r == 0) & (d == 0), np.abs(r) + d < half)
    ok = rn & in_range(g, m, u, p1, p2, np.asarray(b1) * m, omb1 * g)
    pu, eu = two_prod(b2, u)
    ok &= in_range(pu, b2 * u)
    ag = np.abs(g)
    if epsilon == "inside":
        mh, ml = two_sum(ag, np.full(ag.shape, eps))
    else:
        mh, ml = ag, np.zeros(ag.shape)
    # both pairs are normalized (|low| <= ulp(high)/2), so they compare by high part, then low part
    dec = (pu > mh) | ((pu == mh) & (eu >= ml))
    mag_m = (np.abs(p1) + np.abs(p2)) * (1 + 4 * U)
    return Screened(ok, big, r, d, np.where(dec, pu, mh), np.where(dec, eu, ml), mag_m)


def diff_interval(parts: list[np.ndarray], extra_err: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi]`` containing ``|sum(parts) + x|`` for any ``|x| <= extra_err``, and its rounding to
    float64 after roundings at 2**-200: ``sum`` evaluated in float64 left to right
    (``len(parts) - 1`` additions, each of relative error ``U`` of its partial sums, all bounded by
    ``sum |parts|``), the final rounding widens the interval by ``2**-50``."""
    acc = parts[0]
    mag = np.abs(parts[0])
    for x in parts[1:]:
        acc = acc + x
        mag = mag + np.abs(x)
    err = (len(parts) - 1) * 1.01 * U * mag + extra_err + 2.0**-190 * mag
    est = np.abs(acc)
    return np.maximum(est - err, 0.0) * (1 - 2.0**-50), (est + err) * (1 + 2.0**-50)
