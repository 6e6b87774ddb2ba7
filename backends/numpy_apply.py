"""The NumPy fast path of ``Adamax.apply_gradients``: the whole step in place.

For writable, C-contiguous NumPy parameters and moments this computes exactly what
:func:`adamax_spec.core.apply_gradients` computes, bit for bit:

* clipping, learning rate and step scalars come from the core's :class:`~adamax_spec.core.Step`;
* dense gradients (and, under a ``dense`` sparse profile, densified ones):
  ``m += (g - m)*(1 - b1)``; ``u = max(b2*u, |g|)`` (profile's epsilon and NaN rule);
  ``w -= lr_t * m/(u + eps)``, by :func:`.numpy_backend.dense_step_many_inplace`, one
  fused pass over all tensors of a dtype (numba; blocked in-place ufuncs without it);
* lazy sparse gradients: duplicates summed by :func:`.numpy_backend.coalesce_rows_numpy`
  (the bits of :func:`adamax_spec.sparse.coalesce_rows`: one sort of the indices and one
  pass over the index entries), then ``m = m*b1 + g*(1 - b1)`` and the rest
  on the named rows only, by :func:`.numpy_backend.sparse_step_inplace`.

Every array is checked before anything is written; :func:`step` returns ``None``
(nothing changed) when some array cannot be updated in place (read-only, not
contiguous, not a plain ``ndarray``, overlapping another, an unsupported dtype).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from adamax_spec.core import AdamaxState, Step, StepScalars
from adamax_spec.sparse import IndexedSlices, coalesce_rows, densify

from . import numpy_backend as nb

__all__ = ["IN_PLACE", "DenseGroup", "SparseUpdate", "accepts", "in_place_targets", "prepare", "step"]

#: This fast path writes the caller's arrays (``Adamax.apply_gradients``).
IN_PLACE = True

Scalars = tuple[Any, Any, Any, Any, Any]      # lr_t, b1, 1 - b1, b2, eps in dtype D


class DenseGroup:
    """The dense updates of one dtype: ``ws[i] -= ...`` with ``gs[i]``, ``ms[i]``, ``us[i]``."""

    __slots__ = ("gs", "ms", "us", "ws")

    def __init__(self) -> None:
        self.ws: list[np.ndarray[Any, Any]] = []
        self.gs: list[np.ndarray[Any, Any]] = []
        self.ms: list[np.ndarray[Any, Any]] = []
        self.us: list[np.ndarray[Any, Any]] = []


SparseUpdate = tuple[Any, Any, Any, Any, Any]   # w, rows (unique), summed values, m, u


def scalars_of(s: StepScalars, to_host: Callable[[Any], Any] = lambda x: x) -> Scalars:
    """The step's scalars in the parameter dtype, as NumPy scalars."""
    lr_t, b1, omb1, b2, eps = (to_host(x) for x in (s.lr_t, s.beta_1, s.one_minus_beta_1, s.beta_2,
                                      s.epsilon))
    return lr_t, b1, omb1, b2, eps


def in_place_targets(variables: Sequence[Any], cache: dict[str, Any]) -> list[Any] | None:
    """``variables`` if every one is a plain writable ``ndarray`` (what ``Adamax.apply_gradients``
    checks one by one), else ``None`` (the caller checks each and raises where it must)."""
    if set(map(type, variables)) <= {np.ndarray} and all(map(_writeable, variables)):
        return list(variables)
    return None


_writeable = operator.attrgetter("flags.writeable")


def accepts(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState, *,
            cache: dict[str, Any] | None = None) -> bool:
    """``True`` only if :func:`adamax_spec.validation.check_step` certainly accepts these:
    plain float16/32/64 ``ndarray`` parameters, moments and dense gradients (or ``None``) of
    matching shape and dtype, and at least one gradient.  Anything else (sparse gradients
    included) answers ``False`` and the full check runs.
    """
    n = len(params)
    if n == 0 or len(grads) != n or len(state.m) != n or len(state.u) != n:
        return False
    present = [g for g in grads if g is not None]
    if not present:
        return False
    if not (set(map(type, params)) | set(map(type, present)) | set(map(type, state.m))
            | set(map(type, state.u))) <= {np.ndarray}:
        return False
    dtypes = list(map(_dtype, params))
    if not set(dtypes) <= set(nb.FLOAT_DTYPES):
        return False
    shapes = list(map(_shape, params))
    if list(map(_dtype, state.m)) != dtypes or list(map(_dtype, state.u)) != dtypes \
            or list(map(_shape, state.m)) != shapes or list(map(_shape, state.u)) != shapes:
        return False
    if len(present) == n:
        return list(map(_dtype, grads)) == dtypes and list(map(_shape, grads)) == shapes
    return all(g is None or (g.dtype == d and g.shape == s) for g, d, s in zip(grads, dtypes, shapes, strict=True))


_dtype = operator.attrgetter("dtype")
_shape = operator.attrgetter("shape")


def step(params: Sequence[Any], st: Step, state: AdamaxState, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """One in-place step on NumPy arrays, or ``None`` (nothing changed) if not possible."""
    grads = st.grads
    if all(map(operator.is_not, grads, repeat(None))):      # every gradient present: no index lists
        live: Sequence[int] = range(len(grads))
        kinds = set(map(type, grads))
        types = set(map(type, params)) | set(map(type, state.m)) | set(map(type, state.u))
    else:
        live = [i for i, g in enumerate(grads) if g is not None]
        kinds = set(map(type, (grads[i] for i in live)))
        types = set(map(type, [params[i] for i in live] + [state.m[i] for i in live]
                        + [state.u[i] for i in live]))
    if not types <= {np.ndarray} or not kinds <= {np.ndarray, IndexedSlices}:
        return None
    if IndexedSlices in kinds and any(type(grads[i].values) is not np.ndarray for i in live
                                      if isinstance(grads[i], IndexedSlices)):
        return None
    profile = st.profile
    scalars: dict[np.dtype[Any], Scalars] = {}
    ws = list(params) if isinstance(live, range) else [params[i] for i in live]
    for d, w in dict(zip(map(_dtype, ws), ws, strict=True)).items():      # a parameter of each dtype
        scalars[d] = scalars_of(st.scalars(w))
    groups: dict[np.dtype[Any], DenseGroup] = {}
    sparse: list[SparseUpdate] = []
    if len(scalars) == 1 and IndexedSlices not in kinds:       # the common case, without a loop
        group = groups[next(iter(scalars))] = DenseGroup()
        if isinstance(live, range):
            group.ws, group.gs, group.ms, group.us = ws, grads, list(state.m), list(state.u)
        else:
            group.ws = ws
            group.gs = [grads[i] for i in live]
            group.ms = [state.m[i] for i in live]
            group.us = [state.u[i] for i in live]
    else:
        for i in live:
            w, g, m, u = params[i], grads[i], state.m[i], state.u[i]
            if isinstance(g, IndexedSlices):
                if profile.sparse == "lazy":
                    rows, values = _coalesce(g.indices, g.values)
                    sparse.append((w, rows, values, m, u))
                    continue
                g = densify(g, w)
            found = groups.get(w.dtype)
            group = found if found is not None else DenseGroup()
            if found is None:
                groups[w.dtype] = group
            group.ws.append(w)
            group.gs.append(g)
            group.ms.append(m)
            group.us.append(u)
    run = prepare(groups, sparse, scalars, profile.epsilon, profile.nan_in_max, cache)
    if run is None:
        return None
    run()
    return list(params), AdamaxState(st.t, state.m, state.u)


def _coalesce(indices: Any, values: Any) -> tuple[Any, Any]:
    """:func:`.numpy_backend.coalesce_rows_numpy` (same bits as the generic
    :func:`~adamax_spec.sparse.coalesce_rows`, one sort and one pass), or the generic one."""
    try:
        return nb.coalesce_rows_numpy(indices, values)
    except nb.UnsupportedArrays:
        return coalesce_rows(indices, values)


def prepare(groups: dict[np.dtype[Any], DenseGroup], sparse: Sequence[SparseUpdate],
            scalars: dict[np.dtype[Any], Scalars], epsilon: str, nan_in_max: str,
            cache: dict[str, Any], threads: int | None = None) -> Callable[[], None] | None:
    """Validate every update; return a function that applies them all, or ``None``.

    Nothing is written before the returned function is called, so a refusal (any
    :class:`~.numpy_backend.UnsupportedArrays`) leaves every array as it was.
    """
    runs: list[Callable[[], None]] = []
    checked: list[tuple[str, np.ndarray[Any, Any], bool]] = []
    try:
        for dtype, group in groups.items():
            plan = cache.get(f"plan:{dtype}")
            if plan is None:
                plan = cache[f"plan:{dtype}"] = nb.ManyPlan()
            plan.prepare(group.ws, group.gs, group.ms, group.us)
            lr_t, _, omb1, b2, eps = (nb.as_scalar("scalar", x, dtype) for x in scalars[dtype])
            runs.append(_dense_run(group, plan, lr_t, omb1, b2, eps, epsilon, nan_in_max, threads))
            if len(groups) > 1 or sparse:
                checked += [(f"{role}[{j}]", a, role != "gs") for role, lst in
                            (("ws", group.ws), ("gs", group.gs), ("ms", group.ms), ("us", group.us))
                            for j, a in enumerate(lst)]
        for j, (w, rows, values, m, u) in enumerate(sparse):
            lr_t, b1, omb1, b2, eps = scalars[w.dtype]
            rows = np.asarray(rows)
            runs.append(nb.prepare_sparse(w, rows, np.ascontiguousarray(values), m, u, lr_t=lr_t,
                                          beta_1=b1, one_minus_b1=omb1, b2=b2, eps=eps,
                                          epsilon=epsilon, threads=threads))
            checked += [(f"sparse w[{j}]", w, True), (f"sparse values[{j}]", values, False),
                        (f"sparse m[{j}]", m, True), (f"sparse u[{j}]", u, True)]
        if checked:
            _check_disjoint(checked)
    except nb.UnsupportedArrays:
        return None

    def run_all() -> None:
        for run in runs:
            run()

    return run_all


def _dense_run(group: DenseGroup, plan: nb.ManyPlan, lr_t: Any, omb1: Any, b2: Any, eps: Any,
               epsilon: str, nan_in_max: str, threads: int | None) -> Callable[[], None]:
    def run() -> None:
        nb.dense_step_many_inplace(group.ws, group.gs, group.ms, group.us, lr_t=lr_t,
                                   one_minus_b1=omb1, b2=b2, eps=eps, epsilon=epsilon,
                                   nan_in_max=nan_in_max, threads=threads, plan=plan)
    return run


def _check_disjoint(arrays: Sequence[tuple[str, np.ndarray[Any, Any], bool]]) -> None:
    """No array written by the step shares memory with any other array of the step."""
    check_spans([(name, a.__array_interface__["data"][0], a.nbytes, written)
                 for name, a, written in arrays])


def check_spans(spans: Sequence[tuple[str, int, int, bool]]) -> None:
    """``(name, address, nbytes, written)``: no written span overlaps any other span.

    Spans only read (gradients) may overlap each other.  Raises
    :class:`~.numpy_backend.UnsupportedArrays` naming two overlapping arrays.
    """
    ordered = sorted((start, start + size, written, name) for name, start, size, written in spans if size)
    reach_end, reach_written, reach_name = -1, False, ""
    for start, end, written, name in ordered:
        if start < reach_end and (written or reach_written):
            raise nb.UnsupportedArrays(f"{reach_name} and {name} overlap in memory")
        if end > reach_end:
            reach_end, reach_written, reach_name = end, written, name
        elif written:
            reach_written = True
