"""Minimizing a failure after hypothesis has shrunk it: the smallest case that still fails the same way.

Hypothesis shrinks within its budget and by its own measure of size; a report needs the case a
reader can follow.  :func:`minimize` tries smaller candidates of the failing example in a fixed
order, runs each against the target once (the same check as the run, :func:`.trial.outcome`),
and keeps one only if it still fails the same way (:func:`same_failure`); at most ``budget``
target runs.  Deterministic: no randomness, the same failure gives the same minimum.

The rules, in order (each repeated on the result of the last that succeeded):

0. **two blocks**: a long dense run (more than :data:`LONG_RUN` steps, as T-1's 2,049 and more)
   given the first step's gradient ``g`` for half its steps and ``-g`` for the rest, else ``g``
   throughout (a reproducer writes ``[g] * n + [-g] * n``);
1. **cut after the first failing step** (teacher-forced judging and causality: later steps
   cannot change an earlier result); with no step in the message, the shortest prefix of 1, 2,
   4, ... steps that still fails;
2. **drop parameters**: the failing parameter alone, else each other one in turn;
3. **simpler earlier steps** (where rule 0 did not apply): in a long dense run, every step before
   the failing one given the first step's gradient, else zeros (``[g] * n + [last]``); in a
   short run, each earlier step dropped in turn;
4. **fewer rows and columns**: along each axis of each parameter, the failing index alone, else
   the half that holds it (rows of a sparse gradient follow); then each entry of a sparse
   gradient dropped in turn;
5. **simpler values**: every weight and gradient ``1.0`` or ``-1.0`` (zeros and non-finite
   values kept), else to one significant digit, and hyperparameters to one (a beta to two where
   one would make it 1);
6. **fewer repeats** of a repeated gradient (bisection).

A rule that a property's example does not allow is not tried (N-1 marks non-finite gradients by
flat index: its shapes and repeated steps stay as drawn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from adamax_spec.reference.formats import round_to

from .case import Case, SparseGrad
from .diagnosis import MARGINAL
from .property import Finding
from .trial import case_of, failing_element, failing_step, signature

__all__ = ["LONG_RUN", "minimize", "same_failure"]

#: a run longer than this many steps has its earlier steps made uniform (rule 3), not dropped one by one
LONG_RUN = 8

Where = list[tuple[int, int, int, float]]


def same_failure(a: Finding, b: Finding | None) -> bool:
    """Does ``b`` fail the way ``a`` does?  Structural faults and rule checks: the same message
    but for its numbers (:func:`.trial.signature`); reference verdicts: the same first wrong
    quantity (``w``, ``m``, ``u``, or a value that had to stay unchanged), in the same frame (a
    parameter group, a parameter alone, N-1's finite elements), and no rounding-level failure
    standing in for a clear one."""
    if b is None or b.kind != a.kind or b.structural != a.structural or (a.verdict is None) != (b.verdict is None):
        return False
    if a.verdict is None or b.verdict is None:
        return signature(a.message) == signature(b.message)
    if not a.verdict.failures or not b.verdict.failures:
        return False
    if a.verdict.failures[0].quantity != b.verdict.failures[0].quantity:
        return False
    if a.verdict.max_ratio >= MARGINAL > b.verdict.max_ratio:
        return False
    return _frame(a.message) == _frame(b.message)


def _frame(message: str) -> tuple[bool, ...]:
    return (message.startswith("elements with finite gradients"), "(parameter group" in message,
            "its step count" in message)


@dataclasses.dataclass
class _Example:
    """A drawn example taken apart: its case, and N-1's non-finite positions (``where``)."""

    case: Case
    where: Where | None

    @staticmethod
    def of(drawn: Any) -> _Example | None:
        case = case_of(drawn)
        if case is None:
            return None
        if isinstance(drawn, Case):
            return _Example(case, None)
        if len(drawn) == 2 and isinstance(drawn[1], list):
            return _Example(case, list(drawn[1]))
        return None

    def drawn(self) -> Any:
        return self.case if self.where is None else (self.case, self.where)

    def with_case(self, **changes: Any) -> Case:
        return dataclasses.replace(self.case, **changes)


class _Search:
    """The current smallest failure, and the target runs spent finding it."""

    def __init__(self, finding: Finding, attempt: Callable[[Any], Finding | None], budget: int) -> None:
        self.best, self.attempt, self.budget, self.runs = finding, attempt, budget, 0

    @property
    def left(self) -> bool:
        return self.runs < self.budget

    @property
    def example(self) -> _Example:
        ex = _Example.of(self.best.drawn)
        assert ex is not None
        return ex

    def tries(self, ex: _Example) -> bool:
        """Run the candidate; keep it if it fails the same way."""
        if not self.left:
            return False
        self.runs += 1
        try:
            found = self.attempt(ex.drawn())
        except Exception:  # unsupported, timed out, or the suite's own error: not the same failure
            return False
        if not same_failure(self.best, found):
            return False
        assert found is not None
        if found.drawn is None:
            found.drawn = ex.drawn()
        self.best = found
        return True


def minimize(finding: Finding, attempt: Callable[[Any], Finding | None], budget: int) -> tuple[Finding, int]:
    """The smallest failing example found from ``finding`` (whose ``drawn`` is the example), and
    the target runs spent.  ``attempt(drawn)`` checks one example as the run does (``None``: it
    passes).  A finding without a minimizable example is returned as it is."""
    if finding.kind != "fail" or _Example.of(finding.drawn) is None or budget <= 0:
        return finding, 0
    s = _Search(finding, attempt, budget)
    blocks = _two_blocks(s)
    _cut(s)
    _drop_parameters(s)
    repeats = False if blocks else _earlier_steps(s)
    _shapes(s)
    _sparse_entries(s)
    _values(s)
    if repeats:
        _fewer_repeats(s)
    return s.best, s.runs


# -- rule 1: steps after the first failing one ------------------------------------------------------


def _truncate(ex: _Example, k: int) -> _Example:
    at = ex.case.checkpoint_at
    case = ex.with_case(grads=ex.case.grads[:k], checkpoint_at=None if at is None else min(at, k))
    where = None if ex.where is None else [w for w in ex.where if w[0] < k]
    return _Example(case, where)


def _cut(s: _Search) -> None:
    steps = s.example.case.steps
    k = failing_step(s.best.message)
    if k is not None and 0 < k < steps:
        s.tries(_truncate(s.example, k))
        return
    if k is None:
        n = 1
        while n < steps and s.left and not s.tries(_truncate(s.example, n)):
            n *= 2


# -- rule 2: parameters ---------------------------------------------------------------------------


def _keep_params(ex: _Example, keep: list[int]) -> _Example:
    c = ex.case
    groups = None if c.group_hyper is None else tuple(c.group_hyper[i] for i in keep)
    case = dataclasses.replace(c, params=[c.params[i] for i in keep],
                               grads=[[step[i] for i in keep] for step in c.grads], group_hyper=groups)
    where = None
    if ex.where is not None:
        where = [(k, keep.index(i), j, v) for k, i, j, v in ex.where if i in keep]
    return _Example(case, where)


def _drop_parameters(s: _Search) -> None:
    n = len(s.example.case.params)
    if n < 2:
        return
    at = failing_element(s.best.message)
    if at is not None and at[0] < n and s.tries(_keep_params(s.example, [at[0]])):
        return
    for i in reversed(range(n)):
        n = len(s.example.case.params)
        if n < 2 or not s.left:
            return
        if i < n:
            s.tries(_keep_params(s.example, [j for j in range(n) if j != i]))


# -- rule 3: earlier steps ------------------------------------------------------------------------


def _dense(case: Case) -> bool:
    return all(isinstance(g, np.ndarray) for step in case.grads for g in step)


def _uniform(ex: _Example, first: list[Any], repeats: int) -> _Example:
    """``repeats`` steps of the gradients ``first``, then the last step; with ``repeats`` equal
    to the steps, every step is ``first``."""
    last = [] if repeats >= ex.case.steps else [ex.case.grads[-1]]
    grads = [list(first) for _ in range(repeats)] + last
    return _Example(ex.with_case(grads=grads, checkpoint_at=None), ex.where)


def _drop_step(ex: _Example, j: int) -> _Example:
    c = ex.case
    at = c.checkpoint_at
    if at is not None and at > j:
        at -= 1
    case = dataclasses.replace(c, grads=c.grads[:j] + c.grads[j + 1:], checkpoint_at=at)
    where = None
    if ex.where is not None:
        where = [(k - (k > j), i, e, v) for k, i, e, v in ex.where if k != j]
    return _Example(case, where)


def _earlier_steps(s: _Search) -> bool:
    """Rule 3; whether the earlier steps are now one repeated gradient (rule 6 may shorten them)."""
    ex = s.example
    c = ex.case
    if _long(ex):
        n = c.steps - 1
        for first in (c.grads[0], [np.zeros(np.shape(g)) for g in c.grads[0]]):
            if s.tries(_uniform(ex, first, n)):
                return True
        return False
    j = 0
    while j < s.example.case.steps - 1 and s.left:
        if not s.tries(_drop_step(s.example, j)):
            j += 1
    return False


def _long(ex: _Example) -> bool:
    c = ex.case
    return c.steps > LONG_RUN and ex.where is None and c.checkpoint_at is None and _dense(c)


def _two_blocks(s: _Search) -> bool:
    """Rule 0, before the cut, for a long dense run: the first step's gradient ``g`` for the first
    half of the steps and ``-g`` for the rest (the weights come back near where they started, so
    their rounding stays small, while ``m`` stays of the order of ``g``), else ``g`` throughout;
    a reproducer writes either as one or two repeated steps."""
    ex = s.example
    if not _long(ex):
        return False
    c = ex.case
    g = list(c.grads[0])
    neg = [-np.asarray(x) for x in g]
    half = c.steps // 2
    for grads in ([g] * half + [neg] * (c.steps - half), [g] * c.steps):
        if s.tries(_Example(ex.with_case(grads=[list(step) for step in grads]), ex.where)):
            return True
    return False


def _fewer_repeats(s: _Search) -> None:
    c = s.example.case
    lo, hi = 0, c.steps - 1  # the failure needs more than lo repeats, hi are enough
    first = c.grads[0]
    while lo < hi and s.left:
        mid = (lo + hi) // 2
        if s.tries(_uniform(s.example, first, mid)):
            hi = mid
        else:
            lo = mid + 1


# -- rule 4: rows and columns ---------------------------------------------------------------------


def _take(ex: _Example, i: int, axis: int, keep: np.ndarray) -> _Example:
    """Parameter ``i`` (and its gradients) keeping the indices ``keep`` along ``axis``."""
    c = ex.case

    def cut(g: Any) -> Any:
        if g is None:
            return None
        if isinstance(g, SparseGrad):
            shape = list(g.dense_shape)
            shape[axis] = len(keep)
            if axis == 0:
                pos = {int(r): n for n, r in enumerate(keep)}
                sel = np.array([int(r) in pos for r in g.indices], dtype=bool)
                idx = np.array([pos[int(r)] for r in g.indices[sel]], dtype=np.int64)
                return SparseGrad(idx, np.asarray(g.values)[sel], tuple(shape))
            return SparseGrad(g.indices, np.take(g.values, keep, axis=axis), tuple(shape))
        return np.take(g, keep, axis=axis)

    params = list(c.params)
    params[i] = np.take(c.params[i], keep, axis=axis)
    grads = [[cut(g) if n == i else g for n, g in enumerate(step)] for step in c.grads]
    return _Example(dataclasses.replace(c, params=params, grads=grads), ex.where)


def _shapes(s: _Search) -> None:
    if s.example.where is not None:
        return
    at = failing_element(s.best.message)
    n = len(s.example.case.params)
    order = ([at[0]] if at is not None and at[0] < n else []) + [i for i in range(n) if at is None or i != at[0]]
    for i in order:
        for axis in range(np.ndim(s.example.case.params[i])):
            while s.left:
                size = np.shape(s.example.case.params[i])[axis]
                if size < 2:
                    break
                at = failing_element(s.best.message)
                j = at[1][axis] if at is not None and at[0] == i and axis < len(at[1]) else 0
                j = min(j, size - 1)
                if s.tries(_take(s.example, i, axis, np.array([j]))):
                    break
                half = np.arange(0, size // 2) if j < size // 2 else np.arange(size // 2, size)
                if not s.tries(_take(s.example, i, axis, half)):
                    break


def _drop_entry(ex: _Example, k: int, i: int, e: int) -> _Example:
    """Without entry ``e`` of the sparse gradient of parameter ``i`` at step ``k``."""
    c = ex.case
    g = c.grads[k][i]
    keep = np.arange(len(g.indices)) != e
    step = list(c.grads[k])
    step[i] = SparseGrad(g.indices[keep], np.asarray(g.values)[keep], g.dense_shape)
    return _Example(dataclasses.replace(c, grads=[*c.grads[:k], step, *c.grads[k + 1:]]), ex.where)


def _sparse_entries(s: _Search) -> None:
    """Rule 4, for sparse gradients: each entry (index and its row of values) dropped in turn."""
    k = 0
    while k < s.example.case.steps and s.left:
        step = s.example.case.grads[k]
        for i in range(len(step)):
            e = 0
            while s.left and isinstance(s.example.case.grads[k][i], SparseGrad) and \
                    e < len(s.example.case.grads[k][i].indices):
                if not s.tries(_drop_entry(s.example, k, i, e)):
                    e += 1
        k += 1


# -- rule 5: values -------------------------------------------------------------------------------


def _one_digit(a: Any, dtype: str) -> Any:
    """``a`` with each finite non-zero value to one significant digit, in ``dtype`` (a value
    that would overflow there, or become zero, is kept)."""
    if a is None:
        return None
    if isinstance(a, SparseGrad):
        return SparseGrad(a.indices, _one_digit(a.values, dtype), a.dense_shape)
    x = np.asarray(a, dtype=np.float64)
    flat = x.reshape(-1).copy()
    for n, v in enumerate(flat):
        if np.isfinite(v) and v != 0:
            r = float(round_to(float(f"{v:.1g}"), dtype))
            if np.isfinite(r) and r != 0:
                flat[n] = r
    return flat.reshape(x.shape)


def _unit(a: Any) -> Any:
    """``a`` with each finite non-zero value replaced by its sign (``1.0`` or ``-1.0``)."""
    if a is None:
        return None
    if isinstance(a, SparseGrad):
        return SparseGrad(a.indices, _unit(a.values), a.dense_shape)
    x = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(x) & (x != 0), np.sign(x), x)


def _simple_hyper(hyper: dict[str, Any]) -> dict[str, Any]:
    """The learning rate, betas and epsilon with the fewest significant digits (one or two) that
    keep a beta below 1; a beta below 1e-6 becomes 0."""
    out = dict(hyper)
    for key in ("learning_rate", "beta_1", "beta_2", "epsilon"):
        v = out.get(key)
        if not isinstance(v, float) or not np.isfinite(v) or v == 0:
            continue
        if key.startswith("beta") and 0 < v < 1e-6:  # a beta drawn next to 0 (a subnormal, say): 0
            out[key] = 0.0
            continue
        for digits in (1, 2):
            r = float(f"{v:.{digits}g}")
            if not key.startswith("beta") or 0 <= r < 1:
                out[key] = r
                break
    return out


def _simpler(ex: _Example, params: bool, grads: bool, hyper: bool) -> _Example:
    c = ex.case
    case = dataclasses.replace(
        c, hyper=_simple_hyper(c.hyper) if hyper else c.hyper,
        params=[_one_digit(p, c.dtype) for p in c.params] if params else c.params,
        grads=_uniform_map(c.grads, c.dtype) if grads else c.grads)
    return _Example(case, ex.where)


def _uniform_map(grads: list[list[Any]], dtype: str) -> list[list[Any]]:
    """Each gradient to one digit; a gradient repeated as one object (rule 3) is done once and
    stays one object."""
    done: dict[int, Any] = {}

    def simple(g: Any) -> Any:
        if id(g) not in done:
            done[id(g)] = _one_digit(g, dtype)
        return done[id(g)]

    return [[simple(g) for g in step] for step in grads]


def _changes(a: _Example, b: _Example) -> bool:
    return repr((a.case.params, a.case.grads, a.case.hyper)) != repr((b.case.params, b.case.grads, b.case.hyper))


def _values(s: _Search) -> None:
    c = s.example.case
    units = _Example(dataclasses.replace(c, params=[_unit(p) for p in c.params],
                                         grads=[[_unit(g) for g in step] for step in c.grads]), s.example.where)
    if _changes(units, s.example) and s.tries(units):
        c = s.example.case
        s.tries(_Example(dataclasses.replace(c, hyper=_simple_hyper(c.hyper)), s.example.where))
        return
    for params, grads, hyper in ((True, True, True), (True, False, False), (False, True, False),
                                 (False, False, True)):
        cand = _simpler(s.example, params, grads, hyper)
        if _changes(cand, s.example) and s.tries(cand) and (params and grads and hyper):
            return
