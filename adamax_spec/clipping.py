"""Gradient clipping, as Keras 2.9 defines it (clauses C-* of ``docs/spec.md``).

All three act on what the caller passed: for a sparse gradient, on its
``values`` *before* duplicate indices are summed (Keras 2.9 behaviour).

* ``clip_by_value(g, c)      = min(max(g, -c), c)``            (NaN stays NaN)
* ``clip_by_norm(g, c)       = g * c / max(||g||_2, c)``       (per tensor)
* ``clip_by_global_norm(G, c) = g_i * c / max(N, c)``, ``N = sqrt(sum_i ||g_i||^2)``;
  a non-finite ``N`` makes every gradient NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._xp import namespace, scalar
from .sparse import IndexedSlices

__all__ = ["clip_by_global_norm", "clip_by_norm", "clip_by_value", "clip_gradients"]


def _values(g: Any) -> Any:
    return g.values if isinstance(g, IndexedSlices) else g


def _rewrap(g: Any, values: Any) -> Any:
    if isinstance(g, IndexedSlices):
        return IndexedSlices(values, g.indices, g.dense_shape)
    return values


def clip_by_value(g: Any, clipvalue: float) -> Any:
    """Elementwise ``min(max(g, -c), c)``; NaN propagates."""
    x = _values(g)
    xp = namespace(x)
    c = scalar(xp, clipvalue, x)
    return _rewrap(g, xp.minimum(xp.maximum(x, -c), c))


def clip_by_norm(g: Any, clipnorm: float) -> Any:
    """``g * c / max(||g||, c)``, the L2 norm over all elements of one tensor."""
    x = _values(g)
    xp = namespace(x)
    c = scalar(xp, clipnorm, x)
    l2sum = xp.sum(x * x)
    norm = xp.where(l2sum > 0, xp.sqrt(l2sum), l2sum)
    return _rewrap(g, x * c / xp.maximum(norm, c))


def clip_by_global_norm(grads: Sequence[Any], clipnorm: float) -> list[Any]:
    """Scale every gradient by ``c / max(N, c)``; ``N`` is the joint L2 norm.

    Keras writes the same number as ``c * min(1/N, 1/c)``, which can differ by an ULP
    (clause C-3 allows either).

    The norm is accumulated in the first gradient's dtype, as Keras does (mixed
    dtypes are rejected by validation before this runs).  A non-finite norm
    makes every gradient all-NaN (tensorflow#27733).
    """
    present = [g for g in grads if g is not None]
    if not present:
        return list(grads)
    first = _values(present[0])
    xp = namespace(first)
    total = scalar(xp, 0.0, first)
    for g in present:
        x = _values(g)
        total = total + xp.sum(x * x)
    norm = xp.sqrt(total)
    c = scalar(xp, clipnorm, first)
    scale = c / xp.maximum(norm, c) + (norm - norm)
    return [None if g is None else _rewrap(g, _values(g) * scale) for g in grads]


def clip_gradients(
    grads: Sequence[Any],
    *,
    clipvalue: float | None,
    clipnorm: float | None,
    global_clipnorm: float | None,
) -> list[Any]:
    """Apply the configured clips in Keras 2.9's order: value, norm, global norm."""
    out = list(grads)
    if clipvalue is not None:
        out = [None if g is None else clip_by_value(g, clipvalue) for g in out]
    if clipnorm is not None:
        out = [None if g is None else clip_by_norm(g, clipnorm) for g in out]
    if global_clipnorm is not None:
        out = clip_by_global_norm(out, global_clipnorm)
    return out

