"""docs/spec.md, "Sparse gradients": SP-1 (duplicate indices summed; ``u`` per the profile's
magnitude rule) and SP-2 (lazy or densified rows), both judged by the reference on one property."""

from __future__ import annotations

from .. import strategies as S
from ..property import Property

__all__ = ["SP_1"]

SP_1 = Property("SP-1", "sparse gradients: duplicates summed, rows per the profile's rule",
                frozenset({"sparse"}), lambda: S.sparse_cases())
