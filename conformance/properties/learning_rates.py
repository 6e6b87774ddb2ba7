"""docs/spec.md, "Learning rates": LR-1 (a schedule receives the steps already applied), LR-3 (the
legacy ``decay``) and LR-4 (a zero-argument callable, re-evaluated every step), judged by the
reference on one property.

The legacy ``decay`` belongs to the profiles whose framework has it (``Profile.legacy_decay``:
Keras 2.9); under another profile a case with a ``decay`` is not supported
(:func:`check_decay_applies`, applied by :mod:`.judging`).
"""

from __future__ import annotations

from typing import Any

from .. import strategies as S
from ..case import Case, Unsupported
from ..property import Property, profile_rules

__all__ = ["LR_1", "check_decay_applies"]


def check_decay_applies(case: Any, variant: str) -> None:
    """Raise :class:`~.case.Unsupported` for a case with a ``decay`` under a profile whose
    framework has no such argument (it would mean nothing there)."""
    rules = profile_rules(variant)
    if isinstance(case, Case) and case.hyper.get("decay") and not (rules is not None and rules.legacy_decay):
        raise Unsupported("decay", f"profile {variant} has no legacy decay argument")


LR_1 = Property("LR-1", "each step's learning rate: schedules, callables, legacy decay (steps already applied)",
                frozenset(), lambda: S.learning_rate_cases())
