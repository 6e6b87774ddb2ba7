"""docs/spec.md, "Hyperparameter values": H-1, epsilon ``None`` and ``0`` (the keras fallback),
subnormal and huge epsilons.

A subnormal or huge epsilon is judged by the reference like any other (U-1, U-2).  ``None`` and
``0`` mean something only under a profile with an epsilon fallback (``Profile.epsilon_fallback``:
Keras 2.9 turns both into 1e-7); there the target's constructor (capability ``validation``) either
refuses the value, with a ``ValueError`` or ``TypeError`` naming epsilon, or takes it, and the
run is then judged as if the fallback had been passed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .. import strategies as S
from ..case import Case, Target, Trajectory, Unsupported
from ..property import Finding, Property, profile_rules
from ..timeout import TimedOut, call
from .judging import check_reference
from .validation import names_argument

__all__ = ["H_1"]


def _epsilon_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    eps = case.hyper["epsilon"]
    if eps is not None and eps != 0:
        return check_reference(case, run(case), variant)
    rules = profile_rules(variant)
    fallback = None if rules is None else rules.epsilon_fallback
    if fallback is None:
        raise Unsupported("epsilon_fallback", f"profile {variant} gives epsilon={eps!r} no meaning")
    make = getattr(target, "make", None)
    if make is None or "validation" not in target.capabilities:
        raise Unsupported("validation", f"{target.name} has no constructor to give epsilon={eps!r}")
    try:
        call(lambda: make(dict(case.hyper)), 30.0)
    except TimedOut:
        raise
    except (ValueError, TypeError) as e:
        if names_argument(str(e), "epsilon"):
            return None  # refused, naming the argument: H-1 allows it
        return Finding(f"H-1: {target.name}(epsilon={eps!r}) raised {type(e).__name__}: {e!s:.200} -- "
                       f"profile {variant} takes it as {fallback!r}, or refuses it naming epsilon", case)
    judged = dataclasses.replace(case, hyper={**case.hyper, "epsilon": fallback})
    finding = check_reference(judged, run(case), variant)
    if finding is not None:
        finding.message += f" (epsilon={eps!r} judged as {fallback!r}, profile {variant}'s fallback: H-1)"
    return finding


H_1 = Property("H-1", "epsilon None or 0 (the keras fallback), subnormal and huge epsilons",
               frozenset({"dense"}), lambda: S.epsilon_cases(), check=_epsilon_check)
