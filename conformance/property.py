"""What a property of the suite is: one checked clause of ``docs/spec.md``.

A :class:`Property` draws examples from a strategy and either judges the target's trajectory
with the reference (``check is None``) or applies its own rule (``check``); a failing example
becomes a :class:`Finding`.  The records themselves are in :mod:`.properties`, one module per
chapter of the spec; :mod:`.engine` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from adamax_spec.profiles import PROFILES, Profile
from adamax_spec.reference.verdict import Verdict

from .case import Case, Target, Trajectory

__all__ = ["MINIMIZE_BUDGET", "SHRINK_BUDGET", "Check", "Finding", "Property", "profile_rules"]

#: Target runs hypothesis may spend shrinking one property's failure; past it the smallest
#: failing example found so far is reported (a count, not a time: runs stay deterministic).
SHRINK_BUDGET = 25
#: Target runs the engine may spend minimizing a shrunk failure (:mod:`.minimize`: fewer steps,
#: parameters, rows and columns, simpler values), each candidate kept only if it still fails
#: the same way; past it the smallest failing case so far is reported.
MINIMIZE_BUDGET = 40


def profile_rules(variant: str) -> Profile | None:
    """The profile record of ``variant``, or ``None`` for a name no profile has (then no
    profile-specific rule applies: one step counter, NaN propagates, no clipping, no words).

    Profile rules the reference's variant table does not carry (docs/spec.md S-2, N-1, C-*,
    V-args) are read from these records: step_counter, nan_in_max, clipping,
    validates_hyperparameters, rejects_unknown_kwargs, words."""
    return PROFILES.get(variant)


@dataclass
class Finding:
    """Why one example failed: ``kind`` "fail" (the target) or "error" (the suite itself).

    ``structural``: a fault of the run itself (the target raised, modified its inputs, returned
    wrong shapes, dtype or device), which ``owner`` (``I-1``, ``D-1``; ``None``: the first
    property that meets it) reports for the whole run; ``raised``: the target's exception.
    ``drawn``: the example as the property drew it (the case, or the case with more data), which
    a reproducer replays."""

    message: str
    case: Case | None = None
    verdict: Verdict | None = None
    kind: str = "fail"
    diagnosis: str = ""
    structural: bool = False
    owner: str | None = None
    raised: BaseException | None = None
    drawn: Any = None


#: ``check(target, drawn example, variant, run) -> Finding | None``; ``run(case)`` runs the
#: target with the time limit and the structural checks; raise Unsupported to skip an example.
Check = Callable[[Target, Any, str, Callable[[Case], Trajectory]], Finding | None]


@dataclass(frozen=True)
class Property:
    """One checked clause of ``docs/spec.md``: ``id`` is the clause id."""

    id: str
    title: str
    needs: frozenset[str]
    strategy: Callable[[], st.SearchStrategy[Any]]
    check: Check | None = None  # None: run the target, judge with the reference
    scale: Callable[[int], int] = field(default=lambda n: n)  # examples for a run of n
    shrink: int = SHRINK_BUDGET  # target runs allowed for shrinking a failure (long cases: few)
    minimize: int = MINIMIZE_BUDGET  # target runs allowed for minimizing it after (long cases: few)
