"""The numba side of the in-place NumPy fast path: loading numba, threads, the compiled kernels.

numba is imported on the first :func:`load_numba` (never at import time: ``import
adamax_spec`` must stay cheap), unless the environment variable
:data:`DISABLE_NUMBA_ENV` is set.  The kernels are plain module-level functions
compiled with ``fastmath=False`` (no FMA contraction, no reassociation) and
``error_model="numpy"``, cached on disk (``__pycache__``), so each rounds every operation
once, in the order NumPy's ufuncs do.  The dense step (:mod:`~adamax_spec.backends.numpy_backend`;
the sparse kernels: :mod:`~adamax_spec.backends.numpy_rows`)::

    m_new = m + (g - m) * one_minus_b1
    dec   = b2 * u   (+ eps: "inside_decay")          mag = |g|   (+ eps: "inside")
    u_new = mag if dec < mag else dec                  ("keep_decayed")
          | numpy.maximum(dec, mag)                    ("propagate": NaN propagates)
    w_new = w - lr_t * (m_new / (u_new + eps))         ("outside"; else m_new / u_new)

``numpy.maximum`` of ``-0.0`` and ``+0.0`` returns a machine-dependent zero;
:func:`maximum_tie_rule` finds which, and the kernels reproduce it.  numba has no
float16 arithmetic on the CPU: :func:`select_impl` sends float16 to NumPy.

Kernels: ``dense_*`` (one tensor, ``prange`` over :data:`CHUNK`-element chunks),
``many_*`` (many tensors through a pointer table, see
:mod:`~adamax_spec.backends.numpy_plans`), ``read_words`` (ndarray data pointers),
``sparse_*`` (the lazy sparse step on named rows) and ``coalesce_sum`` (duplicate
rows summed left to right), used by :mod:`~adamax_spec.backends.numpy_rows`.

Parallel launches are serialised by :data:`launch_lock` (numba's default ``workqueue``
threading layer does not allow concurrent launches); :class:`Threads` sets numba's
thread count for one launch.  Not thread-safe across Python threads calling
concurrently with different ``threads`` values.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .numpy_checks import IMPLS, Impl, UnsupportedArrays

__all__ = [
    "CHUNK",
    "DISABLE_NUMBA_ENV",
    "KERNELS",
    "Threads",
    "kernel_names",
    "launch_lock",
    "load_numba",
    "maximum_tie_rule",
    "numba_available",
    "select_impl",
]

#: Elements per unit of work of the numba kernels (one ``prange`` iteration).
CHUNK = 64 * 1024
#: Set this environment variable to a non-empty value to never use numba.
DISABLE_NUMBA_ENV = "ADAMAX_SPEC_DISABLE_NUMBA"

_numba_state: dict[str, Any] = {}          # "module": numba, or None without it
#: The compiled kernels by name (filled by the first :func:`load_numba` that finds numba).
KERNELS: dict[str, Any] = {}
_numba_lock = threading.Lock()
#: Held around every parallel launch: numba's default ``workqueue`` layer allows one at a time.
launch_lock = threading.Lock()


def numba_available() -> bool:
    """Whether the numba kernels can be used (imports numba on the first call)."""
    return load_numba() is not None


def load_numba() -> Any:
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


def kernel_names() -> dict[str, Callable[..., Any]]:
    """The compiled kernels (for tests and the benchmark); empty without numba."""
    load_numba()
    return dict(KERNELS)


class Threads:
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
# which implementation: numba where it reproduces NumPy's bits


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
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    dt = np.dtype(dtype)
    if impl == "numpy":
        return "numpy"
    reason = None
    if dt == np.float16:
        reason = "numba has no float16 arithmetic on the CPU"
    elif nan_in_max == "propagate" and maximum_tie_rule(dt) is None:
        reason = "numpy.maximum breaks -0.0/+0.0 ties inconsistently on this machine"
    elif load_numba() is None:
        reason = "numba is not installed" + (
            f" or {DISABLE_NUMBA_ENV} is set" if os.environ.get(DISABLE_NUMBA_ENV) else "")
    if reason is None:
        return "numba"
    if impl == "numba":
        raise UnsupportedArrays(f"impl='numba' is not available for {dt}: {reason}")
    return "numpy"


# which tie NumPy's maximum picks on this machine

_TIE_RULES: dict[np.dtype[Any], int | None] = {}


def maximum_tie_rule(dtype: np.dtype[Any]) -> int | None:
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
# the kernels (compiled on first use)

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
    KERNELS["dense_serial"] = numba.njit(**opts)(_dense_serial)
    KERNELS["dense_parallel"] = numba.njit(parallel=True, **opts)(_dense_parallel)
    KERNELS["many_serial"] = numba.njit(**opts)(_many_serial)
    KERNELS["many_parallel"] = numba.njit(parallel=True, **opts)(_many_parallel)
    KERNELS["read_words"] = numba.njit(**opts)(_read_words)
    g["_sparse_rows_jit"] = numba.njit(inline="always", **opts)(_sparse_rows)
    KERNELS["sparse_serial"] = numba.njit(**opts)(_sparse_serial)
    KERNELS["sparse_parallel"] = numba.njit(parallel=True, **opts)(_sparse_parallel)
    g["_coalesce_span_jit"] = numba.njit(inline="always", **opts)(_coalesce_span)
    KERNELS["coalesce_sum"] = numba.njit(parallel=True, **opts)(_coalesce_sum)
