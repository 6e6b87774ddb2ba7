"""Which per-library fast path, if any, takes one optimizer step.

:class:`adamax_spec.Adamax` asks :func:`fast_step` after validating a step and before
touching anything.  The answer is either ``None`` (use the generic array-API path of
:mod:`adamax_spec.core`) or ``(new_params, new_state)`` with the step already applied.

The registry is keyed by the *name* of the library that owns the parameters, read
from ``type(x).__module__`` (``numpy``, ``torch``, ``jaxlib``/``jax``, ``cupy``): nothing
is imported to find out, and a backend module is imported only when arrays of its
library arrive (a NumPy-only user never imports torch, JAX or CuPy).

Every fast path computes what :func:`adamax_spec.core.apply_gradients` computes:

* clipping, learning rate, ``t = iterations + 1`` and the step scalars come from the
  core's own functions (:func:`~adamax_spec.clipping.clip_gradients`,
  :func:`~adamax_spec.core.learning_rate_at`, :func:`~adamax_spec.core.step_scalars`)
  evaluated on the parameters' library, so hyperparameter rounding is the profile's;
* the element-wise update is the same sequence of operations, each rounded once
  to the parameter dtype (``tests/test_fast_paths.py`` compares every bit with the
  generic path and runs the conformance properties over each fast path);
* everything is validated before anything is written: a fast path that cannot take
  the step returns ``None`` with nothing changed, and the generic path runs.

=========  ===========  ===========================================================
library    in place?    fast path
=========  ===========  ===========================================================
numpy      yes          :mod:`.numpy_apply`: one fused numba pass over all dense
                        tensors of a dtype, a row kernel for lazy sparse rows
torch      yes          :mod:`.torch_backend`: CPU tensors by data pointers cached on
                        the parameter list (or zero-copy NumPy views) into the same
                        kernels; CUDA (and ``requires_grad`` or
                        bfloat16) tensors through ``torch._foreach_*`` ops
jax        no           :mod:`.jax_backend`: the step ``jax.jit``-compiled
cupy       yes          :mod:`.cupy_backend`: one fused ``ElementwiseKernel``
dask       no           :mod:`.dask_backend`: one ``map_blocks`` graph layer per tensor
=========  ===========  ===========================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from adamax_spec.sparse import IndexedSlices

__all__ = ["REGISTRY", "accepts", "fast_step", "in_place_targets", "library_of"]

#: (library, in place) -> module with ``step(params, grads, state, hyper, *, cache)``
REGISTRY: dict[tuple[str, bool], str] = {
    ("numpy", True): "adamax_spec.backends.numpy_apply",
    ("torch", True): "adamax_spec.backends.torch_backend",
    ("jax", False): "adamax_spec.backends.jax_backend",
    ("cupy", True): "adamax_spec.backends.cupy_backend",
    ("dask", False): "adamax_spec.backends.dask_backend",
}

_ALIASES = {"jaxlib": "jax"}


def library_of(x: Any) -> str:
    """The top-level package of ``x``'s type (``"numpy"``, ``"torch"``, ``"jax"``...)."""
    top = type(x).__module__.partition(".")[0]
    return _ALIASES.get(top, top)


def fast_step(
    params: Sequence[Any],
    grads: Sequence[Any],
    state: Any,
    hyper: Any,
    *,
    in_place: bool,
    cache: dict[str, Any],
) -> tuple[list[Any], Any] | None:
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
    result: tuple[list[Any], Any] | None = module.step(params, grads, state, hyper, cache=_cache_of(lib, cache))
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
    """``(library, backend module)`` for the library of ``arrays[0]``: the first registered
    entry among ``(library, mode)`` for the given modes, imported; ``None`` if there is none."""
    if not arrays:
        return None
    lib = library_of(arrays[0])
    name = next((REGISTRY[lib, mode] for mode in in_place if (lib, mode) in REGISTRY), None)
    return None if name is None else (lib, importlib.import_module(name))


def _cache_of(lib: str, cache: dict[str, Any]) -> dict[str, Any]:
    """The part of the optimizer's cache that belongs to one library's backend module
    (its ``in_place_targets``, ``accepts`` and ``step`` share it; each library has one module)."""
    sub: dict[str, Any] = cache.setdefault(lib, {})
    return sub
