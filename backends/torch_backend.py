"""The torch fast paths of ``Adamax.apply_gradients`` (imported only for torch tensors).

CPU, float32/64, every gradient dense
    :class:`_Plan`: the data pointers of the parameters and moments, cached on the identity
    of the parameter list (:func:`in_place_targets`' detached tensors) and of the moment
    tuples, and the new gradients' pointers, checked and read by C-speed passes each step,
    go to :func:`.numpy_backend.dense_step_planned` (the fused numba pass of
    :func:`.numpy_backend.dense_step_many_inplace`): about 1 us of Python per tensor.
CPU, float16/32/64, no ``requires_grad`` (sparse rows, ``None`` gradients, float16)
    Zero-copy NumPy views (``Tensor.numpy()``) of the parameters, gradients and moments
    go through :mod:`.numpy_apply`: the fused numba kernels, one pass over all tensors
    of a dtype, lazy sparse rows updated where they lie.  Clipping, the learning rate
    and the step scalars are computed by the core on the torch tensors (the profile's
    rounding, torch's arithmetic), then handed to the kernel as NumPy scalars of the
    same value.  The update is the generic expression with one rounding per operation;
    the only possible difference from the generic torch path is the sign of a zero
    ``u`` when ``b2*u`` and ``|g|`` are zeros of opposite signs under a ``propagate``
    profile (``torch.maximum`` itself breaks that tie differently for different lengths).
    ``torch.compile`` was not used: it costs seconds per new shape set and the numba
    pass is already at the memory-bandwidth bound (``docs/performance.md``).
Everything else (CUDA, bfloat16, tensors requiring grad)
    Dense gradients grouped by (device, dtype), updated with ``torch._foreach_*`` ops:
    the generic sequence of operations, each a multi-tensor launch on CUDA::

        d = g - m; d *= 1 - b1; m += d          # m + (g - m)*(1 - b1)
        dec = b2*u; mag = |g|                    # epsilon inside / inside_decay: + eps
        u = where(dec < mag, mag, dec)           # keep_decayed; propagate: maximum(dec, mag)
        q = m / (u + eps); q *= lr_t; w -= q     # epsilon outside; else m / u

    Sparse gradients take the generic path there (its cost is already proportional
    to the rows named: gathers and an in-place row write).

:func:`step` validates every tensor first and returns ``None`` (nothing written) when
it cannot take the step: the generic path then runs.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from adamax_spec.core import AdamaxState, Step
from adamax_spec.sparse import IndexedSlices, coalesce_rows, densify

from . import numpy_apply
from . import numpy_backend as nb

__all__ = ["IN_PLACE", "accepts", "foreach_update", "in_place_targets", "step"]

#: This fast path writes the caller's tensors (``Adamax.apply_gradients``).
IN_PLACE = True

_NUMPY_DTYPES: dict[Any, np.dtype[Any]] = {torch.float16: np.dtype(np.float16), torch.float32: np.dtype(np.float32),
                 torch.float64: np.dtype(np.float64)}
_FLOATS = (*_NUMPY_DTYPES, torch.bfloat16)
_dtype = operator.attrgetter("dtype")
_shape = operator.attrgetter("shape")
_device = operator.attrgetter("device")


_data_ptr = torch.Tensor.data_ptr
_is_contiguous = torch.Tensor.is_contiguous
_is_neg = torch.Tensor.is_neg
_numel = torch.Tensor.numel
_requires_grad = operator.attrgetter("requires_grad")
_is_cpu = operator.attrgetter("is_cpu")
_layout = operator.attrgetter("layout")


def _fingerprint(ts: Sequence[Any]) -> tuple[Any, ...]:
    """What a cached detached view of each tensor depends on: storage address, shape, dtype,
    layout, contiguity and ``requires_grad`` (C-speed passes, about 1 us per tensor in all)."""
    return (list(map(_data_ptr, ts)), list(map(_shape, ts)), list(map(_dtype, ts)),
            list(map(_requires_grad, ts)), all(map(_is_contiguous, ts)))


class _Targets:
    """``in_place_targets``' answer for one list of variables, reused while they keep their
    fingerprint.  ``private``: every target is a ``detach()`` made here (the caller cannot
    reach it, so its metadata never changes); each holds its parameter's storage alive."""

    __slots__ = ("fingerprint", "params", "private", "variables")

    def __init__(self, variables: Sequence[Any]) -> None:
        self.variables = tuple(variables)
        self.params = tuple(v.detach() if v.requires_grad else v for v in variables)
        self.private = all(map(_requires_grad, variables))
        self.fingerprint = _fingerprint(variables)


def in_place_targets(variables: Sequence[Any], cache: dict[str, Any]) -> list[Any] | None:
    """The tensors ``apply_gradients`` writes: ``v.detach()`` for a leaf requiring grad, else
    ``v`` (every plain tensor is writable).  The same objects as last step while the variables
    are the same objects with the same :func:`_fingerprint` (so a ``p.data = ...`` or a new
    parameter list makes new ones), letting :func:`accepts` and :func:`step` cache their work.
    ``None`` (the caller's own per-variable checks run) for tensor subclasses."""
    found = cache.get("targets")
    if (found is not None and len(found.variables) == len(variables)
            and all(map(operator.is_, variables, found.variables)) and _fingerprint(variables) == found.fingerprint):
        return list(found.params)
    if not set(map(type, variables)) <= {torch.Tensor, torch.nn.Parameter}:
        return None
    cache["targets"] = made = _Targets(variables)
    return list(made.params)


def _private(params: Sequence[Any], cache: dict[str, Any] | None) -> bool:
    """Whether ``params`` are the detached tensors :func:`in_place_targets` made (unchanging)."""
    found = None if cache is None else cache.get("targets")
    return (found is not None and found.private and len(found.params) == len(params)
            and all(map(operator.is_, params, found.params)))


def accepts(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState, *,
            cache: dict[str, Any] | None = None) -> bool:
    """``True`` only if ``check_step`` certainly accepts: plain tensors of a float dtype,
    moments and dense gradients (or ``None``) of matching shape, dtype and device.

    With ``cache``: parameters that are :func:`in_place_targets`' own detached tensors, and
    moments that are the same tuples as in the last accepted call (the optimizer's state),
    were checked against each other then; only the gradients are checked again.
    """
    if cache is not None:
        cache.pop("proved", None)
    if cache is not None and _private(params, cache):
        known = cache.get("accepted")
        if known is not None and known[0] is state.m and known[1] is state.u and known[2] == len(params) \
                and all(map(operator.is_, params, known[3])):
            _, _, _, _, dtypes, shapes, cpu = known
            if not (cpu and len(grads) == len(params) and set(map(type, grads)) <= {torch.Tensor}
                    and list(map(_dtype, grads)) == dtypes and list(map(_shape, grads)) == shapes
                    and all(map(_is_cpu, grads))):
                return False
            # what the planned step needs besides: strided, contiguous, no negative bit, the addresses
            if set(map(_layout, grads)) == {torch.strided} and all(map(_is_contiguous, grads)) \
                    and not any(map(_is_neg, grads)):
                cache["proved"] = (state, tuple(grads), np.fromiter(map(_data_ptr, grads), np.intp, count=len(grads)))
            return True
    ok = _accepts(params, grads, state)
    if ok and cache is not None and _private(params, cache):
        cache["accepted"] = (state.m, state.u, len(params), tuple(params), list(map(_dtype, params)),
                             list(map(_shape, params)), all(map(_is_cpu, params)))
    return ok


def _accepts(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState) -> bool:
    n = len(params)
    if n == 0 or len(grads) != n or len(state.m) != n or len(state.u) != n:
        return False
    present = [g for g in grads if g is not None]
    if not present or not (set(map(type, params)) | set(map(type, present)) | set(map(type, state.m))
                           | set(map(type, state.u))) <= {torch.Tensor}:
        return False
    dtypes = list(map(_dtype, params))
    if not set(dtypes) <= set(_FLOATS):
        return False
    shapes, devices = list(map(_shape, params)), list(map(_device, params))
    for lst in (state.m, state.u):
        if list(map(_dtype, lst)) != dtypes or list(map(_shape, lst)) != shapes \
                or list(map(_device, lst)) != devices:
            return False
    return all(g is None or (g.dtype == d and g.shape == s and g.device == v)
               for g, d, s, v in zip(grads, dtypes, shapes, devices, strict=True))


def step(params: Sequence[Any], st: Step, state: AdamaxState, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """One in-place step on torch tensors, or ``None`` (nothing changed) if not possible."""
    grads = st.grads
    with torch.no_grad():
        if _planned_step(params, st, state, cache):
            return list(params), AdamaxState(st.t, state.m, state.u)
    live = [i for i, g in enumerate(grads) if g is not None]
    tensors = [params[i] for i in live] + [state.m[i] for i in live] + [state.u[i] for i in live]
    kinds = set(map(type, (grads[i] for i in live)))
    if not set(map(type, tensors)) <= {torch.Tensor} or not kinds <= {torch.Tensor, IndexedSlices}:
        return None
    if any(t.requires_grad for t in tensors):
        return None
    cpu = all(t.device.type == "cpu" and t.dtype in _NUMPY_DTYPES for t in tensors)
    if not cpu and IndexedSlices in kinds:
        return None
    with torch.no_grad():
        ok = _cpu_step(params, st, live, state, cache) if cpu else foreach_update(params, st, live, state)
    if not ok:
        return None
    return list(params), AdamaxState(st.t, state.m, state.u)


class _Plan:
    """The dense step over CPU tensors of one dtype by their data pointers (no NumPy views).

    Built for one parameter list and the moment tuples of one optimizer state, checked then
    (plain strided contiguous CPU tensors, float32/64, not requiring grad, no negative bit);
    it holds their storages alive, so an address it cached cannot be reused by another
    tensor.  Each step re-reads the moments' (and any caller-owned parameter's) addresses,
    and checks and reads the new gradients: C-speed passes, no per-tensor Python code.
    """

    __slots__ = ("dtype", "m", "many", "n", "np_dtype", "params", "private", "ptrs", "sizes", "storages", "u")

    def __init__(self, params: Sequence[Any], state: AdamaxState, private: bool) -> None:
        self.params, self.m, self.u, self.n = tuple(params), state.m, state.u, len(params)
        self.private = private
        tensors = [*params, *state.m, *state.u]
        dtypes = set(map(_dtype, tensors))
        if (len(dtypes) != 1 or not set(map(type, tensors)) <= {torch.Tensor}
                or not all(map(_is_cpu, tensors)) or set(map(_layout, tensors)) != {torch.strided}
                or not all(map(_is_contiguous, tensors)) or any(map(_requires_grad, tensors))
                or any(map(_is_neg, tensors))):
            raise nb.UnsupportedArrays("not plain contiguous CPU tensors of one dtype")
        self.dtype = dtypes.pop()
        if self.dtype not in _NUMPY_DTYPES:
            raise nb.UnsupportedArrays(f"dtype {self.dtype}")
        self.np_dtype = _NUMPY_DTYPES[self.dtype]
        self.sizes = list(map(_numel, params))
        if list(map(_numel, state.m)) != self.sizes or list(map(_numel, state.u)) != self.sizes:
            raise nb.UnsupportedArrays("moments do not match the parameters")
        self.storages = [t.untyped_storage() for t in tensors]
        self.ptrs = np.zeros((4, self.n), np.intp)
        self.ptrs[0] = np.fromiter(map(_data_ptr, params), np.intp, count=self.n)
        self.many = nb.ManyPlan()

    def matches(self, params: Sequence[Any], state: AdamaxState) -> bool:
        return (state.m is self.m and state.u is self.u and len(params) == self.n
                and all(map(operator.is_, params, self.params)))


def _planned_step(params: Sequence[Any], st: Step, state: AdamaxState, cache: dict[str, Any]) -> bool:
    """The step through a cached :class:`_Plan` when every gradient is a dense CPU tensor and
    the parameters share one dtype the numba kernel takes; ``False`` (nothing written) otherwise."""
    n, grads = len(params), st.grads
    if n == 0 or len(grads) != n or not set(map(type, grads)) <= {torch.Tensor}:
        return False
    profile = st.profile
    plan: _Plan | None = cache.get("plan")
    try:
        if plan is None or not plan.matches(params, state):
            cache.pop("plan", None)
            plan = _Plan(params, state, _private(params, cache))
            cache["plan"] = plan
        if nb.select_impl(plan.np_dtype, nan_in_max=profile.nan_in_max) != "numba":
            return False
        ptrs = plan.ptrs
        proved = cache.pop("proved", None)
        if (proved is not None and proved[0] is state and len(proved[1]) == n
                and all(map(operator.is_, grads, proved[1]))):
            ptrs[1] = proved[2]     # accepts() just checked these very gradients (below) against the plan
        else:
            # what check_step proved (same shape, dtype, device) is read again where a wrong
            # answer would read outside a buffer
            if (not set(map(type, grads)) <= {torch.Tensor} or set(map(_dtype, grads)) != {plan.dtype}
                    or list(map(_numel, grads)) != plan.sizes or not all(map(_is_cpu, grads))
                    or set(map(_layout, grads)) != {torch.strided} or not all(map(_is_contiguous, grads))
                    or any(map(_is_neg, grads))):
                return False
            ptrs[1] = np.fromiter(map(_data_ptr, grads), np.intp, count=n)
        if not plan.private:
            ptrs[0] = np.fromiter(map(_data_ptr, params), np.intp, count=n)
        ptrs[2] = np.fromiter(map(_data_ptr, state.m), np.intp, count=n)
        ptrs[3] = np.fromiter(map(_data_ptr, state.u), np.intp, count=n)
        plan.many.prepare_pointers(plan.np_dtype, plan.sizes, ptrs)
        s = numpy_apply.scalars_of(st.scalars(params[0]), _host(plan.np_dtype))
    except nb.UnsupportedArrays:
        return False
    lr_t, _, omb1, b2, eps = s
    nb.dense_step_planned(plan.many, lr_t=lr_t, one_minus_b1=omb1, b2=b2, eps=eps, epsilon=profile.epsilon,
                          nan_in_max=profile.nan_in_max)
    return True


def _view(x: Any) -> np.ndarray[Any, Any]:
    """A zero-copy NumPy view of a CPU tensor (refused if it is not contiguous)."""
    if not x.is_contiguous() or x.requires_grad:
        raise nb.UnsupportedArrays("tensor is not contiguous or requires grad")
    a: np.ndarray[Any, Any] = x.numpy()
    return a


def _host(dt: np.dtype[Any]) -> Any:
    """A 0-d tensor's value as a NumPy scalar of ``dt`` (exact: ``item()`` is a double)."""
    def convert(x: Any) -> Any:
        return dt.type(x.item())
    return convert


def _cpu_step(params: Sequence[Any], st: Step, live: list[int], state: AdamaxState, cache: dict[str, Any]) -> bool:
    profile, grads = st.profile, st.grads
    views: dict[tuple[int, Any, Any], np.ndarray[Any, Any]] = cache.setdefault("views", {})
    if len(views) > 4 * (3 * len(params) + 16):
        views.clear()

    def persistent(x: Any) -> np.ndarray[Any, Any]:
        # Parameters and moments live across steps (``apply_gradients`` hands in fresh
        # ``detach()`` objects each step): reuse a view of the same memory, shape and dtype.
        # A cached view keeps its storage alive, so no other tensor can own that address.
        key = (x.data_ptr(), x.shape, x.dtype)
        a = views.get(key)
        if a is None or not x.is_contiguous():
            a = views[key] = _view(x)
        return a

    scalars: dict[np.dtype[Any], numpy_apply.Scalars] = {}
    groups: dict[np.dtype[Any], numpy_apply.DenseGroup] = {}
    sparse: list[numpy_apply.SparseUpdate] = []
    try:
        for i in live:
            w, g, m, u = params[i], grads[i], state.m[i], state.u[i]
            dt: np.dtype[Any] = _NUMPY_DTYPES[w.dtype]
            if dt not in scalars:
                scalars[dt] = numpy_apply.scalars_of(st.scalars(w), _host(dt))
            wv, mv, uv = persistent(w), persistent(m), persistent(u)
            if isinstance(g, IndexedSlices):
                if profile.sparse == "lazy":
                    rows, values = coalesce_rows(g.indices, g.values)
                    sparse.append((wv, _view(rows), _view(values.contiguous()), mv, uv))
                    continue
                g = densify(g, w)
            group = groups.get(dt)
            if group is None:
                group = groups[dt] = numpy_apply.DenseGroup()
            group.ws.append(wv)
            group.gs.append(_view(g))
            group.ms.append(mv)
            group.us.append(uv)
    except nb.UnsupportedArrays:
        return False
    run = numpy_apply.prepare(groups, sparse, scalars, profile.epsilon, profile.nan_in_max, cache)
    if run is None:
        return False
    run()
    return True


def foreach_update(params: Sequence[Any], st: Step, live: list[int], state: AdamaxState) -> bool:
    """The dense step with ``torch._foreach_*`` ops per (device, dtype) group (module docstring).

    Returns ``False`` (nothing written) for sparse gradients or tensors that may overlap.
    """
    profile, grads = st.profile, st.grads
    groups: dict[tuple[Any, Any], list[int]] = {}
    spans = []
    for i in live:
        w, g, m, u = params[i], grads[i], state.m[i], state.u[i]
        if isinstance(g, IndexedSlices):
            return False
        for name, x, written in (("w", w, True), ("g", g, False), ("m", m, True), ("u", u, True)):
            if not x.is_contiguous():
                return False
            spans.append((f"{name}[{i}]", x.data_ptr(), x.numel() * x.element_size(), written))
        groups.setdefault((w.device, w.dtype), []).append(i)
    try:
        numpy_apply.check_spans(spans)
    except nb.UnsupportedArrays:
        return False
    for idx in groups.values():
        ws = [params[i] for i in idx]
        gs = [grads[i] for i in idx]
        ms = [state.m[i] for i in idx]
        us = [state.u[i] for i in idx]
        s = st.scalars(ws[0])
        d = torch._foreach_sub(gs, ms)
        torch._foreach_mul_(d, s.one_minus_beta_1)
        torch._foreach_add_(ms, d)
        dec = torch._foreach_mul(us, s.beta_2)
        mag = torch._foreach_abs(gs)
        if profile.epsilon == "inside":
            torch._foreach_add_(mag, s.epsilon)
        elif profile.epsilon == "inside_decay":
            torch._foreach_add_(dec, s.epsilon)
        if profile.nan_in_max == "keep_decayed":
            new_u = [torch.where(a < b, b, a) for a, b in zip(dec, mag, strict=True)]
        else:
            new_u = list(torch._foreach_maximum(dec, mag))
        torch._foreach_copy_(us, new_u)
        den = torch._foreach_add(us, s.epsilon) if profile.epsilon == "outside" else us
        q = torch._foreach_div(ms, den)
        torch._foreach_mul_(q, s.lr_t)
        torch._foreach_sub_(ws, q)
    return True
