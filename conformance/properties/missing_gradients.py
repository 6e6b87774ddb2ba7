"""docs/spec.md, "Missing gradients": S-2, a parameter without gradient stays bit-identical.

Judged by the reference (:mod:`.judging`); under a per-parameter step counter (profile
``torch``) each parameter is judged alone, and :func:`unchanged_failure` checks the steps in
which it had no gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import strategies as S
from ..case import Case, Trajectory
from ..property import Property
from .inputs_dtype_device import same

__all__ = ["S_2", "unchanged_failure"]

S_2 = Property("S-2", "a parameter without gradient stays bit-identical; step counter per profile",
               frozenset({"none_grad"}), lambda: S.none_grad_cases())


def unchanged_failure(case: Case, traj: Trajectory, i: int, k: int) -> str | None:
    """Step ``k`` gave params[i] no gradient: w (and the state, where seen) must be bit-identical."""
    seqs: list[tuple[str, list[Any], Any]] = [("w", traj.params, case.params[i]), ("m", traj.m, None),
                                             ("u", traj.u, None)]
    for q, seq, first in seqs:
        now: Any = seq[k][i] if k < len(seq) and seq[k] is not None else None
        if now is None:
            continue
        prev: Any
        if k == 0:
            prev = first if first is not None else np.zeros(np.shape(now))
        else:
            p = seq[k - 1]
            prev = None if p is None else p[i]
        if prev is not None and not same(np.asarray(now, float), np.asarray(prev, float)):
            return (f"step {k + 1}: params[{i}] had no gradient but its {q} changed "
                    "(S-2: it must stay bit-identical)")
    return None
