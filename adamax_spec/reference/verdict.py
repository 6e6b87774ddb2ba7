"""Judge a target's trajectory against the reference, element by element, step by step.

For every step the reference starts from the *target's own* weights (and
its own ``m``/``u`` when the target exposes them), so errors never accumulate
in the weights and a bug shows at the step where it happens.  Hidden state is
carried exactly by the reference, with its bound carried along (the moment
recurrences contract, so that bound stays small).

Hyperparameters: a correct target may use them as passed (torch, in Python
doubles), rounded to its dtype (optax), or rounded to float32 first (Keras,
which also rounds the step count to the dtype).  Each is an *interpretation*
(:mod:`.interpretations`); a target conforms if one interpretation keeps every
comparison within bound.  :func:`judge` tries them in order and returns the
first that passes, or, where all fail, the least bad.

Speed: a cheap float64 run of each interpretation (:mod:`.screens`) ranks the
elements; where it expects an interpretation to fail and a later one to pass,
the few elements it expects to fail first are judged exactly (:func:`_probe`):
a failing probe proves that interpretation fails without judging it in full.

The parts: :mod:`.inputs` (clipped, coalesced gradients; the trajectory as flat
arrays, made once per call), :mod:`.evaluate` (one interpretation, teacher
forced, at 256 bits), :mod:`.screens` (float64 ranking and certification),
:mod:`.comparisons` (:class:`Comparison`, :class:`Verdict`, how a verdict is
concluded).  This module keeps the public names: :func:`judge`,
:class:`Verdict`, :class:`Comparison`, :func:`interpretations`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adamax_spec.reference import exact, screens
from adamax_spec.reference.comparisons import Comparison, Verdict
from adamax_spec.reference.evaluate import judge_one
from adamax_spec.reference.formats import Format, fmt
from adamax_spec.reference.inputs import Grad, Observed, gradients
from adamax_spec.reference.interpretations import effective, interpretations
from adamax_spec.reference.model import VARIANTS, Variant

__all__ = ["Comparison", "Verdict", "interpretations", "judge"]


def judge(case: Any, traj: Any, variant: str | Variant, *, max_failures: int = 5,
          per_step: bool = False) -> Verdict:
    """Verdict of ``traj`` (what the target did) on ``case`` under ``variant``.

    ``per_step`` also fills :attr:`Verdict.per_step` (for plots; costs one exact
    evaluation per compared element)."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    f = fmt(case.dtype)
    with np.errstate(all="ignore"), exact.working_precision():
        grads = gradients(case, v, f)
        obs = Observed(case, traj)
        cands = effective(case, interpretations(case.hyper, case.dtype))
        full: dict[str, Verdict] = {}
        lower: dict[str, float] = {}  # interpretations an exact probe proved failing: max_ratio >= this
        estimates: dict[str, list[np.ndarray] | None] = {}

        big = sum(int(np.size(p)) for p in case.params) * case.steps >= screens.SCREEN_MIN

        def screen(n: str) -> list[np.ndarray] | None:
            if n not in estimates:
                estimates[n] = screens.estimate_ratios(case, obs, grads, v, cands[n]) if big and _probeable(grads) \
                    else None
            return estimates[n]

        def expect_fail(n: str) -> bool:
            sc = screen(n)
            return sc is not None and any(x.size and x.max() > 1.0 for x in sc)

        names = list(cands)
        for j, (name, interp) in enumerate(cands.items()):
            # probe only where the screen expects this one to fail and a later one to pass (where it
            # expects all to fail, every one is judged in full anyway, to find the least bad)
            if len(cands) > 1 and expect_fail(name) and any(not expect_fail(n) for n in names[j + 1:]):
                probe = _probe(case, obs, grads, v, f, name, interp, screen(name))
                if probe is not None and not probe.ok:
                    lower[name] = probe.max_ratio
                    continue
            verdict = judge_one(case, obs, grads, v, f, name, interp, max_failures, per_step)
            if verdict.ok:  # every earlier interpretation fails (exactly): the same one as judging all
                return verdict
            full[name] = verdict
        # All fail: the verdict is the first interpretation with the smallest max_ratio.  One proved
        # failing by a probe can only matter if its lower bound does not exceed the best judged so far.
        while True:
            cur = min((x.max_ratio for x in full.values()), default=math.inf)
            pending = [n for n in lower if n not in full and lower[n] <= cur]
            if not pending:
                break
            n = min(pending, key=lambda n: lower[n])
            full[n] = judge_one(case, obs, grads, v, f, n, cands[n], max_failures, per_step)
        best: Verdict | None = None
        for name in cands:
            if name in full and (best is None or full[name].max_ratio < best.max_ratio):
                best = full[name]
    assert best is not None
    return best


#: elements a probe judges exactly (those the float64 screen ranks worst)
PROBE_ELEMENTS = 4


def _probeable(grads: list[list[Grad | None]]) -> bool:
    """Whether every parameter has a dense gradient at every step (a probe picks elements)."""
    return not any(g is None or g.idx is not None for row in grads for g in row)


def _probe(case: Any, obs: Observed, grads: list[list[Grad | None]], v: Variant, f: Format, name: str,
           interp: dict, score: list[np.ndarray] | None) -> Verdict | None:
    """The exact verdict of ``interp`` on the few elements (and the steps up to the last one) that a
    float64 screen ranks worst, or ``None`` where the case does not allow it (sparse or missing
    gradients, NaN/inf inputs).

    Sound: with teacher forcing and clipping done beforehand, the comparisons of one element at
    step ``k`` depend only on that element's inputs at steps ``1..k`` and on per-step scalars, so
    the probe's comparisons are exactly those of the full judgement: a failing probe proves the
    interpretation fails, with ``max_ratio`` at least the probe's.  The screen only picks the
    elements; it proves nothing (a passing probe is followed by the full judgement).
    """
    if score is None:
        return None
    flat_scores = np.concatenate([sc.max(axis=0) for sc in score])
    if not flat_scores.size or flat_scores.max() <= 1.0:  # the screen expects a pass: judge in full
        return None
    # the elements the screen expects to fail earliest (a shorter probe), the worst first among equals
    first = np.concatenate([np.where((sc > 1.0).any(axis=0), np.argmax(sc > 1.0, axis=0), sc.shape[0])
                            for sc in score])
    order = np.lexsort((-flat_scores, first))[:PROBE_ELEMENTS]
    order = order[first[order] < len(grads)]
    sizes = np.cumsum([0] + [sc.shape[1] for sc in score])
    picks = [order[(order >= sizes[i]) & (order < sizes[i + 1])] - sizes[i] for i in range(len(score))]
    last = int(first[order].max()) + 1
    sub_case = _SubCase([obs.start[i][picks[i]] for i in range(len(picks))], last, case.hyper, case.dtype)
    sub_obs = Observed.__new__(Observed)
    sub_obs.start = list(sub_case.params)
    sub_obs.w = [[x[picks[i]] for i, x in enumerate(ps)] for ps in obs.w[:last]]
    sub_obs.m = [None if ms is None else [x[picks[i]] for i, x in enumerate(ms)] for ms in obs.m[:last]]
    sub_obs.u = [None if us is None else [x[picks[i]] for i, x in enumerate(us)] for us in obs.u[:last]]
    sub_grads: list[list[Grad | None]] = [
        [g.pick(picks[i]) for i, g in enumerate(row) if g is not None] for row in grads[:last]]
    return judge_one(sub_case, sub_obs, sub_grads, v, fmt(case.dtype), name, interp, 1)


@dataclass
class _SubCase:
    """The few elements a probe judges, as a case of their own (what :func:`judge_one` reads)."""

    params: list[np.ndarray]
    steps: int
    hyper: dict[str, Any]
    dtype: str
