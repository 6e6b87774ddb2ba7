"""Sparse (row) gradients on the in-place NumPy fast path: coalescing and the lazy row step.

:func:`coalesce_rows_numpy` sums the rows of duplicate indices, with the bits of the
generic :func:`adamax_spec.sparse.coalesce_rows` (one stable sort of the indices, one
parallel pass with numba).  :func:`sparse_step_inplace` (validated and prepared by
:func:`prepare_sparse`, so a caller can check several updates before writing any)
then updates only the named rows ``r`` of ``w``, ``m``, ``u``, with every operation
rounded to the dtype ``D``::

    m[r] = m[r] * b1 + g * one_minus_b1
    u[r] = maximum(b2 * u[r], |g|)        # NaN propagates; epsilon "inside" adds to |g|
    w[r] = w[r] - lr_t * (m[r] / (u[r] + eps))   # epsilon "outside"; else m[r] / u[r]

which is :func:`adamax_spec.core.update_rows` with ``kernel_form=False`` evaluated by
NumPy on the gathered rows, bit for bit.  numba updates the rows where they lie, in
units of :data:`SPARSE_CHUNK_ELEMENTS` elements; the NumPy fallback gathers, updates
and scatters (:func:`~adamax_spec.backends.numpy_fallback.sparse_gathered`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .numpy_checks import (
    FLOAT_DTYPES,
    IMPLS,
    Impl,
    UnsupportedArrays,
    as_scalar,
    check_array,
    check_disjoint,
    check_threads,
    modes,
)
from .numpy_fallback import sparse_gathered
from .numpy_numba import (
    KERNELS,
    Threads,
    launch_lock,
    load_numba,
    maximum_tie_rule,
    select_impl,
)

__all__ = ["SPARSE_CHUNK_ELEMENTS", "coalesce_rows_numpy", "prepare_sparse", "sparse_step_inplace"]

#: Rows per unit of parallel work of the sparse kernel (times the row length in elements).
SPARSE_CHUNK_ELEMENTS = 16 * 1024


def sparse_step_inplace(
    w: np.ndarray[Any, Any],
    rows: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    m: np.ndarray[Any, Any],
    u: np.ndarray[Any, Any],
    *,
    lr_t: Any,
    beta_1: Any,
    one_minus_b1: Any,
    b2: Any,
    eps: Any,
    epsilon: str = "outside",
    threads: int | None = None,
    impl: Impl = "auto",
) -> None:
    """The lazy sparse Adamax step on rows ``rows`` of ``w``, ``m``, ``u``, in place.

    ``rows`` is a 1-d integer array of *unique* row numbers in ``[0, w.shape[0])``
    (as :func:`adamax_spec.sparse.coalesce_rows` returns them: duplicates already
    summed into ``values``, of shape ``(len(rows), *w.shape[1:])``).  For each named
    row ``r`` and its gradient row ``g``, with every operation rounded to ``D``::

        m[r] = m[r] * b1 + g * one_minus_b1
        u[r] = maximum(b2 * u[r], |g|)        # NaN propagates; epsilon "inside" adds to |g|
        w[r] = w[r] - lr_t * (m[r] / (u[r] + eps))   # epsilon "outside"; else m[r] / u[r]

    which is :func:`adamax_spec.core.update_rows` with ``kernel_form=False`` evaluated
    by NumPy on the gathered rows, bit for bit.  Other rows are not read or written:
    the cost is proportional to the rows named.  numba: one pass over the named rows
    of the tables (no gather or scatter copies); ``numpy``: gather, in-place ufuncs on
    the ``len(rows)``-row block, scatter back.

    Raises :class:`UnsupportedArrays` (nothing modified) for arrays it cannot update.
    """
    run = prepare_sparse(w, rows, values, m, u, lr_t=lr_t, beta_1=beta_1,
                         one_minus_b1=one_minus_b1, b2=b2, eps=eps, epsilon=epsilon,
                         threads=threads, impl=impl)
    run()


def prepare_sparse(
    w: np.ndarray[Any, Any],
    rows: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    m: np.ndarray[Any, Any],
    u: np.ndarray[Any, Any],
    *,
    lr_t: Any,
    beta_1: Any,
    one_minus_b1: Any,
    b2: Any,
    eps: Any,
    epsilon: str = "outside",
    threads: int | None = None,
    impl: Impl = "auto",
) -> Callable[[], None]:
    """Validate :func:`sparse_step_inplace`'s arguments; return the step, not yet run.

    Lets a caller validate several updates before writing any (atomic steps).
    """
    eps_mode, _ = modes(epsilon, "propagate", impl)
    threads = check_threads(threads)
    w = check_array("w", w, None, None, True)
    dtype, shape = w.dtype, w.shape
    if w.ndim < 1:
        raise UnsupportedArrays("w must have at least one dimension (rows)")
    m = check_array("m", m, dtype, shape, True)
    u = check_array("u", u, dtype, shape, True)
    k = rows.shape[0] if isinstance(rows, np.ndarray) and rows.ndim == 1 else -1
    if k < 0 or rows.dtype.kind not in "iu":
        raise UnsupportedArrays("rows must be a 1-d integer numpy array")
    values = check_array("values", values, dtype, (k, *shape[1:]), False)
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    if k and (rows[0] < 0 or rows[-1] >= shape[0] or not bool(np.all(rows[1:] > rows[:-1]))):
        raise UnsupportedArrays("rows must be sorted, unique and within [0, w.shape[0])")
    check_disjoint(("w", "values", "m", "u"), (w, values, m, u))
    s = [as_scalar(name, x, dtype) for name, x in (
        ("lr_t", lr_t), ("beta_1", beta_1), ("one_minus_b1", one_minus_b1), ("b2", b2), ("eps", eps))]
    chosen = select_impl(dtype, impl, nan_in_max="propagate")

    def run() -> None:
        if k == 0 or w.size == 0:
            return
        n_rows = shape[0]
        w2, m2, u2 = w.reshape(n_rows, -1), m.reshape(n_rows, -1), u.reshape(n_rows, -1)
        v2 = values.reshape(k, -1)
        if chosen == "numpy":
            lr_s, b1_s, omb1_s, b2_s, eps_s = s
            sparse_gathered(w2, v2, m2, u2, rows, lr_s, b1_s, omb1_s, b2_s, eps_s, eps_mode)
            return
        numba = load_numba()
        tie = maximum_tie_rule(dtype) or 0
        chunk_rows = max(1, SPARSE_CHUNK_ELEMENTS // max(1, v2.shape[1]))
        args = (w2, v2, m2, u2, rows, *s, eps_mode, tie, chunk_rows)
        if k <= chunk_rows or threads == 1:
            KERNELS["sparse_serial"](*args)
            return
        with launch_lock, Threads(numba, threads):
            KERNELS["sparse_parallel"](*args)

    return run


def coalesce_rows_numpy(indices: np.ndarray[Any, Any], values: np.ndarray[Any, Any], *,
                        impl: Impl = "auto") -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """:func:`adamax_spec.sparse.coalesce_rows` for NumPy arrays, with the same bits.

    Returns ``(rows, summed)``: the distinct indices sorted ascending, and for each the
    sum of its rows of ``values`` in the order they occur, left to right::

        summed[s] = ((v[j0] + v[j1]) + v[j2]) + ...       (+ 0.0 once if the index occurs
                                                           fewer times than the most frequent)

    which is what the generic version computes: it adds, for ``r`` up to the largest
    multiplicity, the ``r``-th occurrence of every index, or ``+0.0`` where an index has
    no ``r``-th occurrence (``x + 0.0`` turns ``-0.0`` into ``+0.0``; adding it again changes
    nothing).  Without duplicates: the indices sorted and the rows gathered (stable sort).
    The cost is one sort of the indices and one pass over ``values``: ``O(k log k + k*d)``
    (the generic version makes one pass per multiplicity, each over all distinct rows).
    numba sums each row left to right in one parallel loop.  That gives the generic bits
    whenever no value is NaN: IEEE addition is commutative except for which of two NaN
    operands comes out, and a NaN made from non-NaN operands (``inf + -inf``) is the
    machine's one default NaN.  If a NaN is among the values (the kernel notices), float16,
    or without numba: NumPy's ufuncs on arrays of the generic version's shapes, one pass per
    multiplicity (NumPy's choice between two NaN operands depends on its inner loop).
    ``impl="numpy"`` always takes that route; ``"auto"`` and ``"numba"`` use numba where it can.
    Raises :class:`UnsupportedArrays` for anything but a 1-d integer ``indices`` and a
    float16/32/64 ``values`` with ``len(indices)`` rows.
    """
    if not (isinstance(indices, np.ndarray) and indices.ndim == 1 and indices.dtype.kind in "iu"):
        raise UnsupportedArrays("indices must be a 1-d integer numpy array")
    if type(values) is not np.ndarray or values.dtype not in FLOAT_DTYPES or values.ndim < 1 \
            or values.shape[0] != indices.shape[0]:
        raise UnsupportedArrays("values must be a float16/32/64 numpy array with one row per index")
    k = indices.shape[0]
    order = np.argsort(indices, kind="stable")
    ordered = indices[order]
    if k == 0:
        return ordered, values[order]
    new_row = np.empty(k, np.bool_)
    new_row[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_row[1:])
    starts = np.flatnonzero(new_row)
    rows = ordered[starts]
    if starts.size == k:
        return ordered, values.take(order, axis=0)
    counts = np.diff(np.append(starts, k))
    max_count = int(counts.max())
    zero = values.dtype.type(0.0)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if values.ndim > 1 and values.size and impl != "numpy" and select_impl(values.dtype) == "numba":
        flat = np.ascontiguousarray(values.reshape(k, -1))
        out = np.empty((starts.size, flat.shape[1]), values.dtype)
        chunk = max(1, SPARSE_CHUNK_ELEMENTS // flat.shape[1])
        with launch_lock:
            nan = KERNELS["coalesce_sum"](flat, order, starts, counts, max_count, zero, out, chunk)
        if not nan:
            return rows, out.reshape((starts.size, *values.shape[1:]))
    # NumPy's own passes, shaped as coalesce_rows's: which NaN an add of two NaNs returns
    # depends on NumPy's inner loop (operand order, SIMD body or tail), so where the values
    # hold NaNs the same ufuncs run on arrays of the same shapes
    total = values.take(order[starts], axis=0)
    last = k - 1
    with np.errstate(all="ignore"):
        for r in range(1, max_count):
            more = values.take(order[np.minimum(starts + r, last)], axis=0)
            more[counts <= r] = zero
            total = total + more
    return rows, total
