"""docs/spec.md, "Parameter groups": G-1, each group's hyperparameters apply to its own parameters
(judged by the reference, one parameter group at a time: :mod:`.judging`)."""

from __future__ import annotations

from .. import strategies as S
from ..property import Property

__all__ = ["G_1"]

G_1 = Property("G-1", "per-parameter-group hyperparameters apply to their own parameters",
               frozenset({"groups"}), lambda: S.group_cases())
