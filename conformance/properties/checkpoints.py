"""docs/spec.md, "Checkpoints": CK-1, save, restore into a fresh instance and continue (judged by
the reference on the whole trajectory)."""

from __future__ import annotations

from .. import strategies as S
from ..property import Property

__all__ = ["CK_1"]

CK_1 = Property("CK-1", "save, restore into a fresh instance, continue",
                frozenset({"checkpoint"}), lambda: S.checkpoint_cases())
