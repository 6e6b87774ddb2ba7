"""The reference step and its error bound (derivation: ``docs/error-model.md``).

This module is independent of the implementation it judges: it imports
nothing from ``adamax_spec`` outside ``adamax_spec.reference``.  Its variant
table is its own; a test checks it agrees with :mod:`adamax_spec.profiles`.

For one step from state ``(w, m, u)`` with gradient ``g`` it computes the
exact real-number result (256-bit) and, per element, a bound on how far a
correct implementation computing in floating-point format ``D`` may land from
it: first-order running-error analysis, one rounding of relative size
``eps_D`` (``D``'s unit roundoff) per operation in any reasonable order, plus
the uncertainties carried in (state not observed, clipped gradients), plus an
absolute floor per operation for underflow (``tiny_D``: results that flush to
zero are allowed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import exact
from .formats import Format

__all__ = ["SAFETY", "VARIANTS", "Scalars", "StepOut", "Variant", "reference_step"]

#: Multiplies every bound: covers the second-order terms a first-order analysis drops
#: (each is below ``(k*eps_D)**2`` relative for k < 50 operations).
SAFETY = 1.01
#: Relative error allowed for ``b1**t`` (a correctly rounded or 1-ULP ``pow``).
POW_ROUNDINGS = 2.0


@dataclass(frozen=True)
class Variant:
    """``epsilon``: outside | inside | inside_decay | none; ``lazy``: sparse rows only."""

    name: str
    epsilon: str
    bias_correction: bool
    lazy: bool


VARIANTS = {
    v.name: v
    for v in (
        Variant("keras", "outside", True, True),
        Variant("keras3", "outside", True, False),
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


def _f(x: np.ndarray) -> np.ndarray:
    return exact.to_float(np.abs(x))


def reference_step(*args: object, **kwargs: object) -> StepOut:
    """See :func:`_reference_step`; floating-point warnings of the bound arithmetic are expected
    (``0 * inf`` where a bound is infinite) and silenced here."""
    with np.errstate(all="ignore"):
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
    """One exact step of ``variant`` and the per-element bound for format ``f``.

    ``w``, ``g``, ``m``, ``u`` are object arrays of exact numbers; the ``*_err``
    are absolute uncertainties of the inputs (0 when taken from the target).
    """
    e, eta = f.unit, f.tiny
    one = exact.num(1.0)
    b1, b2, eps = s.b1, s.b2, s.eps
    fb1 = float(b1)
    # m' = b1*m + (1-b1)*g.  Rounding covers the textbook form, the kernel form
    # m + (g-m)(1-b1), and lerp's g - (g-m)*b1 (each <= 4 roundings of these terms).
    m_new = b1 * m + (one - b1) * g
    am, ag, agm = _f(m), _f(g), _f(g - m)
    m_bound = (
        fb1 * m_err + (1 - fb1) * g_err
        + e * (2 * fb1 * am + 2 * (1 - fb1) * ag + 3 * agm + _f(m_new)) + 3 * eta
    )
    # u' = max(decayed, magnitude): max is 1-Lipschitz, so errors pass through as a max.
    decayed = b2 * u
    d_bound = float(b2) * u_err + e * _f(decayed) + eta
    mag = np.abs(g)
    mag_bound = np.asarray(g_err, dtype=np.float64) + 0.0 * ag
    if variant.epsilon == "inside":
        mag = mag + eps
        mag_bound = mag_bound + e * _f(mag) + eta
    elif variant.epsilon == "inside_decay":
        decayed = decayed + eps
        d_bound = d_bound + e * _f(decayed) + eta
    u_new = np.maximum(decayed, mag)
    u_bound = np.maximum(d_bound, mag_bound)
    # denominator
    if variant.epsilon == "outside":
        den = u_new + eps
        den_bound = u_bound + e * _f(den) + eta
    else:
        den = u_new
        den_bound = u_bound
    # step size lr_t = lr / (1 - b1**t)
    if variant.bias_correction:
        p = exact.pow_(b1, int(s.t)) if float(s.t) == int(s.t) else b1 ** s.t
        fp = float(p)
        p_bound = POW_ROUNDINGS * e * fp + eta
        if s.t_err and fb1 > 0:
            p_bound += fp * abs(math.log(fb1)) * s.t_err
        c = one - p
        c_bound = p_bound + e * float(c)
        lr_t = s.lr / c
        rel_lr_t = float(s.lr_err) / max(float(s.lr), 1e-300) + c_bound / float(c)
    else:
        lr_t = s.lr
        rel_lr_t = float(s.lr_err) / max(float(s.lr), 1e-300)
    delta = lr_t * m_new / den
    flr_t = float(lr_t)
    aden = _f(den)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_den = np.where(den_bound < aden, den_bound / (aden - den_bound), np.inf)
        quot = np.where(aden > 0, flr_t / aden, np.inf)
    adelta = _f(delta)
    with np.errstate(invalid="ignore"):
        rel = np.nan_to_num(rel_lr_t + rel_den + 3 * e, nan=np.inf)
    m_bound_arr = np.asarray(m_bound, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        carried = np.where(m_bound_arr > 0, quot * m_bound_arr, 0.0)
    delta_bound = (
        carried
        + np.where(adelta > 0, adelta * rel, 0.0)
        + 4 * eta * max(1.0, flr_t)
    )
    w_new = w - delta
    w_bound = np.broadcast_to(delta_bound + e * _f(w_new) + eta, np.shape(w))
    m_bound = np.broadcast_to(m_bound, np.shape(w))
    u_bound = np.broadcast_to(u_bound, np.shape(w))
    obj = lambda x: np.asarray(x, dtype=object)  # noqa: E731  (0-d results come back as scalars)
    return StepOut(
        w=obj(w_new), m=obj(m_new), u=obj(u_new),
        w_bound=SAFETY * w_bound, m_bound=SAFETY * m_bound, u_bound=SAFETY * u_bound,
        delta=obj(delta),
    )
