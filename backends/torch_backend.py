"""The torch fast paths of ``Adamax.apply_gradients`` (imported only for torch tensors).

CPU, float16/32/64, no ``requires_grad``
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

from adamax_spec.clipping import clip_gradients
from adamax_spec.core import AdamaxState, Hyper, learning_rate_at, step_scalars
from adamax_spec.sparse import IndexedSlices, coalesce_rows, densify

from . import numpy_apply
from . import numpy_backend as nb

__all__ = ["accepts", "foreach_update", "step"]

_NUMPY_DTYPES: dict[Any, np.dtype[Any]] = {torch.float16: np.dtype(np.float16), torch.float32: np.dtype(np.float32),
                 torch.float64: np.dtype(np.float64)}
_FLOATS = (*_NUMPY_DTYPES, torch.bfloat16)
_dtype = operator.attrgetter("dtype")
_shape = operator.attrgetter("shape")
_device = operator.attrgetter("device")


def accepts(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState) -> bool:
    """``True`` only if ``check_step`` certainly accepts: plain tensors of a float dtype,
    moments and dense gradients (or ``None``) of matching shape, dtype and device."""
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


def step(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState, hyper: Hyper, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """One in-place step on torch tensors, or ``None`` (nothing changed) if not possible."""
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
    grads = clip_gradients(grads, clipvalue=hyper.clipvalue, clipnorm=hyper.clipnorm,
                           global_clipnorm=hyper.global_clipnorm)
    lr = learning_rate_at(hyper, state.iterations)
    t = state.iterations + 1
    with torch.no_grad():
        if cpu:
            ok = _cpu_step(params, grads, live, state, hyper, lr, t, cache)
        else:
            ok = foreach_update(params, grads, live, state, hyper, lr, t)
    if not ok:
        return None
    return list(params), AdamaxState(t, state.m, state.u)


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


def _cpu_step(params: Sequence[Any], grads: Sequence[Any], live: list[int], state: AdamaxState,
              hyper: Hyper, lr: Any, t: int, cache: dict[str, Any]) -> bool:
    profile = hyper.profile
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
                s = step_scalars(hyper, lr, t, w)
                scalars[dt] = numpy_apply.scalars_of(s, _host(dt))
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


def foreach_update(params: Sequence[Any], grads: Sequence[Any], live: list[int], state: AdamaxState,
                   hyper: Hyper, lr: Any, t: int) -> bool:
    """The dense step with ``torch._foreach_*`` ops per (device, dtype) group (module docstring).

    Returns ``False`` (nothing written) for sparse gradients or tensors that may overlap.
    """
    profile = hyper.profile
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
        s = step_scalars(hyper, lr, t, ws[0])
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
