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
arrays of dtype ``D`` (``tests/test_numpy_backend.py`` checks every bit):

``numba``
    One fused pass over memory (``prange`` over chunks, ``fastmath=False`` so no FMA
    contraction or reassociation, ``error_model="numpy"``).  Numba is imported on
    first use; the compiled kernels are cached on disk (``__pycache__``).  Numba has
    no float16 arithmetic on the CPU, so float16 always takes the ``numpy`` path.
``numpy``
    In-place ufuncs (``out=``) over blocks of :data:`BLOCK` elements, so no
    parameter-sized temporary is allocated (one set of block-sized temporaries).

The fast path does not decide whether it applies: every function raises
:class:`UnsupportedArrays` (a :class:`ValueError` naming the argument) for inputs
it cannot update in place -- not a ``numpy.ndarray``, not C-contiguous, not
writable (``w``, ``m``, ``u``), unaligned, dtype not float16/32/64 or not shared,
shapes that differ, arrays that overlap -- and the caller then uses the generic
path.  ``g`` is only read, and may be read-only.

Not thread-safe across Python threads calling concurrently with different
``threads`` values; parallel kernel launches are serialised by a lock because
numba's default ``workqueue`` threading layer does not allow concurrent launches.
"""

from __future__ import annotations

import ctypes
import operator
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "BLOCK",
    "CHUNK",
    "FLOAT_DTYPES",
    "ManyPlan",
    "UnsupportedArrays",
    "coalesce_rows_numpy",
    "dense_step_inplace",
    "dense_step_many_inplace",
    "dense_step_planned",
    "numba_available",
    "prepare_sparse",
    "select_impl",
    "sparse_step_inplace",
]

Impl = Literal["auto", "numba", "numpy"]

#: Elements per block of the NumPy fallback (block temporaries stay in L2).
BLOCK = 32 * 1024
#: Elements per unit of work of the numba kernels (one ``prange`` iteration).
CHUNK = 64 * 1024
#: The dtypes the fast path updates.
FLOAT_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
)

_EPSILON_MODES = {"outside": 0, "inside": 1, "inside_decay": 2, "none": 3}
_NAN_MODES = {"keep_decayed": 0, "propagate": 1}
_IMPLS = ("auto", "numba", "numpy")
#: Set this environment variable to a non-empty value to never use numba.
DISABLE_NUMBA_ENV = "ADAMAX_SPEC_DISABLE_NUMBA"


class UnsupportedArrays(ValueError):
    """The fast path cannot update these arguments in place; use the generic path."""


# ---------------------------------------------------------------------------------------
# validation


def _check_array(
    name: str,
    a: Any,
    dtype: np.dtype[Any] | None,
    shape: tuple[int, ...] | None,
    writable: bool,
) -> np.ndarray[Any, Any]:
    if type(a) is not np.ndarray:
        raise UnsupportedArrays(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise UnsupportedArrays(
            f"{name} has dtype {a.dtype}; the fast path handles native float16, float32, float64"
        )
    if dtype is not None and a.dtype != dtype:
        raise UnsupportedArrays(f"{name} has dtype {a.dtype}, expected {dtype} (like w)")
    if shape is not None and a.shape != shape:
        raise UnsupportedArrays(f"{name} has shape {a.shape}, expected {shape} (like w)")
    flags = a.flags
    if not flags.c_contiguous:
        raise UnsupportedArrays(f"{name} is not C-contiguous")
    if not flags.aligned:
        raise UnsupportedArrays(f"{name} is not aligned")
    if writable and not flags.writeable:
        raise UnsupportedArrays(f"{name} is not writable")
    return a


def _scalar(name: str, x: Any, dtype: np.dtype[Any]) -> Any:
    """``x`` as a NumPy scalar of ``dtype``; arrays must already have that dtype."""
    if type(x) is dtype.type:
        return x
    if isinstance(x, np.ndarray | np.generic):
        if x.shape != ():
            raise UnsupportedArrays(f"{name} must be a scalar or 0-d array, got shape {x.shape}")
        if x.dtype != dtype:
            raise UnsupportedArrays(f"{name} has dtype {x.dtype}, expected {dtype} (like w)")
        return dtype.type(x[()] if isinstance(x, np.ndarray) else x)
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise UnsupportedArrays(
            f"{name} must be a real number or a 0-d numpy array, got {type(x).__name__}"
        )
    return dtype.type(x)


def _modes(epsilon: str, nan_in_max: str, impl: str) -> tuple[int, int]:
    if epsilon not in _EPSILON_MODES:
        raise ValueError(f"epsilon must be one of {sorted(_EPSILON_MODES)}, got {epsilon!r}")
    if nan_in_max not in _NAN_MODES:
        raise ValueError(f"nan_in_max must be one of {sorted(_NAN_MODES)}, got {nan_in_max!r}")
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    return _EPSILON_MODES[epsilon], _NAN_MODES[nan_in_max]


def _check_threads(threads: int | None) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


def _check_disjoint(names: Sequence[str], arrays: Sequence[np.ndarray[Any, Any]]) -> None:
    if len({id(a) for a in arrays}) == len(arrays) and all(a.flags.owndata for a in arrays):
        return                          # distinct arrays that own their data never overlap
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            if arrays[i].size and arrays[j].size and np.may_share_memory(arrays[i], arrays[j]):
                raise UnsupportedArrays(f"{names[i]} and {names[j]} overlap in memory")


# ---------------------------------------------------------------------------------------
# which tie NumPy's maximum picks on this machine

_TIE_RULES: dict[np.dtype[Any], int | None] = {}


def _maximum_tie_rule(dtype: np.dtype[Any]) -> int | None:
    """How ``np.maximum(x, y)`` breaks the only tie with visible bits, ``-0.0`` vs ``+0.0``.

    0: returns ``y`` (x86 ``maxps``), 1: returns ``x``, 2: returns ``+0.0`` (AArch64
    ``fmax``); ``None`` if NumPy answers differently for different lengths (the numba
    kernel then cannot match it, and ``"propagate"`` uses the NumPy path).
    """
    if dtype in _TIE_RULES:
        return _TIE_RULES[dtype]
    rules = set()
    for n in (1, 3, 16, 67, 1031):
        neg = np.full(n, -0.0, dtype)
        pos = np.zeros(n, dtype)
        a = np.signbit(np.maximum(neg, pos))
        b = np.signbit(np.maximum(pos, neg))
        for s in (a, b):
            if s.min() != s.max():
                rules.add(-1)
        rules.add({(False, True): 0, (True, False): 1, (False, False): 2}.get(
            (bool(a[0]), bool(b[0])), -1))
    rule = rules.pop() if len(rules) == 1 else -1
    _TIE_RULES[dtype] = None if rule == -1 else rule
    return _TIE_RULES[dtype]


# ---------------------------------------------------------------------------------------
# the numba kernels (compiled on first use)

_numba_state: dict[str, Any] = {}
_numba_lock = threading.Lock()
_launch_lock = threading.Lock()


def numba_available() -> bool:
    """Whether the numba kernels can be used (imports numba on the first call)."""
    return _load_numba() is not None


def _load_numba() -> Any:
    """The numba module with the kernels compiled lazily, or ``None`` without numba."""
    if "module" in _numba_state:
        return _numba_state["module"]
    with _numba_lock:
        if "module" in _numba_state:
            return _numba_state["module"]
        module: Any = None
        if not os.environ.get(DISABLE_NUMBA_ENV):
            try:
                import numba

                _build_kernels(numba)
                module = numba
            except ImportError:
                module = None
        _numba_state["module"] = module
        return module


# Globals the kernels below call; _build_kernels() binds them before the first compile.
_span_jit: Any = None
_many_body_jit: Any = None
_sparse_rows_jit: Any = None
_coalesce_span_jit: Any = None
_prange: Any = range
_carray: Any = None
_address_as_pointer: Any = None
_load_intp: Any = None


def _span(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
          eps_mode: int, nan_mode: int, tie: int) -> None:  # pragma: no cover - numba
    # Indices run from 0 so that numba drops its negative-index wraparound and LLVM
    # vectorises the loop; every value is loaded before any store, so an element-wise
    # alias (never produced here: overlaps are rejected) could not change the result.
    for i in range(w.size):
        wi = w[i]
        gi = g[i]
        mi = m[i]
        ui = u[i]
        mn = mi + (gi - mi) * omb1
        dec = b2 * ui
        mag = abs(gi)
        if eps_mode == 1:
            mag = mag + eps
        elif eps_mode == 2:
            dec = dec + eps
        if nan_mode == 0:
            un = mag if dec < mag else dec
        elif dec != dec:
            un = dec
        elif mag != mag:
            un = mag
        elif dec > mag:
            un = dec
        elif mag > dec:
            un = mag
        elif tie == 0:
            un = mag
        elif tie == 1:
            un = dec
        else:
            un = mag if dec < 0 or (dec == 0 and 1.0 / dec < 0) else dec
        if eps_mode == 0:
            den = un + eps
        else:
            den = un
        w[i] = wi - lr_t * (mn / den)
        m[i] = mn
        u[i] = un


def _dense_serial(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
                  eps_mode: int, nan_mode: int, tie: int) -> None:  # pragma: no cover - numba
    _span_jit(w, g, m, u, lr_t, omb1, b2, eps, eps_mode, nan_mode, tie)


def _dense_parallel(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
                    eps_mode: int, nan_mode: int, tie: int,
                    chunk: int) -> None:  # pragma: no cover - numba
    n = w.size
    nchunks = (n + chunk - 1) // chunk
    for c in _prange(nchunks):
        s = c * chunk
        e = min(s + chunk, n)
        _span_jit(w[s:e], g[s:e], m[s:e], u[s:e],
                  lr_t, omb1, b2, eps, eps_mode, nan_mode, tie)


def _many_body(ptrs: Any, spans: Any, units: Any, like: Any, k: int, lr_t: Any, omb1: Any,
               b2: Any, eps: Any, eps_mode: int, nan_mode: int,
               tie: int) -> None:  # pragma: no cover - numba
    for j in range(units[k], units[k + 1]):
        t = spans[j, 0]
        s = spans[j, 1]
        n = spans[j, 2] - s
        off = s * like.itemsize
        w = _carray(_address_as_pointer(ptrs[0, t] + off, like), n)
        g = _carray(_address_as_pointer(ptrs[1, t] + off, like), n)
        m = _carray(_address_as_pointer(ptrs[2, t] + off, like), n)
        u = _carray(_address_as_pointer(ptrs[3, t] + off, like), n)
        _span_jit(w, g, m, u, lr_t, omb1, b2, eps, eps_mode, nan_mode, tie)


def _many_serial(ptrs: Any, spans: Any, units: Any, like: Any, lr_t: Any, omb1: Any, b2: Any,
                 eps: Any, eps_mode: int, nan_mode: int,
                 tie: int) -> None:  # pragma: no cover - numba
    for k in range(units.size - 1):
        _many_body_jit(ptrs, spans, units, like, k,
                       lr_t, omb1, b2, eps, eps_mode, nan_mode, tie)


def _many_parallel(ptrs: Any, spans: Any, units: Any, like: Any, lr_t: Any, omb1: Any, b2: Any,
                   eps: Any, eps_mode: int, nan_mode: int,
                   tie: int) -> None:  # pragma: no cover - numba
    for k in _prange(units.size - 1):
        _many_body_jit(ptrs, spans, units, like, k,
                       lr_t, omb1, b2, eps, eps_mode, nan_mode, tie)


def _read_words(addresses: Any, offset: int) -> Any:  # pragma: no cover - numba
    out = np.empty(addresses.size, np.intp)
    for i in range(addresses.size):
        out[i] = _load_intp(addresses[i] + offset)
    return out


def _sparse_rows(w: Any, vals: Any, m: Any, u: Any, rows: Any, lo: int, hi: int, lr_t: Any,
                 b1: Any, omb1: Any, b2: Any, eps: Any, eps_mode: int,
                 tie: int) -> None:  # pragma: no cover - numba
    # The lazy sparse step of core.update_rows(kernel_form=False) on rows[lo:hi] of the
    # 2-d tables w, m, u (rows unique): m*b1 + g*omb1, and NumPy's maximum (NaN propagates).
    dim = w.shape[1]
    for k in range(lo, hi):
        r = rows[k]
        for j in range(dim):
            gi = vals[k, j]
            mi = m[r, j]
            ui = u[r, j]
            mn = mi * b1 + gi * omb1
            dec = b2 * ui
            mag = abs(gi)
            if eps_mode == 1:
                mag = mag + eps
            elif eps_mode == 2:
                dec = dec + eps
            if dec != dec:
                un = dec
            elif mag != mag:
                un = mag
            elif dec > mag:
                un = dec
            elif mag > dec:
                un = mag
            elif tie == 0:
                un = mag
            elif tie == 1:
                un = dec
            else:
                un = mag if dec < 0 or (dec == 0 and 1.0 / dec < 0) else dec
            if eps_mode == 0:
                den = un + eps
            else:
                den = un
            w[r, j] = w[r, j] - lr_t * (mn / den)
            m[r, j] = mn
            u[r, j] = un


def _sparse_serial(w: Any, vals: Any, m: Any, u: Any, rows: Any, lr_t: Any, b1: Any, omb1: Any,
                   b2: Any, eps: Any, eps_mode: int, tie: int,
                   chunk_rows: int) -> None:  # pragma: no cover - numba
    _sparse_rows_jit(w, vals, m, u, rows, 0, rows.size, lr_t, b1, omb1, b2, eps, eps_mode, tie)


def _sparse_parallel(w: Any, vals: Any, m: Any, u: Any, rows: Any, lr_t: Any, b1: Any, omb1: Any,
                     b2: Any, eps: Any, eps_mode: int, tie: int,
                     chunk_rows: int) -> None:  # pragma: no cover - numba
    n = rows.size
    for c in _prange((n + chunk_rows - 1) // chunk_rows):
        s = c * chunk_rows
        _sparse_rows_jit(w, vals, m, u, rows, s, min(s + chunk_rows, n),
                         lr_t, b1, omb1, b2, eps, eps_mode, tie)


def _coalesce_span(values: Any, order: Any, starts: Any, counts: Any, max_count: int, zero: Any,
                   out: Any, lo: int, hi: int) -> bool:  # pragma: no cover - numba
    # out[s] = values[order[starts[s]]] + values[order[starts[s] + 1]] + ... (left to right),
    # then + zero once if the row has fewer than max_count entries (coalesce_rows's padding).
    # Returns whether a summed row held a NaN (then the caller recomputes: see coalesce_rows_numpy).
    dim = values.shape[1]
    nan = False
    for s in range(lo, hi):
        b = starts[s]
        c = counts[s]
        first = order[b]
        for j in range(dim):
            acc = values[first, j]
            nan |= acc != acc
            for r in range(1, c):
                x = values[order[b + r], j]
                nan |= x != x
                acc = acc + x
            if c < max_count:
                acc = acc + zero
            out[s, j] = acc
    return nan


def _coalesce_sum(values: Any, order: Any, starts: Any, counts: Any, max_count: int, zero: Any,
                  out: Any, chunk: int) -> bool:  # pragma: no cover - numba
    n = starts.size
    nchunks = (n + chunk - 1) // chunk
    nans = np.zeros(nchunks, np.bool_)
    for c in _prange(nchunks):
        nans[c] = _coalesce_span_jit(values, order, starts, counts, max_count, zero, out,
                                     c * chunk, min(n, (c + 1) * chunk))
    return bool(nans.any())


def _build_kernels(numba: Any) -> None:
    """Compile-on-first-call wrappers for the kernels; sets module globals they reference.

    The kernels are plain module-level functions above (so numba can cache them by
    file) whose callees are looked up as globals at compile time.
    """
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def address_as_pointer(typingctx: Any, address: Any, like: Any) -> Any:
        if not isinstance(address, types.Integer) or not isinstance(like, types.Array):
            return None
        sig = types.CPointer(like.dtype)(address, like)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ptr_type = context.get_value_type(like.dtype).as_pointer()
            return builder.inttoptr(args[0], ptr_type)

        return sig, codegen

    @intrinsic
    def load_intp(typingctx: Any, address: Any) -> Any:
        if not isinstance(address, types.Integer):
            return None
        sig = types.intp(address)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ptr_type = context.get_value_type(types.intp).as_pointer()
            return builder.load(builder.inttoptr(args[0], ptr_type))

        return sig, codegen

    opts = {"fastmath": False, "error_model": "numpy", "nogil": True, "cache": True}
    g = globals()
    g["_prange"] = numba.prange
    g["_carray"] = numba.carray
    g["_address_as_pointer"] = address_as_pointer
    g["_load_intp"] = load_intp
    g["_span_jit"] = numba.njit(inline="always", **opts)(_span)
    g["_many_body_jit"] = numba.njit(inline="always", **opts)(_many_body)
    _numba_state["dense_serial"] = numba.njit(**opts)(_dense_serial)
    _numba_state["dense_parallel"] = numba.njit(parallel=True, **opts)(_dense_parallel)
    _numba_state["many_serial"] = numba.njit(**opts)(_many_serial)
    _numba_state["many_parallel"] = numba.njit(parallel=True, **opts)(_many_parallel)
    _numba_state["read_words"] = numba.njit(**opts)(_read_words)
    g["_sparse_rows_jit"] = numba.njit(inline="always", **opts)(_sparse_rows)
    _numba_state["sparse_serial"] = numba.njit(**opts)(_sparse_serial)
    _numba_state["sparse_parallel"] = numba.njit(parallel=True, **opts)(_sparse_parallel)
    g["_coalesce_span_jit"] = numba.njit(inline="always", **opts)(_coalesce_span)
    _numba_state["coalesce_sum"] = numba.njit(parallel=True, **opts)(_coalesce_sum)


def select_impl(
    dtype: Any,
    impl: Impl = "auto",
    *,
    nan_in_max: str = "keep_decayed",
) -> Literal["numba", "numpy"]:
    """The implementation a call with these arguments uses.

    ``"auto"`` picks numba when it is importable and can reproduce NumPy's bits for
    ``dtype`` (never float16), else NumPy.  ``"numba"`` raises :class:`UnsupportedArrays`
    where numba cannot be used; ``"numpy"`` always works.
    """
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    dt = np.dtype(dtype)
    if impl == "numpy":
        return "numpy"
    reason = None
    if dt == np.float16:
        reason = "numba has no float16 arithmetic on the CPU"
    elif nan_in_max == "propagate" and _maximum_tie_rule(dt) is None:
        reason = "numpy.maximum breaks -0.0/+0.0 ties inconsistently on this machine"
    elif _load_numba() is None:
        reason = "numba is not installed" + (
            f" or {DISABLE_NUMBA_ENV} is set" if os.environ.get(DISABLE_NUMBA_ENV) else "")
    if reason is None:
        return "numba"
    if impl == "numba":
        raise UnsupportedArrays(f"impl='numba' is not available for {dt}: {reason}")
    return "numpy"


class _Threads:
    """Run with ``threads`` numba threads (thread-local setting), restoring the old value."""

    def __init__(self, numba: Any, threads: int | None) -> None:
        self.numba = numba
        self.threads = threads
        self.previous: int | None = None

    def __enter__(self) -> int:
        n = self.numba.get_num_threads()
        if self.threads is not None and self.threads != n:
            limit = self.numba.config.NUMBA_NUM_THREADS
            if self.threads > limit:
                raise ValueError(
                    f"threads={self.threads} exceeds numba's NUMBA_NUM_THREADS={limit}"
                )
            self.previous = n
            self.numba.set_num_threads(self.threads)
            return self.threads
        return int(n)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            self.numba.set_num_threads(self.previous)


# ---------------------------------------------------------------------------------------
# the NumPy fallback


class _Blocks:
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


def _numpy_inplace(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
                   eps_mode: int, nan_mode: int, tmp: _Blocks) -> None:
    # like the numba kernel, no RuntimeWarning for inf/NaN (0/0, inf/inf are expected values)
    with np.errstate(all="ignore"):
        _numpy_blocks(w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1),
                      lr_t, omb1, b2, eps, eps_mode, nan_mode, tmp)


def _numpy_blocks(w: Any, g: Any, m: Any, u: Any, lr_t: Any, omb1: Any, b2: Any, eps: Any,
                  eps_mode: int, nan_mode: int, tmp: _Blocks) -> None:
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


# ---------------------------------------------------------------------------------------
# one tensor


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
    eps_mode, nan_mode = _modes(epsilon, nan_in_max, impl)
    threads = _check_threads(threads)
    w = _check_array("w", w, None, None, True)
    dtype, shape = w.dtype, w.shape
    g = _check_array("g", g, dtype, shape, False)
    m = _check_array("m", m, dtype, shape, True)
    u = _check_array("u", u, dtype, shape, True)
    _check_disjoint(("w", "g", "m", "u"), (w, g, m, u))
    s_lr = _scalar("lr_t", lr_t, dtype)
    s_omb1 = _scalar("one_minus_b1", one_minus_b1, dtype)
    s_b2 = _scalar("b2", b2, dtype)
    s_eps = _scalar("eps", eps, dtype)
    chosen = select_impl(dtype, impl, nan_in_max=nan_in_max)
    if w.size == 0:
        return
    if chosen == "numpy":
        _numpy_inplace(w, g, m, u, s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode,
                       _Blocks(dtype, w.size))
        return
    numba = _load_numba()
    tie = _maximum_tie_rule(dtype) or 0
    if w.ndim != 1:
        w, g, m, u = w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1)
    args = (w, g, m, u, s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, tie)
    if w.size <= CHUNK or threads == 1:
        _numba_state["dense_serial"](*args)
        return
    with _launch_lock, _Threads(numba, threads):
        _numba_state["dense_parallel"](*args, CHUNK)


# ---------------------------------------------------------------------------------------
# many tensors

_ROLES = ("ws", "gs", "ms", "us")


def _abi_data_offset() -> int | None:
    """Byte offset of the data pointer in an ndarray object, if it can be read directly.

    Reading ``PyArrayObject->data`` at ``id(a) + offset`` costs nanoseconds where
    ``a.ctypes.data`` costs about 3 us, which for thousands of tensors per step is
    the difference between a flat buffer's speed and not.  The offset is found by
    probing arrays whose pointer is known; ``None`` (use ``a.ctypes.data``) outside
    CPython or if probing is ambiguous.  Off by default (it reads object memory by
    layout, not through an API): set ``ADAMAX_SPEC_ABI_POINTERS=1`` to opt in.
    """
    if "abi_offset" in _numba_state:
        return _numba_state["abi_offset"]
    offset = None
    if sys.implementation.name == "cpython" and os.environ.get("ADAMAX_SPEC_ABI_POINTERS") == "1":
        base = np.arange(64, dtype=np.float64)
        probes = [base, base[3:], base[::2], np.zeros(5, np.float32), np.empty(0),
                  np.ones((3, 4), np.float16), base.reshape(8, 8)[2]]
        size = np.ndarray.__basicsize__
        word = ctypes.sizeof(ctypes.c_void_p)
        found = [
            off for off in range(word, size - word + 1, word)
            if all(ctypes.c_void_p.from_address(id(p) + off).value == p.ctypes.data
                   for p in probes if p.ctypes.data)
        ]
        offset = found[0] if len(found) == 1 else None
    _numba_state["abi_offset"] = offset
    return offset


def _data_pointers(arrays: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    offset = _abi_data_offset()
    if offset is None or _load_numba() is None:
        return np.array([a.ctypes.data for a in arrays], dtype=np.intp)
    ids = np.fromiter(map(id, arrays), dtype=np.intp, count=len(arrays))
    ptrs: np.ndarray[Any, Any] = _numba_state["read_words"](ids, offset)
    if len(arrays) and ptrs[0] != arrays[0].ctypes.data:  # cheap spot check
        raise RuntimeError("ndarray data pointer probe disagrees with ctypes; please report")
    return ptrs


class ManyPlan:
    """Cached work for :func:`dense_step_many_inplace`; keep one per parameter group.

    Holds the chunk table (which depends only on the tensors' sizes) and, for each
    of ``ws``, ``gs``, ``ms``, ``us``, the last list of arrays it validated and their
    data pointers.  A later call whose list holds the *same array objects* (checked
    with ``is``, about 30 ns per array) skips validation and pointer lookup; a list
    with other arrays (fresh gradients each step, say) is validated again, at about
    0.5 us per array.  The plan keeps references to the arrays it caches.

    An array that is cached is assumed not to have changed its flags, shape or
    dtype in place since (for example ``w.flags.writeable = False``).

    ``chunk``: elements per unit of parallel work (a unit may span several small
    tensors; a large tensor is cut into several units).
    """

    def __init__(self, chunk: int = CHUNK) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.chunk = int(chunk)
        self.dtype: np.dtype[Any] | None = None
        self.shapes: list[tuple[int, ...]] | None = None
        self.sizes: np.ndarray[Any, Any] = np.zeros(0, np.intp)
        self._lists: list[tuple[np.ndarray[Any, Any], ...] | None] = [None] * 4
        self._ptrs: np.ndarray[Any, Any] | None = None
        self.spans: np.ndarray[Any, Any] = np.zeros((0, 3), np.intp)
        self.units: np.ndarray[Any, Any] = np.zeros(1, np.intp)
        self.total = 0
        self._like: np.ndarray[Any, Any] | None = None
        self._size_list: list[int] | None = None     # the sizes prepare_pointers last built for
        self._disjoint_checked = False                # prepare_pointers checked self._ptrs

    # -- chunk table -----------------------------------------------------------------
    def _build_table(self, sizes: Sequence[int]) -> None:
        """Spans ``(tensor, start, stop)`` grouped into units of ``chunk`` elements.

        Lay the tensors end to end in a virtual flat buffer, cut it every ``chunk``
        elements (the units) and at every tensor boundary (the spans).
        """
        n = np.asarray(sizes, dtype=np.intp).reshape(-1)
        ends = np.cumsum(n)
        total = int(ends[-1]) if n.size else 0
        starts = ends - n
        cuts = np.arange(0, total, self.chunk, dtype=np.intp)
        bounds = np.union1d(np.concatenate([cuts, starts[n > 0]]), [total])
        seg_start, seg_stop = bounds[:-1], bounds[1:]
        tensor = np.searchsorted(ends, seg_start, side="right")
        self.spans = np.stack(
            [tensor, seg_start - starts[tensor], seg_stop - starts[tensor]], axis=1
        ).astype(np.intp).reshape(-1, 3)
        self.units = np.append(np.searchsorted(seg_start, cuts), seg_start.size).astype(np.intp)
        self.total = total

    # -- validation ------------------------------------------------------------------
    def prepare(self, ws: Sequence[Any], gs: Sequence[Any], ms: Sequence[Any],
                us: Sequence[Any]) -> None:
        """Validate what changed since the last call and refresh the tables."""
        lists = (ws, gs, ms, us)
        n = len(ws)
        for role, lst in zip(_ROLES, lists, strict=True):
            if len(lst) != n:
                raise UnsupportedArrays(f"{role} has {len(lst)} arrays, ws has {n}")
        changed = [
            cached is None or len(cached) != n or not all(map(operator.is_, lst, cached))
            for lst, cached in zip(lists, self._lists, strict=True)
        ]
        if not any(changed) or n == 0:
            return
        self._disjoint_checked = False
        if changed[0]:
            self._lists = [None] * 4
            changed = [True] * 4
            self.dtype = _check_array("ws[0]", ws[0], None, None, True).dtype
            self.shapes = list(map(operator.attrgetter("shape"), ws))
            self.sizes = np.fromiter(map(operator.attrgetter("size"), ws), np.intp, count=n)
            self._size_list = None
            self._build_table(self.sizes.tolist())
            self._like = np.empty(0, self.dtype)
            self._ptrs = np.zeros((4, n), dtype=np.intp)
        assert self.shapes is not None and self._ptrs is not None and self.dtype is not None
        for r, (role, lst) in enumerate(zip(_ROLES, lists, strict=True)):
            if changed[r]:
                self._lists[r] = None
                _check_list(role, lst, self.dtype, self.shapes, writable=role != "gs")
        for r, lst in enumerate(lists):
            if changed[r]:
                self._ptrs[r] = _data_pointers(lst)
        self._check_disjoint()
        for r, lst in enumerate(lists):
            if changed[r]:
                self._lists[r] = tuple(lst)

    def prepare_pointers(self, dtype: Any, sizes: Sequence[int], ptrs: np.ndarray[Any, Any]) -> None:
        """Take raw data pointers in place of arrays (zero-copy buffers of another library).

        ``ptrs[r, i]`` (``r``: w, g, m, u) is the address of ``sizes[i]`` C-contiguous
        elements of ``dtype``, rows 0, 2 and 3 writable, all kept alive by the caller
        until the step has run: the caller validated that much.  This checks alignment
        and that no two spans overlap (:class:`UnsupportedArrays` otherwise); the chunk
        table is rebuilt only when ``dtype`` or ``sizes`` changed.
        """
        dt = np.dtype(dtype)
        if dt not in FLOAT_DTYPES:
            raise UnsupportedArrays(f"dtype {dt} is not float16, float32 or float64")
        n = len(sizes)
        ptrs = np.asarray(ptrs, dtype=np.intp)
        if ptrs.shape != (4, n):
            raise UnsupportedArrays(f"ptrs must have shape (4, {n}), got {ptrs.shape}")
        if self.dtype != dt or self.shapes is None or self._size_list != sizes:
            self._lists = [None] * 4
            self._disjoint_checked = False
            self.dtype = dt
            self._size_list = list(sizes)
            self.sizes = np.asarray(sizes, dtype=np.intp).reshape(n)
            self.shapes = [(int(k),) for k in self.sizes]
            self._build_table(self.sizes.tolist())
            self._like = np.empty(0, dt)
        if np.any((ptrs % dt.itemsize != 0) & (self.sizes > 0)):
            raise UnsupportedArrays("a buffer is not aligned to its dtype")
        self._lists = [None] * 4
        if self._ptrs is not None and self._ptrs.shape == ptrs.shape and np.array_equal(self._ptrs, ptrs) \
                and self._disjoint_checked:
            return                          # the same spans as last call: already checked
        self._ptrs = None
        self._check_disjoint(ptrs)
        self._ptrs = ptrs.copy()
        self._disjoint_checked = True

    def _check_disjoint(self, ptrs: np.ndarray[Any, Any] | None = None) -> None:
        ptrs = self._ptrs if ptrs is None else ptrs
        assert ptrs is not None and self.shapes is not None and self.dtype is not None
        nbytes = self.sizes * self.dtype.itemsize
        starts = ptrs.reshape(-1)
        ends = starts + np.tile(nbytes, 4)
        keep = np.flatnonzero(ends > starts)
        if keep.size < 2:
            return
        order = keep[np.argsort(starts[keep], kind="stable")]
        reach = np.maximum.accumulate(ends[order])
        bad = np.flatnonzero(starts[order[1:]] < reach[:-1])
        if bad.size:
            j = int(order[bad[0] + 1])
            # the earlier array reaching past j's start
            prev = order[: bad[0] + 1]
            i = int(prev[np.flatnonzero(ends[prev] > starts[j])[0]])
            n = len(self.shapes)
            raise UnsupportedArrays(
                f"{_ROLES[i // n]}[{i % n}] and {_ROLES[j // n]}[{j % n}] overlap in memory"
            )


# NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED (| NPY_ARRAY_WRITEABLE)
_FLAGS_READ = 0x0001 | 0x0100
_FLAGS_WRITE = _FLAGS_READ | 0x0400


def _check_list(role: str, lst: Sequence[Any], dtype: np.dtype[Any],
                shapes: list[tuple[int, ...]], *, writable: bool) -> None:
    """Every array of ``lst`` as :func:`_check_array` wants it; C-speed when all are fine."""
    n = len(lst)
    need = _FLAGS_WRITE if writable else _FLAGS_READ
    ok = (
        set(map(type, lst)) <= {np.ndarray}
        and set(map(operator.attrgetter("dtype"), lst)) <= {dtype}
        and list(map(operator.attrgetter("shape"), lst)) == shapes
        and bool(np.all(np.fromiter(map(operator.attrgetter("flags.num"), lst), np.intp,
                                    count=n) & need == need))
    )
    if not ok:
        for i, (a, shape) in enumerate(zip(lst, shapes, strict=True)):
            _check_array(f"{role}[{i}]", a, dtype, shape, writable)
        raise AssertionError("unreachable: a list check failed but no array did")


def dense_step_many_inplace(
    ws: Sequence[np.ndarray[Any, Any]],
    gs: Sequence[np.ndarray[Any, Any]],
    ms: Sequence[np.ndarray[Any, Any]],
    us: Sequence[np.ndarray[Any, Any]],
    *,
    lr_t: Any,
    one_minus_b1: Any,
    b2: Any,
    eps: Any,
    epsilon: str = "outside",
    nan_in_max: str = "keep_decayed",
    threads: int | None = None,
    impl: Impl = "auto",
    plan: ManyPlan | None = None,
) -> None:
    """:func:`dense_step_inplace` for many tensors of one dtype, in one parallel pass.

    ``ws[i]``, ``gs[i]``, ``ms[i]``, ``us[i]`` follow :func:`dense_step_inplace`'s
    rules, all tensors share one dtype (group by dtype before calling), and no two
    arrays of the call overlap.  With numba, all tensors are cut into units of about
    :data:`CHUNK` elements processed by one ``prange``, so a thousand small tensors
    cost about what one tensor of their total size costs.

    Pass the same ``plan`` (:class:`ManyPlan`) on every step of a training loop to
    reuse the chunk table and skip validating the arrays that did not change.
    Raises :class:`UnsupportedArrays` naming the first bad argument (``"gs[3]"``).
    """
    eps_mode, nan_mode = _modes(epsilon, nan_in_max, impl)
    threads = _check_threads(threads)
    if plan is None:
        plan = ManyPlan()
    n = len(ws)
    if n == 0:
        for role, lst in zip(_ROLES[1:], (gs, ms, us), strict=True):
            if len(lst):
                raise UnsupportedArrays(f"{role} has {len(lst)} arrays, ws has 0")
        return
    dtype = _check_array("ws[0]", ws[0], None, None, True).dtype
    chosen = select_impl(dtype, impl, nan_in_max=nan_in_max)
    plan.prepare(ws, gs, ms, us)
    s_lr = _scalar("lr_t", lr_t, dtype)
    s_omb1 = _scalar("one_minus_b1", one_minus_b1, dtype)
    s_b2 = _scalar("b2", b2, dtype)
    s_eps = _scalar("eps", eps, dtype)
    if plan.total == 0:
        return
    if chosen == "numba":
        _run_plan(plan, s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, threads)
        return
    tmp = _Blocks(dtype, max(a.size for a in ws))
    with np.errstate(all="ignore"):
        for w, g, m, u in zip(ws, gs, ms, us, strict=True):
            if w.size:
                _numpy_blocks(w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1),
                              s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, tmp)


def dense_step_planned(
    plan: ManyPlan,
    *,
    lr_t: Any,
    one_minus_b1: Any,
    b2: Any,
    eps: Any,
    epsilon: str = "outside",
    nan_in_max: str = "keep_decayed",
    threads: int | None = None,
) -> None:
    """:func:`dense_step_many_inplace` on the buffers of ``plan`` (:meth:`ManyPlan.prepare_pointers`).

    The numba kernel only: raises :class:`UnsupportedArrays` (nothing written) where
    :func:`select_impl` would not pick it for the plan's dtype.
    """
    eps_mode, nan_mode = _modes(epsilon, nan_in_max, "numba")
    threads = _check_threads(threads)
    dtype = plan.dtype
    if dtype is None or plan._ptrs is None:
        raise UnsupportedArrays("the plan holds no buffers")
    select_impl(dtype, "numba", nan_in_max=nan_in_max)
    s = [_scalar(name, x, dtype) for name, x in (("lr_t", lr_t), ("one_minus_b1", one_minus_b1),
                                                  ("b2", b2), ("eps", eps))]
    if plan.total:
        lr_s, omb1_s, b2_s, eps_s = s
        _run_plan(plan, lr_s, omb1_s, b2_s, eps_s, eps_mode, nan_mode, threads)


def _run_plan(plan: ManyPlan, s_lr: Any, s_omb1: Any, s_b2: Any, s_eps: Any, eps_mode: int, nan_mode: int,
              threads: int | None) -> None:
    assert plan.dtype is not None
    numba = _load_numba()
    tie = _maximum_tie_rule(plan.dtype) or 0
    args = (plan._ptrs, plan.spans, plan.units, plan._like,
            s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, tie)
    if plan.units.size <= 2 or threads == 1:
        _numba_state["many_serial"](*args)
    else:
        with _launch_lock, _Threads(numba, threads):
            _numba_state["many_parallel"](*args)


# ---------------------------------------------------------------------------------------
# sparse rows

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
    eps_mode, _ = _modes(epsilon, "propagate", impl)
    threads = _check_threads(threads)
    w = _check_array("w", w, None, None, True)
    dtype, shape = w.dtype, w.shape
    if w.ndim < 1:
        raise UnsupportedArrays("w must have at least one dimension (rows)")
    m = _check_array("m", m, dtype, shape, True)
    u = _check_array("u", u, dtype, shape, True)
    k = rows.shape[0] if isinstance(rows, np.ndarray) and rows.ndim == 1 else -1
    if k < 0 or rows.dtype.kind not in "iu":
        raise UnsupportedArrays("rows must be a 1-d integer numpy array")
    values = _check_array("values", values, dtype, (k, *shape[1:]), False)
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    if k and (rows[0] < 0 or rows[-1] >= shape[0] or not bool(np.all(rows[1:] > rows[:-1]))):
        raise UnsupportedArrays("rows must be sorted, unique and within [0, w.shape[0])")
    _check_disjoint(("w", "values", "m", "u"), (w, values, m, u))
    s = [_scalar(name, x, dtype) for name, x in (
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
            _numpy_sparse(w2, v2, m2, u2, rows, lr_s, b1_s, omb1_s, b2_s, eps_s, eps_mode)
            return
        numba = _load_numba()
        tie = _maximum_tie_rule(dtype) or 0
        chunk_rows = max(1, SPARSE_CHUNK_ELEMENTS // max(1, v2.shape[1]))
        args = (w2, v2, m2, u2, rows, *s, eps_mode, tie, chunk_rows)
        if k <= chunk_rows or threads == 1:
            _numba_state["sparse_serial"](*args)
            return
        with _launch_lock, _Threads(numba, threads):
            _numba_state["sparse_parallel"](*args)

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
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if values.ndim > 1 and values.size and impl != "numpy" and select_impl(values.dtype) == "numba":
        flat = np.ascontiguousarray(values.reshape(k, -1))
        out = np.empty((starts.size, flat.shape[1]), values.dtype)
        chunk = max(1, SPARSE_CHUNK_ELEMENTS // flat.shape[1])
        with _launch_lock:
            nan = _numba_state["coalesce_sum"](flat, order, starts, counts, max_count, zero, out, chunk)
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


def _numpy_sparse(w: Any, v: Any, m: Any, u: Any, rows: Any, lr_t: Any, b1: Any, omb1: Any,
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


def _kernel_names() -> dict[str, Callable[..., Any]]:
    """The compiled kernels (for tests and the benchmark); empty without numba."""
    _load_numba()
    return {k: v for k, v in _numba_state.items() if callable(v)}
