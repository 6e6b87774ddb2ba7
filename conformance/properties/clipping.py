"""docs/spec.md, "Clipping": C-1 (the order), C-2 and C-3 (the norms), judged by the reference."""

from __future__ import annotations

from .. import strategies as S
from ..property import Property

__all__ = ["C_1"]

C_1 = Property("C-1", "clipvalue, clipnorm and global_clipnorm in Keras order",
               frozenset(), lambda: S.clip_cases())
