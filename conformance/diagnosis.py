"""Why did a failing case fail? A readable cause for a report: which known variant the case fits,
whether the failure is rounding-level, and patterns of sparse rows (duplicates, laziness)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from adamax_spec.reference.model import VARIANTS
from adamax_spec.reference.verdict import Verdict, judge

from .case import Case, SparseGrad, Trajectory
from .property import profile_rules

__all__ = ["MARGINAL", "diagnose"]

#: A failure below this many bounds is reported as rounding-level, not matched to another variant:
#: the known variants differ by orders of magnitude more on any case that tells them apart.
MARGINAL = 2.0


def _words(variant: str) -> str:
    """The short phrase a diagnosis uses for a variant (``Profile.words``), else its name."""
    rules = profile_rules(variant)
    return rules.words if rules is not None and rules.words else variant


def _sums_abs(variant: str) -> bool:
    """Does ``u`` of a repeated sparse row see ``sum_j |v_j|`` under ``variant`` (Keras 3)?"""
    rules = profile_rules(variant)
    return rules is not None and rules.sparse_magnitude == "sum_of_abs"


def _differences(a: str, b: str) -> list[str]:
    va, vb = VARIANTS[a], VARIANTS[b]
    out = []
    if va.epsilon != vb.epsilon:
        out.append("epsilon placement")
    if va.bias_correction != vb.bias_correction:
        out.append("bias correction")
    if va.lazy != vb.lazy:
        out.append("sparse laziness")
    return out


def _deduplicated(case: Case) -> Case | None:
    """The case with each sparse gradient keeping only the first value of every repeated index
    (a different but valid case: it isolates SP-2 from SP-1), or None if nothing repeats."""
    changed, grads = False, []
    for step in case.grads:
        out: list[Any] = []
        for g in step:
            idx = np.asarray(g.indices) if isinstance(g, SparseGrad) else None
            if isinstance(g, SparseGrad) and idx is not None and np.unique(idx).size < idx.size:
                _, first = np.unique(idx, return_index=True)
                first.sort()
                out.append(SparseGrad(idx[first].astype(np.int64), np.asarray(g.values)[first], g.dense_shape))
                changed = True
            else:
                out.append(g)
        grads.append(out)
    return Case(case.params, grads, case.hyper, case.dtype, case.checkpoint_at, case.label) if changed else None


def diagnose(case: Case, traj: Trajectory | None, variant: str, verdict: Verdict | None,
             run: Callable[[Case], Trajectory] | None = None) -> str:
    """A readable cause: which known variant the failing case fits, and sparse-row patterns.

    With ``run``, a failing sparse case with repeated indices is run again without the repeats,
    which separates SP-1 (duplicates) from SP-2 (laziness)."""
    lines = []
    if run is not None:
        alt = _deduplicated(case)
        if alt is not None:
            try:
                alt_traj = run(alt)
                alt_verdict = judge(alt, alt_traj, variant)
            except Exception:  # diagnosis is best effort
                alt_traj = None
            if alt_traj is not None:
                inner = diagnose(alt, alt_traj, variant, None if alt_verdict.ok else alt_verdict)
                lines.append("with each row named once (repeated indices dropped), the case "
                             + ("passes" if alt_verdict.ok else f"still fails ({inner or 'no known variant fits'})"))
    if verdict is not None and any(c.quantity.startswith("w (must be unchanged)") for c in verdict.failures) \
            and any(isinstance(g, SparseGrad) for s in case.grads for g in s):
        lines.append("rows the sparse gradient does not name changed: the target densifies sparse "
                     "gradients (not lazy; SP-2 sparse laziness)")
    if verdict is not None and verdict.failures:
        dup_rows = _duplicate_rows(case)
        failing = {(c.step, c.param, c.index[0] if c.index else None) for c in verdict.failures}
        if dup_rows and all(f in dup_rows for f in failing):
            clipped = any(case.hyper.get(k) is not None for k in ("clipvalue", "clipnorm", "global_clipnorm"))
            lines.append("every failing element is in a row named more than once by one sparse gradient: "
                         "duplicate indices are not combined as SP-1 requires for this profile (sum the "
                         + ("values for m, and |values| for u)" if _sums_abs(variant) else "values, then |g|)")
                         + (", or the rows are clipped once summed (C-1 clips the values as given)" if clipped else ""))
    if verdict is not None and verdict.max_ratio < MARGINAL:
        lines.append(f"marginal failure ({verdict.max_ratio:.3g} x bound): a rounding-level deviation "
                     "(operation order, hyperparameter rounding, accumulated error), not another variant")
    elif traj is not None and variant in VARIANTS:
        scores = {}
        for name in VARIANTS:
            if name == variant:
                continue
            try:
                v = judge(case, traj, name)
            except Exception:  # a diagnosis never breaks a report
                continue
            scores[name] = v
        fits = [n for n, v in scores.items() if v.ok]
        sparse = any(isinstance(g, SparseGrad) for s in case.grads for g in s)
        if fits:
            # what every fitting variant changes (b1 = 0 makes mlx equal keras3, and so on)
            common = set.intersection(*(set(_differences(variant, n)) for n in fits))
            what = sorted(w for w in common if sparse or w != "sparse laziness") or ["hyperparameter handling"]
            if _words(fits[0]) == _words(variant):  # one update rule: say it once, and what else differs
                ra, rb = profile_rules(variant), profile_rules(fits[0])
                if ra is not None and rb is not None and ra.step_counter != rb.step_counter:
                    what = [f"step counter (per {ra.step_counter} under {variant}, per {rb.step_counter} "
                            f"under {fits[0]})"]
                lines.append(f"the failing case fits variant {'/'.join(fits)}, not {variant}, which share "
                             f"one update rule ({_words(variant)}): {', '.join(what)}")
            else:
                lines.append(f"the failing case fits variant {'/'.join(fits)} "
                             f"({_words(fits[0])}), not {variant} "
                             f"({_words(variant)}): {', '.join(what)}")
        elif scores:
            best = min(scores, key=lambda n: scores[n].max_ratio)
            lines.append(f"the failing case fits no known variant (closest: {best}, "
                         f"{scores[best].max_ratio:.3g} x bound)")
    return "; ".join(lines)


def _duplicate_rows(case: Case) -> set[tuple[int, int, int | None]]:
    out: set[tuple[int, int, int | None]] = set()
    for k, step in enumerate(case.grads):
        for i, g in enumerate(step):
            if isinstance(g, SparseGrad):
                rows, counts = np.unique(np.asarray(g.indices), return_counts=True)
                out |= {(k + 1, i, int(r)) for r, c in zip(rows, counts, strict=True) if c > 1}
    return out
