"""Many tensors in one pass: the pointer plans of the in-place NumPy fast path.

:func:`dense_step_many_inplace` updates many tensors of one dtype with the dense step
of :mod:`~adamax_spec.backends.numpy_backend` (same bits as one
:func:`~adamax_spec.backends.numpy_backend.dense_step_inplace` call per tensor).  With
numba, one ``prange`` runs over a chunk table: lay the tensors end to end in a
virtual flat buffer of ``total = sum(sizes)`` elements, cut it every ``chunk``
elements (the *units*, one ``prange`` iteration each) and at every tensor boundary
(the *spans*, rows ``(tensor, start, stop)``); a unit's spans are addressed through a
``(4, n)`` table of data pointers (rows ``w``, ``g``, ``m``, ``u``).  So a thousand
small tensors cost about what one tensor of their total size costs.  Without numba
(or for float16) the tensors go one by one through the blocked NumPy fallback.

A :class:`ManyPlan` caches the chunk table (it depends only on the sizes) and the
last validated array lists with their pointers, so a training loop that passes the
same arrays each step skips validation.  :meth:`ManyPlan.prepare_pointers` takes raw
addresses instead (zero-copy buffers of another library, used by the torch fast
path), run by :func:`dense_step_planned`.
"""

from __future__ import annotations

import ctypes
import operator
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .numpy_checks import (
    FLOAT_DTYPES,
    Impl,
    UnsupportedArrays,
    as_scalar,
    check_array,
    check_threads,
    modes,
)
from .numpy_fallback import Blocks, dense_blocks
from .numpy_numba import (
    CHUNK,
    KERNELS,
    Threads,
    launch_lock,
    load_numba,
    maximum_tie_rule,
    select_impl,
)

__all__ = ["ManyPlan", "dense_step_many_inplace", "dense_step_planned"]

_abi_state: dict[str, int | None] = {}       # "abi_offset": see _abi_data_offset
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
    if "abi_offset" in _abi_state:
        return _abi_state["abi_offset"]
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
    _abi_state["abi_offset"] = offset
    return offset


def _data_pointers(arrays: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """The data addresses of ``arrays`` (``intp``), read directly where :func:`_abi_data_offset` allows."""
    offset = _abi_data_offset()
    if offset is None or load_numba() is None:
        return np.array([a.ctypes.data for a in arrays], dtype=np.intp)
    ids = np.fromiter(map(id, arrays), dtype=np.intp, count=len(arrays))
    ptrs: np.ndarray[Any, Any] = KERNELS["read_words"](ids, offset)
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
            self.dtype = check_array("ws[0]", ws[0], None, None, True).dtype
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
    """Every array of ``lst`` as :func:`check_array` wants it; C-speed when all are fine."""
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
            check_array(f"{role}[{i}]", a, dtype, shape, writable)
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
    """:func:`~adamax_spec.backends.numpy_backend.dense_step_inplace` for many tensors of one dtype, in one pass.

    ``ws[i]``, ``gs[i]``, ``ms[i]``, ``us[i]`` follow ``dense_step_inplace``'s
    rules, all tensors share one dtype (group by dtype before calling), and no two
    arrays of the call overlap.  With numba, all tensors are cut into units of about
    :data:`CHUNK` elements processed by one ``prange``, so a thousand small tensors
    cost about what one tensor of their total size costs.

    Pass the same ``plan`` (:class:`ManyPlan`) on every step of a training loop to
    reuse the chunk table and skip validating the arrays that did not change.
    Raises :class:`UnsupportedArrays` naming the first bad argument (``"gs[3]"``).
    """
    eps_mode, nan_mode = modes(epsilon, nan_in_max, impl)
    threads = check_threads(threads)
    if plan is None:
        plan = ManyPlan()
    n = len(ws)
    if n == 0:
        for role, lst in zip(_ROLES[1:], (gs, ms, us), strict=True):
            if len(lst):
                raise UnsupportedArrays(f"{role} has {len(lst)} arrays, ws has 0")
        return
    dtype = check_array("ws[0]", ws[0], None, None, True).dtype
    chosen = select_impl(dtype, impl, nan_in_max=nan_in_max)
    plan.prepare(ws, gs, ms, us)
    s_lr = as_scalar("lr_t", lr_t, dtype)
    s_omb1 = as_scalar("one_minus_b1", one_minus_b1, dtype)
    s_b2 = as_scalar("b2", b2, dtype)
    s_eps = as_scalar("eps", eps, dtype)
    if plan.total == 0:
        return
    if chosen == "numba":
        _run_plan(plan, s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, threads)
        return
    tmp = Blocks(dtype, max(a.size for a in ws))
    with np.errstate(all="ignore"):
        for w, g, m, u in zip(ws, gs, ms, us, strict=True):
            if w.size:
                dense_blocks(w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1),
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
    eps_mode, nan_mode = modes(epsilon, nan_in_max, "numba")
    threads = check_threads(threads)
    dtype = plan.dtype
    if dtype is None or plan._ptrs is None:
        raise UnsupportedArrays("the plan holds no buffers")
    select_impl(dtype, "numba", nan_in_max=nan_in_max)
    s = [as_scalar(name, x, dtype) for name, x in (("lr_t", lr_t), ("one_minus_b1", one_minus_b1),
                                                    ("b2", b2), ("eps", eps))]
    if plan.total:
        lr_s, omb1_s, b2_s, eps_s = s
        _run_plan(plan, lr_s, omb1_s, b2_s, eps_s, eps_mode, nan_mode, threads)


def _run_plan(plan: ManyPlan, s_lr: Any, s_omb1: Any, s_b2: Any, s_eps: Any, eps_mode: int, nan_mode: int,
              threads: int | None) -> None:
    """The ``many_*`` kernel over the plan's pointer table (parallel unless one unit or one thread)."""
    assert plan.dtype is not None
    numba = load_numba()
    tie = maximum_tie_rule(plan.dtype) or 0
    args = (plan._ptrs, plan.spans, plan.units, plan._like,
            s_lr, s_omb1, s_b2, s_eps, eps_mode, nan_mode, tie)
    if plan.units.size <= 2 or threads == 1:
        KERNELS["many_serial"](*args)
    else:
        with launch_lock, Threads(numba, threads):
            KERNELS["many_parallel"](*args)
