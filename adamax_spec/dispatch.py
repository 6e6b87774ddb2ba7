"""Which per-library fast path, if any, takes one optimizer step.

:class:`adamax_spec.Adamax` asks :func:`fast_step` after validating a step and before
touching anything.  The answer is either ``None`` (use the generic array-API path of
:mod:`adamax_spec.core`) or ``(new_params, new_state)`` with the step already applied.

The registry is keyed by the *name* of the library that owns the parameters, read
from ``type(x).__module__`` (``numpy``, ``torch``, ``jaxlib``/``jax``, ``cupy``): nothing
is imported to find out, and a backend module is imported only when arrays of its
library arrive (a NumPy-only user never imports torch, JAX or CuPy).

Every fast path computes what :func:`adamax_spec.core.apply_step` computes:

* clipping, learning rate, ``t = iterations + 1`` and the step scalars are computed once,
  here, by :func:`adamax_spec.core.begin_step`; a backend receives the resulting
  :class:`~adamax_spec.core.Step` and brings only its kernels;
* the element-wise update is the same sequence of operations, each rounded once
  to the parameter dtype (``tests/backends/`` compares every bit with the
  generic path and runs the conformance properties over each fast path);
* everything is validated before anything is written: a fast path that cannot take
  the step returns ``None`` with nothing changed, and the generic path runs.

Backends are found through the entry-point group ``adamax_spec.fast_paths`` (name: the
library, value: the module), so this core module names no array library and imports
no backend until that library's arrays arrive.  A backend module provides

* ``IN_PLACE``: ``True`` if it writes the caller's arrays (``apply_gradients``), ``False``
  if it returns new ones (``apply``);
* ``step(params, step, state, *, cache) -> (new_params, new_state) | None``;
* optionally ``accepts(params, grads, state, *, cache) -> bool`` (a cheap proof that
  validation would pass), ``in_place_targets(variables, cache)`` and
  ``kernel_grads(grads) -> grads`` (a change of representation the kernels want before
  clipping, e.g. JAX pads sparse slices to fixed sizes; values and norms unchanged).

=========  ===========  ===========================================================
library    in place?    fast path
=========  ===========  ===========================================================
numpy      yes          :mod:`adamax_spec.backends.numpy_apply`: one fused numba pass over all dense
                        tensors of a dtype, a row kernel for lazy sparse rows
torch      yes          :mod:`adamax_spec.backends.torch_backend`: CPU tensors by data pointers cached on
                        the parameter list (or zero-copy NumPy views) into the same
                        kernels; CUDA (and ``requires_grad`` or
                        bfloat16) tensors through ``torch._foreach_*`` ops
jax        no           :mod:`adamax_spec.backends.jax_backend`: the step ``jax.jit``-compiled
cupy       yes          :mod:`adamax_spec.backends.cupy_backend`: one fused ``ElementwiseKernel``
dask       no           :mod:`adamax_spec.backends.dask_backend`: one ``map_blocks`` graph layer per tensor
=========  ===========  ===========================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import cache as _once
from importlib.metadata import entry_points
from typing import Any

from .core import AdamaxState, Hyper, begin_step
from .sparse import IndexedSlices

__all__ = ["GROUP", "accepts", "fast_step", "in_place_targets", "library_of", "registry"]

#: The entry-point group that names each library's fast-path module.
GROUP = "adamax_spec.fast_paths"


@_once
def registry() -> dict[str, str]:
    """library -> fast-path module, from the installed entry points (read once per process)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}

_ALIASES = {"jaxlib": "jax"}


def library_of(x: Any) -> str:
    """The top-level package of ``x``'s type (``"numpy"``, ``"torch"``, ``"jax"``...)."""
    top = type(x).__module__.partition(".")[0]
    return _ALIASES.get(top, top)


def fast_step(
    params: Sequence[Any],
    grads: Sequence[Any],
    state: AdamaxState,
    hyper: Hyper,
    *,
    in_place: bool,
    cache: dict[str, Any],
) -> tuple[list[Any], AdamaxState] | None:
    """The step through the fast path for the parameters' library, or ``None``.

    ``in_place``: the caller wants ``params`` and the state's arrays updated in place
    (``apply_gradients``); otherwise new arrays (``apply``) and inputs left untouched.
    ``cache``: a dict the caller keeps between steps (plans, compiled functions); the
    backend gets the part of it that belongs to its library.
    Arguments must already be validated (:func:`adamax_spec.validation.check_step`).
    """
    found = _backend(params, in_place)
    if found is None:
        return None
    if hyper.profile.sparse_magnitude != "abs_of_sum" and any(isinstance(g, IndexedSlices) for g in grads):
        return None  # the kernels take |g| of the summed rows; this rare rule stays on the generic path
    lib, module = found
    kernel_grads = getattr(module, "kernel_grads", None)
    step = begin_step(grads if kernel_grads is None else kernel_grads(grads), state, hyper)
    result: tuple[list[Any], AdamaxState] | None = module.step(params, step, state, cache=_cache_of(lib, cache))
    return result


def accepts(params: Sequence[Any], grads: Sequence[Any], state: Any, *,
            cache: dict[str, Any] | None = None) -> bool:
    """``True`` if a fast path proves cheaply that :func:`~adamax_spec.validation.check_step`
    would accept these arguments (for a thousand small tensors the generic check costs
    more than the step); ``False`` means "not proven": the caller then runs the full check.
    ``cache``: the dict :func:`fast_step` gets (a backend may keep what it proved about
    arrays that are the same objects as last step).
    """
    found = _backend(params, True, False)
    if found is None:
        return False
    lib, module = found
    check = getattr(module, "accepts", None)
    if check is None:
        return False
    return bool(check(params, grads, state, cache=None if cache is None else _cache_of(lib, cache)))


def in_place_targets(variables: Sequence[Any], cache: dict[str, Any]) -> list[Any] | None:
    """The arrays ``Adamax.apply_gradients`` writes in place for ``variables``, or ``None``.

    A fast path that proves every variable writable in one pass returns them (for torch:
    the detached tensors, the same objects from step to step while the parameters keep
    their storage, shape and dtype, so later per-tensor work can be cached on identity).
    ``None`` means "not proven": the caller detaches and checks each variable itself,
    and raises where it must.
    """
    found = _backend(variables, True)
    if found is None:
        return None
    lib, module = found
    targets = getattr(module, "in_place_targets", None)
    if targets is None:
        return None
    result: list[Any] | None = targets(variables, _cache_of(lib, cache))
    return result


def _backend(arrays: Sequence[Any], *in_place: bool) -> tuple[str, Any] | None:
    """``(library, backend module)`` for the library of ``arrays[0]`` if one is registered and its
    ``IN_PLACE`` is one of the given modes (imported on first use); ``None`` otherwise."""
    if not arrays:
        return None
    lib = library_of(arrays[0])
    name = registry().get(lib)
    if name is None:
        return None
    module = importlib.import_module(name)
    return (lib, module) if module.IN_PLACE in in_place else None


def _cache_of(lib: str, cache: dict[str, Any]) -> dict[str, Any]:
    """The part of the optimizer's cache that belongs to one library's backend module
    (its ``in_place_targets``, ``accepts`` and ``step`` share it; each library has one module)."""
    sub: dict[str, Any] = cache.setdefault(lib, {})
    return sub
