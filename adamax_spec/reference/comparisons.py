"""Comparisons and verdicts: what the judge records for each compared element, and how it concludes.

Each compared element (a weight, and ``m``, ``u`` where the target exposes them, at one
step) gives ``ratio = |actual - expected| / bound`` (:func:`ratio_to_bound`), with
``expected`` the exact update of the reference and ``bound`` what a correct target's
rounding may add; ``ratio <= 1`` passes.  NaN where a number was due (or the reverse)
is off by any bound (``inf``); both NaN agree.  Values a step must not touch (no
gradient, rows a lazy sparse step skips) must stay bit-identical (:func:`unchanged`,
:func:`same_state`).

The ratios of all steps and parameters are gathered in a :class:`Found`, as parallel
arrays; :func:`make_verdict` then picks the worst comparison and the first failures
(ordered by step, parameter and quantity: m and u before the w computed from them) and
builds their :class:`Comparison` only for those, from the makers recorded with each block.
A comparison whose bound is the underflow allowance alone (a value the rule determines
exactly) is described by its absolute error, not by an astronomical ratio to that bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adamax_spec.reference import exact
from adamax_spec.reference.formats import fmt, ulp
from adamax_spec.reference.model import Variant

__all__ = ["UNDERFLOW_ALLOWANCE", "Comparison", "Found", "Verdict", "exact_nan", "make_verdict", "ratio_to_bound",
           "same_state", "unchanged"]

#: A bound of at most this many smallest normals is the underflow allowance alone (the bounds of
#: docs/error-model.md add a few ``tiny`` per operation): :attr:`Comparison.exact`.
UNDERFLOW_ALLOWANCE = 8


@dataclass
class Comparison:
    """One compared element: where, what was expected and found, and by how much it is off."""

    step: int
    param: int
    index: tuple[int, ...]
    quantity: str  # "w" | "m" | "u" | "w (must be unchanged)"
    expected: float
    actual: float
    bound: float
    ratio: float  # |actual - expected| / bound  (inf for NaN where a number was due)
    ulps: float  # |actual - expected| in ULPs of the target's dtype
    tiny: float = 0.0  # the smallest normal number of the target's dtype

    @property
    def exact(self) -> bool:
        """Whether the bound is the underflow allowance alone (a few ``tiny``) and both values are
        finite: the rule leaves no rounding to this value (it is exact, zero or subnormal), so any
        real error is an astronomical multiple of the bound, and the absolute error says more."""
        return (0 < self.bound <= UNDERFLOW_ALLOWANCE * self.tiny and math.isfinite(self.expected)
                and math.isfinite(self.actual))

    def describe(self) -> str:
        where = f"step {self.step}, params[{self.param}]{list(self.index)}, {self.quantity}: "
        seen = f"expected {self.expected!r}, got {self.actual!r} "
        if self.exact:  # no ULP figure for an expected value below the smallest normal: its ULP is subnormal
            ulps = f", {self.ulps:.3g} ULP" if abs(self.expected) >= self.tiny else ""
            return (where + seen + f"(off by {abs(self.actual - self.expected):.3g}{ulps}, where the rule leaves "
                    f"no rounding: its bound {self.bound:.3g} is the underflow allowance alone)")
        return where + seen + f"({self.ratio:.3g} x bound, {self.ulps:.3g} ULP; bound {self.bound:.3g})"


@dataclass
class Verdict:
    """``compared`` counts the compared elements (``w``, and ``m``, ``u`` where observed, and
    the elements that had to stay unchanged), all steps and parameters."""

    ok: bool
    variant: str
    interpretation: str
    worst: Comparison | None
    failures: list[Comparison] = field(default_factory=list)
    compared: int = 0
    #: with ``judge(..., per_step=True)``: per step, the largest (error / bound, error in ULP)
    per_step: list[tuple[float, float]] = field(default_factory=list)

    @property
    def max_ratio(self) -> float:
        return 0.0 if self.worst is None else self.worst.ratio


@dataclass
class Found:
    """Comparisons gathered for ranking: parallel arrays, one entry per compared element."""

    keys: list[np.ndarray] = field(default_factory=list)  # (step, param, order, flat) columns
    ratio: list[np.ndarray] = field(default_factory=list)
    makers: list[Any] = field(default_factory=list)  # per block: callable(j) -> Comparison
    count: int = 0

    def add(self, step: Any, param: Any, order: int, flat: np.ndarray, ratio: np.ndarray,
            maker: Any) -> None:
        n = ratio.size
        self.count += n
        if n:
            self.keys.append(np.stack([np.broadcast_to(step, n), np.broadcast_to(param, n),
                                       np.full(n, order), flat]).astype(np.int64))
            self.ratio.append(ratio)
            self.makers.append((maker, n))


def ratio_to_bound(diff: np.ndarray, bound: np.ndarray, actual: np.ndarray, expected_is_nan: Any) -> np.ndarray:
    """``|actual - expected| / bound``; inf for NaN where a number was due."""
    ratio = np.where(bound > 0, diff / bound, np.where(diff > 0, np.inf, 0.0))
    act_nan = np.isnan(actual)
    # A NaN where a number is due, or a number where NaN is due, is off by any bound; both NaN
    # agree; a NaN difference otherwise means the same infinity on both sides, which agrees.
    ratio = np.where(act_nan != expected_is_nan, np.inf, ratio)
    # An infinite bound says a correct target's rounding may reach a zero denominator (u + eps
    # underflowing to 0 in float16, say): 0/0 = NaN is then one of the results it may give.
    ratio = np.where(act_nan & ~expected_is_nan & np.isinf(bound), 0.0, ratio)
    return np.where(np.isnan(ratio), 0.0, ratio)


def exact_nan(actual: np.ndarray, expected: Any, diff: np.ndarray) -> np.ndarray:
    """Whether the exact expected value is NaN, evaluated only where ``actual`` or the
    difference ``diff`` is NaN (elsewhere the expected value is a number)."""
    out = np.zeros(actual.shape, dtype=bool)
    for j in np.flatnonzero(np.isnan(actual) | np.isnan(diff)):
        x = expected(j)
        out[j] = x != x
    return out


def unchanged(found: Found, actual: np.ndarray, before: np.ndarray, flat: np.ndarray, step: int,
              param: int, dtype: str) -> None:
    """Values that must stay bit-identical (no gradient, or rows a lazy step does not touch)."""
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(before, dtype=np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    ratio = np.where(same, 0.0, np.inf)
    diff = np.abs(a - b)

    def maker(j: int) -> tuple[float, float]:
        return float(b[j]), float(a[j])

    found.add(np.int64(step), np.int64(param), -1, flat, ratio, (maker, np.zeros(a.shape), diff,
                                                                  "w (must be unchanged)"))


def same_state(found: Found, actual: np.ndarray, state: list[Any], flat: np.ndarray, step: int,
               param: int, q: str, dtype: str) -> None:
    """State rows a lazy step does not touch: compared with the state before the step."""
    ref = state[0][flat]
    bnd = state[2][flat] if isinstance(state[2], np.ndarray) else np.zeros(flat.shape)
    diff = np.abs(exact.to_float(actual.astype(object) - ref))
    nan_q = exact_nan(actual, lambda j: ref[j], diff)

    def maker(j: int) -> tuple[float, float]:
        return float(ref[j]), float(actual[j])

    found.add(np.int64(step), np.int64(param), 1 if q == "m" else 2, flat, ratio_to_bound(diff, bnd, actual, nan_q),
              (maker, bnd, diff, q))


def make_verdict(found: Found, v: Variant, name: str, max_failures: int, shapes: list[tuple[int, ...]],
                 dtype: str, per_step: bool = False, steps: int = 0) -> Verdict:
    """The verdict of interpretation ``name`` from its gathered comparisons: the worst one, the first
    ``max_failures`` failures (by step, parameter, quantity), and with ``per_step`` the per-step series."""
    if not found.ratio:
        return Verdict(True, v.name, name, None, [], found.count, [(0.0, 0.0)] * steps if per_step else [])
    keys = np.concatenate(found.keys, axis=1)
    ratio = np.concatenate(found.ratio)
    r = np.nan_to_num(ratio, nan=-1.0)
    # order: step, parameter, quantity in the order a step computes them (unchanged, m, u, then w,
    # which is computed from them: a wrong u is named before the w it made wrong), worst ratio first
    q = np.where(keys[2] == 0, 3, keys[2])
    top = np.flatnonzero(r == r.max())
    worst_j = int(top[np.lexsort((q[top], keys[1, top], keys[0, top]))[0]])
    bad = np.flatnonzero(r > 1.0)
    bad = bad[np.lexsort((-r[bad], q[bad], keys[1, bad], keys[0, bad]))][:max_failures]
    starts = np.cumsum([0] + [n for _, n in found.makers])

    def comparison(j: int) -> Comparison:
        b = int(np.searchsorted(starts, j, side="right")) - 1
        (maker, bnd, diff, q), _ = found.makers[b]
        o = j - int(starts[b])
        expected, actual = maker(o)
        step, param, flat = int(keys[0, j]), int(keys[1, j]), int(keys[3, j])
        idx = tuple(int(x) for x in np.unravel_index(flat, shapes[param])) if shapes[param] else ()
        ulps = float(diff[o] / ulp(np.asarray(expected), dtype))
        if np.isnan(actual) and not np.isnan(expected):
            ulps = math.inf
        return Comparison(step, param, idx, q, expected, actual, float(bnd[o]), float(ratio[j]), ulps,
                          fmt(dtype).tiny)

    worst = comparison(worst_j)
    failures = [comparison(int(j)) for j in bad]
    series: list[tuple[float, float]] = []
    if per_step:
        r_step, u_step = np.zeros(steps), np.zeros(steps)
        np.maximum.at(r_step, keys[0] - 1, np.where(ratio == ratio, ratio, 0.0))
        for j in range(ratio.size):
            c = comparison(j)
            u_step[c.step - 1] = max(u_step[c.step - 1], 0.0 if c.ulps != c.ulps else c.ulps)
        series = list(zip(r_step.tolist(), u_step.tolist(), strict=True))
    return Verdict(not failures, v.name, name, worst, failures, found.count, series)
