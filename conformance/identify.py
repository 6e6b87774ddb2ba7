"""Which known Adamax variant does a target implement?

Probe cases are chosen so that every pair of variants differs far above the
error bound: gradients of the order of epsilon (where epsilon's placement
matters at order 1, not at one ULP), a first step (bias correction is a
factor ``1/(1-b1)`` = 10 at b1=0.9), a zero gradient after non-zero ones
(``u`` decays: Paddle's accumulated epsilon shows), and, for targets that
take sparse gradients, rows a sparse gradient does not name (lazy or not).
"""

from __future__ import annotations

import dataclasses
import traceback

import numpy as np

from adamax_spec.reference.model import VARIANTS
from adamax_spec.reference.verdict import judge

from .case import Case, SparseGrad, Target, Unsupported


def probes() -> list[Case]:
    eps = 1e-3
    h = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.5, "epsilon": eps}
    w = [np.array([1.0, -1.0, 0.5, 0.0])]
    g1 = np.array([2e-3, -5e-4, 1e-3, 0.25])
    grads = [[g1], [g1 * 0.5], [np.zeros(4)], [np.array([1e-3, 1e-3, -2e-3, 0.0])]]
    dense = Case(w, grads, h, "float64", label="probe-dense")
    table = np.arange(12, dtype=np.float64).reshape(4, 3) / 10
    sg = [[SparseGrad(np.array([1]), np.full((1, 3), 0.5), (4, 3))],
          [SparseGrad(np.array([2]), np.full((1, 3), -0.25), (4, 3))]]
    sparse = Case([table], sg, dict(h, beta_2=0.999), "float64", label="probe-sparse")
    return [dense, sparse]


#: the longest first line of a target's exception that a report line keeps
MESSAGE_CHARS = 240


def one_line(e: BaseException) -> str:
    """``type: first line of the message`` (cut at :data:`MESSAGE_CHARS`): a torch dispatcher
    error's message alone is ~90 lines, the first of them ~2,000 characters."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > MESSAGE_CHARS:
        first = first[:MESSAGE_CHARS].rstrip() + "..."
    more = " [...]" if len(text.splitlines()) > 1 else ""
    return f"{type(e).__name__}: {first}{more}" if first else type(e).__name__


def failing_step(target: Target, case: Case) -> int | None:
    """The first step at which ``target`` raises on ``case`` (runs of the case's first 1, 2, ...
    steps); ``None`` if no shorter run raises (then only the whole case does)."""
    for k in range(1, case.steps):
        try:
            at = case.checkpoint_at if case.checkpoint_at is None or case.checkpoint_at <= k else None
            target.run(dataclasses.replace(case, grads=case.grads[:k], checkpoint_at=at))
        except Unsupported:
            return None
        except Exception:
            return k
    return case.steps if case.steps else None


def identify(target: Target, *, verbose: bool = False) -> tuple[str, list[str]]:
    """``(variant name or "none", report lines)``.  A probe on which the target raises is one
    line (type, first line of the message, step); ``verbose`` adds the full traceback."""
    lines, fits = [], set(VARIANTS)
    for case in probes():
        try:
            traj = target.run(case)
        except Unsupported as e:
            lines.append(f"{case.label}: not supported ({e})")
            continue
        except Exception as e:  # a target that crashes on a valid probe fits no variant
            step = failing_step(target, case)
            where = f" at step {step} of {case.steps}" if step else ""
            lines.append(f"{case.label}: the target raised{where}: {one_line(e)}")
            if verbose:
                lines += "".join(traceback.format_exception(e)).rstrip().splitlines()
            fits = set()
            continue
        ok = set()
        for name in VARIANTS:
            v = judge(case, traj, name)
            lines.append(f"{case.label}: {name:7} {'fits' if v.ok else 'no'} (max {v.max_ratio:.3g} x bound)")
            if v.ok:
                ok.add(name)
        fits &= ok
    # keras and keras3 differ only on sparse rows; torch and optax are the same rule.
    if {"torch", "optax"} <= fits:
        fits -= {"optax"}
        fits = (fits - {"torch"}) | {"torch/optax"}
    if len(fits) == 1:
        return next(iter(fits)), lines
    if not fits:
        return "none", lines
    lines.append(f"ambiguous: {sorted(fits)} all fit the probes this target could run")
    return "/".join(sorted(fits)), lines
