"""In-place NumPy fast path for the dense Adamax step.

The generic path (:func:`adamax_spec.core.update_rows` with ``kernel_form=True``) is
functional and allocates a temporary per operation.  For writable NumPy arrays
this module computes the *same* numbers in place, with each operation rounded to
the arrays' dtype ``D`` in exactly this order::

    m_new = m + (g - m) * one_minus_b1
    dec   = b2 * u                        # epsilon "inside_decay": dec = dec + eps
    mag   = abs(g)                        # epsilon "inside":       mag = mag + eps
    u_new = where(dec < mag, mag, dec)    # nan_in_max "keep_decayed" (NaN in g keeps dec)
          | maximum(dec, mag)             # nan_in_max "propagate"    (NaN propagates)
    w_new = w - lr_t * (m_new / (u_new + eps))   # epsilon "outside"
          | w - lr_t * (m_new / u_new)           # "inside", "inside_decay", "none"

Two implementations, bit-identical to that expression evaluated with plain NumPy
arrays of dtype ``D`` (``tests/backends/test_numpy_backend.py`` checks every bit):

``numba`` (:mod:`~adamax_spec.backends.numpy_numba`)
    One fused pass over memory (``prange`` over chunks, ``fastmath=False`` so no FMA
    contraction or reassociation, ``error_model="numpy"``).  Numba is imported on
    first use; the compiled kernels are cached on disk (``__pycache__``).  Numba has
    no float16 arithmetic on the CPU, so float16 always takes the ``numpy`` path.
``numpy`` (:mod:`~adamax_spec.backends.numpy_fallback`)
    In-place ufuncs (``out=``) over blocks of :data:`BLOCK` elements, so no
    parameter-sized temporary is allocated (one set of block-sized temporaries).

The fast path does not decide whether it applies: every function raises
:class:`UnsupportedArrays` (a :class:`ValueError` naming the argument) for inputs
it cannot update in place -- not a ``numpy.ndarray``, not C-contiguous, not
writable (``w``, ``m``, ``u``), unaligned, dtype not float16/32/64 or not shared,
shapes that differ, arrays that overlap -- and the caller then uses the generic
path (:mod:`~adamax_spec.backends.numpy_checks`).  ``g`` is only read, and may be
read-only.

Not thread-safe across Python threads calling concurrently with different
``threads`` values; parallel kernel launches are serialised by a lock because
numba's default ``workqueue`` threading layer does not allow concurrent launches.

This module is the public face: it holds :func:`dense_step_inplace` (one tensor) and
re-exports the rest, so callers import only ``numpy_backend``.  The parts, each
importing only those before it:

* :mod:`~adamax_spec.backends.numpy_checks`: :class:`UnsupportedArrays`,
  :data:`FLOAT_DTYPES`, argument checks, :func:`as_scalar`;
* :mod:`~adamax_spec.backends.numpy_fallback`: the blocked in-place ufuncs;
* :mod:`~adamax_spec.backends.numpy_numba`: loading numba, threads, the kernels,
  :func:`select_impl`;
* :mod:`~adamax_spec.backends.numpy_plans`: many tensors in one pass
  (:class:`ManyPlan`, :func:`dense_step_many_inplace`, :func:`dense_step_planned`);
* :mod:`~adamax_spec.backends.numpy_rows`: sparse rows (:func:`coalesce_rows_numpy`,
  :func:`prepare_sparse`, :func:`sparse_step_inplace`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .numpy_checks import (
    FLOAT_DTYPES,
    Impl,
    UnsupportedArrays,
    as_scalar,
    check_array,
    check_disjoint,
    check_threads,
    modes,
)
from .numpy_fallback import BLOCK, Blocks, dense_inplace
from .numpy_numba import (
    CHUNK,
    DISABLE_NUMBA_ENV,
    KERNELS,
    Threads,
    kernel_names,
    launch_lock,
    load_numba,
    maximum_tie_rule,
    numba_available,
    select_impl,
)
from .numpy_plans import ManyPlan, dense_step_many_inplace, dense_step_planned
from .numpy_rows import (
    SPARSE_CHUNK_ELEMENTS,
    coalesce_rows_numpy,
    prepare_sparse,
    sparse_step_inplace,
)

__all__ = [
    "BLOCK",
    "CHUNK",
    "DISABLE_NUMBA_ENV",
    "FLOAT_DTYPES",
    "SPARSE_CHUNK_ELEMENTS",
    "Impl",
    "ManyPlan",
    "UnsupportedArrays",
    "as_scalar",
    "coalesce_rows_numpy",
    "dense_step_inplace",
    "dense_step_many_inplace",
    "dense_step_planned",
    "kernel_names",
    "numba_available",
    "prepare_sparse",
    "select_impl",
    "sparse_step_inplace",
]


def dense_step_inplace(
    w: np.ndarray[Any, Any],
    g: np.ndarray[Any, Any],
    m: np.ndarray[Any, Any],
    u: np.ndarray[Any, Any],
    *,
    lr_t: Any,
    one_minus_b1: Any,
    b2: Any,
    eps: Any,
    epsilon: str = "outside",
    nan_in_max: str = "keep_decayed",
    threads: int | None = None,
    impl: Impl = "auto",
) -> None:
    """One dense Adamax step on one tensor, updating ``w``, ``m`` and ``u`` in place.

    ``w``, ``m``, ``u`` are writable C-contiguous arrays of one float dtype ``D``;
    ``g`` is C-contiguous of the same dtype and shape and is not modified.  The
    scalars are Python numbers (rounded to ``D`` here) or NumPy scalars/0-d arrays of
    dtype ``D``.  ``epsilon`` is ``"outside"``, ``"inside"``, ``"inside_decay"`` or
    ``"none"``; ``nan_in_max`` is ``"keep_decayed"`` or ``"propagate"`` (see the module
    docstring).  ``threads`` (numba only) is the number of threads, default numba's
    current setting; ``impl`` forces an implementation (:func:`select_impl`).

    Raises :class:`UnsupportedArrays` (a ``ValueError`` naming the argument) when the
    arrays cannot be updated in place; nothing is modified then.
    """
    eps_mode, nan_mode = modes(epsilon, nan_in_max, impl)
    threads = check_threads(threads)
    w = check_array("w", w, None, None, True)
    dtype, shape = w.dtype, w.shape
    g = check_array("g", g, dtype, shape, False)
    m = check_array("m", m, dtype, shape, True)
    u = check_array("u", u, dtype, shape, True)
    check_disjoint(("w", "g", "m", "u"), (w, g, m, u))
    s_lr = as_scalar("lr_t", lr_t, dtype)
    s_omb1 = as_scalar("one_minus_b1", one_minus_b1, dtype)
    s_b2 = as_scalar("b2", b2, dtype)
    s_eps = as_scalar("eps", eps, dtype)
    chosen = select_impl(dtype, impl, nan_in_max=nan_in_max)
    if w.size == 0:
        return
    if chosen == "numpy":
        dense_inplace(w, g, m, u, s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode,
                      Blocks(dtype, w.size))
        return
    numba = load_numba()
    tie = maximum_tie_rule(dtype) or 0
    if w.ndim != 1:
        w, g, m, u = w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1)
    args = (w, g, m, u, s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, tie)
    if w.size <= CHUNK or threads == 1:
        KERNELS["dense_serial"](*args)
        return
    with launch_lock, Threads(numba, threads):
        KERNELS["dense_parallel"](*args, CHUNK)
