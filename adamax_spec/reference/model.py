"""The reference step and its error bound (derivation: ``docs/error-model.md``).

This module is independent of the implementation it judges: it imports
nothing from ``adamax_spec`` outside ``adamax_spec.reference``.  Its variant
table is its own; ``tests/reference/test_profiles_agree.py`` checks it agrees with
:mod:`adamax_spec.profiles` (and that this package imports nothing outside itself).

For one step from state ``(w, m, u)`` with gradient ``g`` it computes the
exact real-number result (256-bit) and, per element, a bound on how far a
correct implementation computing in floating-point format ``D`` may land from
it: first-order running-error analysis, one rounding of relative size
``eps_D`` (``D``'s unit roundoff) per operation in any reasonable order, plus
the uncertainties carried in (state not observed, clipped gradients), plus an
absolute floor per operation for underflow (``tiny_D``: results that flush to
zero are allowed).

Everything is vectorized over flat element arrays, and an array may gather
elements of many steps and parameters (``lr_t`` is then an array too): the
exact values are NumPy object arrays (:mod:`.exact`), the bounds float64.

The bound is evaluated in float64 from float64 copies of the magnitudes it needs.
A bound needs a few correct digits, not 256 bits, but it must not come out
smaller than the formula: every magnitude is taken as an upper bound (the
float64 value, each rounded at most a few times with relative error ``2**-53``,
times :data:`UP` = ``1 + 2**-48``), and every quantity we divide by as a lower
bound (times :data:`DOWN`).  Differences of inputs are bounded above by
``|a - b| + 2**-52 (|a| + |b|)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import exact
from .formats import Format

__all__ = [
    "DOWN",
    "SAFETY",
    "UP",
    "VARIANTS",
    "Hyper",
    "Moments",
    "Scalars",
    "StepOut",
    "Variant",
    "Weights",
    "moments",
    "reference_step",
    "step_size",
    "weights",
]

#: Multiplies every bound: covers the second-order terms a first-order analysis drops
#: (each is below ``(k*eps_D)**2`` relative for k < 50 operations).
SAFETY = 1.01
#: Relative error allowed for ``b1**t`` (a correctly rounded or 1-ULP ``pow``).
POW_ROUNDINGS = 2.0
#: Upward and downward factors for magnitudes evaluated in float64 (at most ~10 roundings
#: of ``2**-53`` each, far below ``2**-48``): the float64 bound is never below the formula.
UP = 1.0 + 2.0**-48
DOWN = 1.0 - 2.0**-48
_F64 = 2.0**-52


@dataclass(frozen=True)
class Variant:
    """``epsilon``: outside | inside | inside_decay | none; ``lazy``: sparse rows only;
    ``sum_abs``: ``u`` of a row named by several sparse slices ``v_j`` sees ``sum_j |v_j|``
    (Keras 3), not ``|sum_j v_j|``; ``global_clip_sums``: under ``global_clipnorm`` the slices
    are summed when scaled (Keras 3 multiplies an ``IndexedSlices`` into a dense tensor), so
    ``u`` sees ``|sum_j v_j|`` there even where ``sum_abs``."""

    name: str
    epsilon: str
    bias_correction: bool
    lazy: bool
    sum_abs: bool = False
    global_clip_sums: bool = False


VARIANTS = {
    v.name: v
    for v in (
        Variant("keras", "outside", True, True),
        Variant("keras3", "outside", True, False, sum_abs=True, global_clip_sums=True),
        Variant("torch", "inside", True, False),
        Variant("optax", "inside", True, False),
        Variant("paddle", "inside_decay", True, False),
        Variant("mxnet", "none", True, False),
        Variant("mlx", "outside", False, False),
    )
}


@dataclass(frozen=True)
class Scalars:
    """One step's hyperparameters as exact numbers, each with an absolute uncertainty.

    ``lr``, ``b1``, ``b2``, ``eps`` are the values of one interpretation (see
    :mod:`adamax_spec.reference.verdict`); ``t`` the step number the target uses
    (possibly rounded to D), ``t_err`` its distance from the true step.
    """

    lr: object
    b1: object
    b2: object
    eps: object
    t: object
    lr_err: float = 0.0
    t_err: float = 0.0


@dataclass(frozen=True)
class Hyper:
    """The constant hyperparameters of one interpretation: exact, and as float64 (exact too)."""

    b1: Any
    b2: Any
    eps: Any
    one_minus_b1: Any

    @classmethod
    def of(cls, beta_1: float, beta_2: float, epsilon: float) -> Hyper:
        b1 = exact.num(beta_1)
        return cls(b1, exact.num(beta_2), exact.num(epsilon), exact.num(1.0) - b1)


@dataclass
class Moments:
    """``m' = b1 m + (1-b1) g`` and ``u' = max(b2 u, |g|)`` (per variant), exact, with
    float64 upper bounds of their errors and magnitudes."""

    m: np.ndarray        # exact (object)
    u: np.ndarray        # exact (object; Python floats where |g| won the max)
    m_float: np.ndarray  # float64(m'), correctly rounded
    u_est: np.ndarray    # float64 estimate of u' within relative 2**-50 (no cancellation: max of products)
    m_bound: np.ndarray  # error bound of m' (before SAFETY)
    u_bound: np.ndarray  # error bound of u' (before SAFETY)


@dataclass
class Weights:
    """``delta = lr_t m' / d`` exact, with the bound of ``w' = w - delta`` (SAFETY applied)."""

    delta: np.ndarray    # exact (object)
    w_bound: np.ndarray


@dataclass
class StepOut:
    """Exact results (object arrays) and their bounds (float64 arrays)."""

    w: np.ndarray
    m: np.ndarray
    u: np.ndarray
    w_bound: np.ndarray
    m_bound: np.ndarray
    u_bound: np.ndarray
    delta: np.ndarray  # exact w_old - w_new


def step_size(variant: Variant, lr: Any, b1: Any, t: float, f: Format, *,
              lr_err: float = 0.0, t_err: float = 0.0) -> tuple[Any, float, float]:
    """``(lr_t, float(lr_t), rel)`` with ``lr_t = lr / (1 - b1**t)`` exact (``lr`` without bias
    correction) and ``rel`` the relative error bound a correct target may make on it:
    ``lr_err/lr + Ec/c`` where ``Ec = 2 e b1^t + tiny (+ b1^t |ln b1| t_err) + e c``.

    One scalar per step: every element of the step shares it.
    """
    e, eta = f.unit, f.tiny
    rel_lr = float(lr_err) / max(float(lr), 1e-300)
    if not variant.bias_correction:
        return lr, float(lr), rel_lr
    p = exact.pow_(b1, int(t)) if float(t) == int(t) else b1 ** exact.num(t)
    fp, fb1 = float(p), float(b1)
    p_bound = POW_ROUNDINGS * e * fp + eta
    if t_err and fb1 > 0:
        p_bound += fp * abs(math.log(fb1)) * t_err
    c = exact.num(1.0) - p
    fc = float(c)
    c_bound = p_bound + e * fc
    lr_t = lr / c
    if fc == 0.0:  # b1 == 1 (e.g. 0.9999 rounded to float16): lr_t is infinite, no relative bound
        return lr_t, float(lr_t), math.inf
    return lr_t, float(lr_t), (rel_lr + c_bound / (fc * DOWN)) * UP


def moments(variant: Variant, h: Hyper, f: Format, g: np.ndarray, g_f: np.ndarray,
            m: np.ndarray, m_f: np.ndarray, u: np.ndarray, u_f: np.ndarray, *,
            g_err: Any = 0.0, m_err: Any = 0.0, u_err: Any = 0.0, a: np.ndarray | None = None,
            a_f: np.ndarray | None = None, a_err: Any = 0.0) -> Moments:
    """The state update, exact, and its bound.

    ``g``, ``m``, ``u`` are object arrays (exact numbers or Python floats); ``*_f`` their values
    in float64 (correctly rounded); ``*_err`` absolute uncertainties of the inputs (0 when taken
    from the target).  ``a``, ``a_f``, ``a_err``: what ``u`` sees in place of ``|g|`` (a
    ``sum_abs`` variant's summed slice magnitudes), ``None``: ``|g|``.  Bound of ``m'`` (covers
    the textbook form, the kernel form ``m + (g-m)(1-b1)`` and lerp's ``g - (g-m) b1``, each at
    most 4 roundings of these terms)::

        b1 Em + (1-b1) Eg + e (2 b1 |m| + 2 (1-b1) |g| + 3 |g-m| + |m'|) + 3 tiny

    ``u' = max(decayed, magnitude)`` with ``decayed = b2 u``: max is 1-Lipschitz, so the
    bound is ``max(b2 Eu + e |b2 u| + tiny, Eg)``, plus ``e |.| + tiny`` for the epsilon
    addition of the ``inside`` (``|g| + eps``) and ``inside_decay`` (``b2 u + eps``) variants.
    """
    m_new = h.b1 * m + h.one_minus_b1 * g
    m_float = exact.to_float(m_new)
    decayed = h.b2 * u
    mag = np.abs(g) if a is None else a
    if variant.epsilon == "inside":
        mag = mag + h.eps
    elif variant.epsilon == "inside_decay":
        decayed = decayed + h.eps
    u_new = np.maximum(decayed, mag)
    m_bound, u_est, u_bound = moment_bounds(variant, h, f, g_f, m_f, u_f, m_float,
                                            g_err=g_err, m_err=m_err, u_err=u_err, a_f=a_f, a_err=a_err)
    return Moments(m_new, u_new, m_float, u_est, m_bound, u_bound)


def moment_bounds(variant: Variant, h: Hyper, f: Format, g_f: np.ndarray, m_f: np.ndarray, u_f: np.ndarray,
                  m_float: np.ndarray, *, g_err: Any = 0.0, m_err: Any = 0.0,
                  u_err: Any = 0.0, a_f: np.ndarray | None = None,
                  a_err: Any = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The float64 part of :func:`moments`: ``(m_bound, u_est, u_bound)`` from float64 inputs and
    ``m_float`` (``m'`` correctly rounded to float64); the exact values are not needed."""
    e, eta = f.unit, f.tiny
    fb1, fb2, feps = float(h.b1), float(h.b2), float(h.eps)
    am, ag = np.abs(m_f), np.abs(g_f)
    agm = np.abs(g_f - m_f) + _F64 * (am + ag)
    m_bound = (fb1 * m_err + (1.0 - fb1) * g_err
               + e * (2 * fb1 * am + 2 * (1.0 - fb1) * ag + 3 * agm + np.abs(m_float))) * UP + 3 * eta
    dec_est = fb2 * np.abs(u_f)
    d_bound = fb2 * u_err + e * dec_est * UP + eta
    mag_est = ag if a_f is None else np.abs(a_f)
    mag_bound = np.asarray(g_err if a_f is None else a_err, dtype=np.float64) + 0.0 * ag
    if variant.epsilon == "inside":
        mag_est = ag + feps
        mag_bound = mag_bound + e * mag_est * UP + eta
    elif variant.epsilon == "inside_decay":
        dec_est = dec_est + feps
        d_bound = d_bound + e * dec_est * UP + eta
    return m_bound, np.maximum(dec_est, mag_est), np.maximum(d_bound, mag_bound)


def weights(variant: Variant, h: Hyper, f: Format, mo: Moments, w_f: np.ndarray,
            lr_t: Any, flr_t: Any, rel_lr_t: Any, inv_c: Any = 1.0) -> Weights:
    """``delta = lr_t m'/d`` (``d = u' + eps`` for ``outside``, else ``u'``), exact, and the
    bound of ``w' = w - delta``::

        E_delta = |lr_t/d| Em' + |delta| (rel_lr_t + Ed/(|d| - Ed) + 3e) + 4 tiny max(1, lr_t)
        E_w'    = E_delta + e |w'| + tiny

    ``lr_t``, ``flr_t``, ``rel_lr_t`` are scalars or per-element arrays (:func:`step_size`).
    """
    den = mo.u + h.eps if variant.epsilon == "outside" else mo.u
    delta = lr_t * (mo.m / den)
    w_bound, _ = weight_bound(variant, h, f, mo.m_float, mo.m_bound, mo.u_est, mo.u_bound, w_f, flr_t, rel_lr_t,
                              inv_c)
    return Weights(delta, w_bound)


def weight_bound(variant: Variant, h: Hyper, f: Format, m_float: np.ndarray, m_bound: np.ndarray,
                 u_est: np.ndarray, u_bound: np.ndarray, w_f: np.ndarray, flr_t: Any,
                 rel_lr_t: Any, inv_c: Any = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The float64 part of :func:`weights`: ``(w_bound, delta_est)`` with ``delta_est`` =
    ``flr_t * m_float / (u_est [+ eps])`` in float64 (within relative ``6 * 2**-53`` of the exact
    ``delta`` where ``m_float`` is ``m'`` correctly rounded and ``u_est`` ``u'`` within one rounding).

    Flush to zero: ``delta = lr * (1/c) * m' * (1/d)`` (``c = 1 - b1**t``, ``inv_c = 1/c``) may be
    evaluated in any order, and an intermediate below the smallest normal number may flush (TF on
    CPU, GPUs), an absolute error of ``tiny`` that the factors applied after it multiply: at most
    ``tiny * max(1, lr_t) * inv_c * max(1, 1/d)``.  That amplification is charged only where some
    intermediate can be that small, i.e. where ``|m'| * min(1, lr) * min(1, 1/d)`` (the smallest
    partial product) is below twice the smallest normal number; elsewhere ``4 tiny max(1, lr_t)``."""
    e, eta = f.unit, f.tiny
    flr_t = np.asarray(flr_t, dtype=np.float64)
    if variant.epsilon == "outside":
        den_est = u_est + float(h.eps)
        den_bound = u_bound + e * den_est * UP + eta
    else:
        den_est = u_est
        den_bound = u_bound
    den_lo = den_est * DOWN
    rel_den = np.where(den_bound < den_lo, den_bound / (den_lo - den_bound) * UP, np.inf)
    quot = np.where(den_lo > 0, flr_t / den_lo * UP, np.inf)
    delta_est = flr_t * m_float / den_est
    adelta = np.abs(delta_est) * UP
    rel = np.nan_to_num(rel_lr_t + rel_den + 3 * e, nan=np.inf)
    carried = np.where(m_bound > 0, quot * m_bound, 0.0)
    inv_c = np.asarray(inv_c, dtype=np.float64)
    den_hi = (den_est * UP + den_bound) * UP
    smallest = (np.abs(m_float) + m_bound) * UP * np.minimum(1.0, flr_t / inv_c) * np.where(
        den_hi > 0, np.minimum(1.0, 1.0 / den_hi), 1.0)
    amp = np.where(smallest < 2 * eta, inv_c * np.where(den_lo > 0, np.maximum(1.0, 1.0 / den_lo), np.inf), 1.0)
    delta_bound = (carried + np.where(adelta > 0, adelta * rel, 0.0)
                   + 4 * eta * np.maximum(1.0, flr_t) * amp)
    aw_new = np.abs(w_f - delta_est) * UP + _F64 * 2 * (np.abs(w_f) + adelta)
    # A denominator whose error bound reaches its value may be 0 in a correct target (u + eps
    # underflowing, float16), and so may the product c*d of a target that divides once by it
    # (Keras 3 writes it; XLA reassociates m/c/d so) when it is below 2 tiny: delta may then be
    # inf or 0/0, so nothing bounds w'.
    vanish = ~(den_bound < den_lo) | (den_hi / inv_c < 2 * eta)
    return np.where(vanish, np.inf, SAFETY * UP * (delta_bound + e * aw_new + eta)), delta_est


def reference_step(*args: object, **kwargs: object) -> StepOut:
    """See :func:`_reference_step`; floating-point warnings of the bound arithmetic are expected
    (``0 * inf`` where a bound is infinite) and silenced here."""
    with np.errstate(all="ignore"), exact.working_precision():
        return _reference_step(*args, **kwargs)  # type: ignore[arg-type]


def _reference_step(
    variant: Variant,
    w: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    u: np.ndarray,
    s: Scalars,
    f: Format,
    *,
    g_err: np.ndarray | float = 0.0,
    m_err: np.ndarray | float = 0.0,
    u_err: np.ndarray | float = 0.0,
) -> StepOut:
    """One exact step of ``variant`` and the per-element bound for format ``f`` (a thin
    wrapper over :func:`step_size`, :func:`moments` and :func:`weights`).

    ``w``, ``g``, ``m``, ``u`` are object arrays of exact numbers; the ``*_err``
    are absolute uncertainties of the inputs (0 when taken from the target).
    """
    h = Hyper(s.b1, s.b2, s.eps, exact.num(1.0) - s.b1)
    shape = np.shape(w)
    flat = [np.asarray(x, dtype=object).reshape(-1) for x in (w, g, m, u)]
    errs = [np.broadcast_to(np.asarray(x, dtype=np.float64), shape).reshape(-1) for x in (g_err, m_err, u_err)]
    wf, gf, mf, uf = (exact.to_float(x) for x in flat)
    lr_t, flr_t, rel = step_size(variant, s.lr, s.b1, float(s.t), f, lr_err=s.lr_err, t_err=s.t_err)  # type: ignore[arg-type]
    mo = moments(variant, h, f, flat[1], gf, flat[2], mf, flat[3], uf, g_err=errs[0], m_err=errs[1], u_err=errs[2])
    c = 1.0 - float(s.b1) ** float(s.t) if variant.bias_correction else 1.0  # type: ignore[arg-type]
    wt = weights(variant, h, f, mo, wf, lr_t, flr_t, rel, 1.0 / c if c > 0 else math.inf)
    obj = lambda x: np.asarray(x, dtype=object).reshape(shape)  # noqa: E731
    return StepOut(
        w=obj(flat[0] - wt.delta), m=obj(mo.m), u=obj(mo.u),
        w_bound=wt.w_bound.reshape(shape), m_bound=SAFETY * mo.m_bound.reshape(shape),
        u_bound=SAFETY * mo.u_bound.reshape(shape), delta=obj(wt.delta),
    )
