"""docs/spec.md, "Learning rates": LR-1, a schedule receives the steps already applied (judged by
the reference)."""

from __future__ import annotations

from .. import strategies as S
from ..property import Property

__all__ = ["LR_1"]

LR_1 = Property("LR-1", "Keras 2.9 schedules receive the steps already applied",
                frozenset({"schedule"}), lambda: S.schedule_cases())
