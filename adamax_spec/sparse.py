"""Sparse gradients: an ``IndexedSlices``-like value and duplicate coalescing.

A sparse gradient of a parameter ``w`` of shape ``(n, *rest)`` is a set of
rows: ``indices`` (1-d, integer) and ``values`` (shape ``(len(indices), *rest)``).
The dense gradient it stands for is ``G[i] = sum(values[j] for j where indices[j] == i)``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from ._xp import device, namespace, scalar

__all__ = ["IndexedSlices", "coalesce_rows", "densify", "take_rows"]


@dataclass(frozen=True)
class IndexedSlices:
    """Rows ``indices`` of a gradient with ``values``, for a parameter of ``dense_shape``."""

    values: Any
    indices: Any
    dense_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = self.dense_shape
        try:
            dims = tuple(shape)
        except TypeError:
            raise TypeError(f"IndexedSlices dense_shape must be a sequence of ints, got {shape!r}") from None
        if any(isinstance(d, bool) or not hasattr(d, "__index__") for d in dims):
            raise TypeError(f"IndexedSlices dense_shape must hold ints, got {shape!r}")
        if any(operator.index(d) < 0 for d in dims):
            raise ValueError(f"IndexedSlices dense_shape must not be negative, got {shape!r}")
        object.__setattr__(self, "dense_shape", tuple(operator.index(d) for d in dims))


def coalesce_rows(indices: Any, values: Any) -> tuple[Any, Any]:
    """Sum the rows of ``values`` that share an index.

    Returns ``(unique_indices, summed_values)`` with ``unique_indices`` sorted
    ascending.  Rows with the same index are added in the order they occur
    (the order Keras's ``unsorted_segment_sum`` uses), using gathers only: the
    array API has no scatter-add, and ``array_api_extra.at(...).add`` does not
    sum duplicates on every library.  The cost is ``O(k * r)`` for ``k`` rows
    and ``r`` the largest multiplicity of an index.
    """
    xp = namespace(indices, values)
    uniq, counts = xp.unique_counts(indices)
    if not isinstance(uniq.shape[0], int):  # None (array API) or nan: a lazy library's unknown size
        raise NotImplementedError(
            "sparse gradients (IndexedSlices) are not supported on this array library: summing duplicate "
            f"indices needs the number of distinct rows, which it leaves unknown (unique_counts gave shape "
            f"{tuple(uniq.shape)}), as lazy chunked arrays do. Pass the gradient as a dense array instead "
            "(dense updates stay lazy)."
        )
    if uniq.shape[0] == indices.shape[0]:
        order = xp.argsort(indices, stable=True)
        return xp.take(indices, order), xp.take(values, order, axis=0)
    order = xp.argsort(indices, stable=True)
    ends = xp.cumulative_sum(counts)
    starts = ends - counts
    total = None
    max_count = int(xp.max(counts))
    last = indices.shape[0] - 1
    zero = scalar(xp, 0.0, values)
    expand = (slice(None),) + (None,) * (values.ndim - 1)
    for r in range(max_count):
        pos = xp.take(order, xp.clip(starts + r, max=last))
        rows = xp.take(values, pos, axis=0)
        present = (counts > r)[expand]
        rows = xp.where(present, rows, zero)
        total = rows if total is None else total + rows
    assert total is not None
    return uniq, total


def densify(grad: IndexedSlices, like: Any) -> Any:
    """The dense gradient a sparse one stands for, on ``like``'s device and dtype."""
    xp = namespace(like)
    uniq, summed = coalesce_rows(grad.indices, grad.values)
    dense = xp.zeros(grad.dense_shape, dtype=like.dtype, device=device(like))
    from array_api_extra import at

    summed = xp.astype(summed, like.dtype)
    try:
        return at(dense, uniq).set(summed)
    except IndexError:  # a namespace without integer-array __setitem__ (array-api-strict)
        return take_rows(dense, uniq, summed)


def take_rows(table: Any, rows: Any, values: Any) -> Any:
    """Portable row write with gathers only: O(table), for namespaces that cannot scatter."""
    xp = namespace(table)
    n = table.shape[0]
    if rows.shape[0] == 0:
        return table
    every = xp.arange(n, dtype=rows.dtype, device=device(table))
    pos = xp.searchsorted(rows, every)
    hit = xp.take(rows, xp.clip(pos, max=rows.shape[0] - 1)) == every
    source = xp.where(hit, pos + n, every)
    return xp.take(xp.concat([table, values], axis=0), source, axis=0)
