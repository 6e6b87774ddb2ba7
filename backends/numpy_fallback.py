"""The NumPy fallback of the in-place fast path: ufuncs with ``out=``, no numba.

Used for float16 (numba has no float16 arithmetic on the CPU), without numba, and
with ``impl="numpy"``.  Each operation is one NumPy ufunc rounded to the arrays'
dtype ``D``, in the order of the dense step (epsilon codes: 0 "outside", 1 "inside",
2 "inside_decay", 3 "none"; NaN codes: 0 "keep_decayed", 1 "propagate")::

    m_new = m + (g - m) * one_minus_b1
    dec   = b2 * u        (+ eps if 2)            mag = |g|   (+ eps if 1)
    u_new = where(dec < mag, mag, dec)            (0: a NaN in g keeps dec)
          | maximum(dec, mag)                     (1: NaN propagates)
    w_new = w - lr_t * (m_new / (u_new + eps))    (0; else m_new / u_new)

so the result is bit-identical to that expression on plain NumPy arrays.  The dense
step runs over blocks of :data:`BLOCK` elements with one set of block-sized
temporaries (:class:`Blocks`), so no parameter-sized temporary is allocated.  The
lazy sparse step (:func:`sparse_gathered`: ``m*b1 + g*(1 - b1)`` and ``maximum``)
gathers the named rows, updates them with in-place ufuncs and scatters them back.

Arguments are not checked here: the callers (:mod:`~adamax_spec.backends.numpy_backend`,
:mod:`~adamax_spec.backends.numpy_plans`, :mod:`~adamax_spec.backends.numpy_rows`)
validate them first (:mod:`~adamax_spec.backends.numpy_checks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BLOCK", "Blocks", "dense_blocks", "dense_inplace", "sparse_gathered"]

#: Elements per block of the NumPy fallback (block temporaries stay in L2).
BLOCK = 32 * 1024


class Blocks:
    """One set of block-sized temporaries for the NumPy fallback."""

    def __init__(self, dtype: np.dtype[Any], n: int) -> None:
        size = max(1, min(BLOCK, n))
        self.t1 = np.empty(size, dtype)
        self.t2 = np.empty(size, dtype)
        self.t3 = np.empty(size, dtype)
        self.mask = np.empty(size, np.bool_)
        bits = dtype.itemsize * 8
        self.uint = np.dtype(f"uint{bits}")
        self.select = np.empty(size, np.dtype(f"int{bits}"))   # 0 or -1 (all bits set)


def dense_inplace(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
                  eps_mode: int, nan_mode: int, tmp: Blocks) -> None:
    """The dense step on one tensor of any shape, in place, block by block."""
    # like the numba kernel, no RuntimeWarning for inf/NaN (0/0, inf/inf are expected values)
    with np.errstate(all="ignore"):
        dense_blocks(w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1),
                     lr_t, omb1, b2, eps, eps_mode, nan_mode, tmp)


def dense_blocks(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
                 eps_mode: int, nan_mode: int, tmp: Blocks) -> None:
    """The dense step on 1-d ``w``, ``g``, ``m``, ``u``, :data:`BLOCK` elements at a time (caller sets errstate)."""
    n = w.size
    for s in range(0, n, BLOCK):
        e = min(s + BLOCK, n)
        k = e - s
        wb, gb, mb, ub = w[s:e], g[s:e], m[s:e], u[s:e]
        t1, t2, t3 = tmp.t1[:k], tmp.t2[:k], tmp.t3[:k]
        # every read of g happens before m, u, w of the block are written
        np.subtract(gb, mb, out=t1)
        np.multiply(t1, omb1, out=t1)
        np.abs(gb, out=t2)                       # mag
        np.add(mb, t1, out=mb)                   # m_new = m + (g - m) * (1 - b1)
        np.multiply(b2, ub, out=t3)              # dec = b2 * u
        if eps_mode == 1:
            np.add(t2, eps, out=t2)
        elif eps_mode == 2:
            np.add(t3, eps, out=t3)
        if nan_mode == 0:
            # where(dec < mag, mag, dec) as a bitwise select: exact for NaN and -0.0 by
            # construction, and 5x faster than copyto(where=) on an unpredictable mask
            mask, sel, uint = tmp.mask[:k], tmp.select[:k], tmp.uint
            np.less(t3, t2, out=mask)
            np.negative(mask.view(np.int8), out=sel, casting="unsafe")
            dec_bits, tx = t3.view(uint), t1.view(uint)   # t1 is free once m is written
            np.bitwise_xor(dec_bits, t2.view(uint), out=tx)
            np.bitwise_and(tx, sel.view(uint), out=tx)
            np.bitwise_xor(dec_bits, tx, out=ub.view(uint))
        else:
            np.maximum(t3, t2, out=ub)
        if eps_mode == 0:
            np.add(ub, eps, out=t3)
            np.divide(mb, t3, out=t1)
        else:
            np.divide(mb, ub, out=t1)
        np.multiply(lr_t, t1, out=t1)
        np.subtract(wb, t1, out=wb)


def sparse_gathered(w: Any, v: Any, m: Any, u: Any, rows: Any, lr_t: Any, b1: Any, omb1: Any,
                    b2: Any, eps: Any, eps_mode: int) -> None:
    """Gather the rows, the generic expression with in-place ufuncs, scatter back."""
    with np.errstate(all="ignore"):
        mb = np.take(m, rows, axis=0)
        ub = np.take(u, rows, axis=0)
        t1 = np.multiply(v, omb1)
        np.multiply(mb, b1, out=mb)
        np.add(mb, t1, out=mb)                   # m*b1 + g*(1-b1)
        np.abs(v, out=t1)                        # mag
        np.multiply(b2, ub, out=ub)              # dec
        if eps_mode == 1:
            np.add(t1, eps, out=t1)
        elif eps_mode == 2:
            np.add(ub, eps, out=ub)
        np.maximum(ub, t1, out=ub)               # u_new
        if eps_mode == 0:
            np.add(ub, eps, out=t1)
            np.divide(mb, t1, out=t1)
        else:
            np.divide(mb, ub, out=t1)
        np.multiply(lr_t, t1, out=t1)
        wb = np.take(w, rows, axis=0)
        np.subtract(wb, t1, out=wb)
        w[rows] = wb
        m[rows] = mb
        u[rows] = ub
