"""Adapter for ``optax.adamax`` and optax factories with the same signature.

The transformation is driven the canonical way::

    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)

with both calls inside one ``jax.jit``-compiled step by default (``jit=False``
runs them eagerly; the two can differ by an ulp because XLA fuses the
compiled step).  The moments are the ``mu`` (m) and ``nu`` (u) fields of the
single ``ScaleByAdamState``-like node found in the state pytree.

JAX precision mode: float64 cases run inside ``jax.enable_x64(True)``, every
other case inside ``jax.enable_x64(False)``; both are scoped context managers,
so the process-wide setting is left alone.  The mode matters even for float32:
optax computes ``1 - b1**count`` in the default float type, so float32 results
under x64 differ from the usual x32 ones.

optax has no notion of a missing gradient, no sparse gradients, and its
clipping and schedules are separate transformations with their own semantics:
such cases are refused with :class:`Unsupported`, never emulated.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..case import Case, Trajectory, Unsupported
from . import _common

__all__ = ["OptaxAdapter", "adapter_for"]

_SIGNATURE = ("learning_rate", "b1", "b2", "eps")


class OptaxAdapter:
    """Runs a :class:`~adamax_spec.conformance.case.Case` through an optax factory.

    ``factory`` defaults to ``optax.adamax``; any callable taking
    ``(learning_rate=, b1=, b2=, eps=)`` and returning a ``GradientTransformation``
    works.  ``options``: the factory's other keyword arguments (``nesterov=``, ...), passed to
    every call (see :func:`_common.constructor_options`).
    """

    def __init__(
        self,
        factory: Callable[..., Any] | None = None,
        *,
        jit: bool = True,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        import optax

        self.factory = optax.adamax if factory is None else factory
        self.jit = jit
        if name is None:
            f = self.factory
            name = "optax.adamax" if f is optax.adamax else f"{f.__module__}.{f.__qualname__}"
            if not jit:
                name += "[nojit]"
            if options:
                name += f"({_common.describe_options(dict(options))})"
        self.name = name
        self.options = _common.constructor_options(self.factory, options, suite=_SIGNATURE, what=name)
        _common.try_options(self._make, self.options, name)
        self._capabilities: frozenset[str] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Found by running: dtypes by a one-step probe."""
        if self._capabilities is None:
            caps = {"dense", "state", "checkpoint"}
            caps |= _common.probe_dtypes(self._run, ("float16", "bfloat16", "float64"))
            self._capabilities = frozenset(caps)
        return self._capabilities

    def run(self, case: Case) -> Trajectory:
        hyper = _common.check_case(case)
        kind = _common.learning_rate_kind(hyper["learning_rate"])
        if kind == "schedule":
            raise Unsupported("schedule", "optax schedules have other semantics; not emulated")
        if kind == "callable":
            # optax's callables are schedules count -> lr, not zero-argument callables.
            raise Unsupported("callable_lr", "optax takes count -> lr schedules, not lr()")
        _common.reject_clipping(hyper, "optax.adamax (clipping is a separate transformation)")
        _common.reject_decay(hyper, "optax.adamax")
        if _common.has_sparse(case):
            raise Unsupported("sparse", "optax updates are dense pytrees")
        if _common.has_missing(case):
            raise Unsupported("none_grad", "optax has no notion of a missing gradient")
        return self._run(case)

    def _make(self, hyper: dict[str, Any]) -> Any:
        return self.factory(
            learning_rate=hyper["learning_rate"],
            b1=hyper["beta_1"],
            b2=hyper["beta_2"],
            eps=hyper["epsilon"],
            **self.options,
        )

    def _step_fn(self, tx: Any) -> Callable[..., Any]:
        import jax
        import optax

        def step(params: Any, state: Any, grads: Any) -> Any:
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return jax.jit(step) if self.jit else step

    def _run(self, case: Case) -> Trajectory:
        import jax

        with jax.enable_x64(case.dtype == "float64"):
            return self._run_in_mode(case)

    def _run_in_mode(self, case: Case) -> Trajectory:
        import jax.numpy as jnp

        dtype = jnp.dtype(case.dtype)
        if case.dtype == "float64" and jnp.zeros((), dtype).dtype != dtype:
            raise Unsupported("float64", "JAX refuses float64 even under enable_x64")
        params = []
        for i, p in enumerate(case.params):
            a = jnp.asarray(np.asarray(p), dtype=dtype)
            _common.check_exact(f"param {i}", p, a)
            params.append(a)
        tx = self._make(case.hyper)
        state = tx.init(params)
        step = self._step_fn(tx)
        before, after_last = _common.checkpoint_points(case)
        traj = Trajectory()
        for k, grads in enumerate(case.grads):
            if k == before:
                params, state, tx, step = self._restore(params, state, case.hyper)
            g = [jnp.asarray(np.asarray(x), dtype=dtype) for x in grads]
            params, state = step(params, state, g)
            traj.params.append([_common.to_float64(p) for p in params])
            moments = _find_moments(state, params)
            traj.m.append(None if moments is None else moments[0])
            traj.u.append(None if moments is None else moments[1])
        if after_last:
            params, state, tx, step = self._restore(params, state, case.hyper)
        traj.dtypes = [str(p.dtype) for p in params]
        return traj

    def _restore(self, params: Any, state: Any, hyper: dict[str, Any]) -> tuple[Any, ...]:
        """optax's state *is* the pytree: copy it (and the params) to NumPy and back."""
        import jax
        import jax.numpy as jnp

        saved_state = jax.tree.map(lambda x: np.array(x, copy=True), state)
        saved_params = [np.array(p, copy=True) for p in params]
        tx = self._make(hyper)
        state = jax.tree.map(jnp.asarray, saved_state)
        params = [jnp.asarray(p) for p in saved_params]
        return params, state, tx, self._step_fn(tx)


def _find_moments(state: Any, params: list[Any]) -> tuple[list[np.ndarray], ...] | None:
    """``(mu, nu)`` of the one node in ``state`` that has both, as float64 lists.

    ``None`` if there is no such node, more than one, or its leaves do not
    line up with the parameters.
    """
    import jax

    def has_moments(x: Any) -> bool:
        return hasattr(x, "mu") and hasattr(x, "nu") and not isinstance(x, jax.Array)

    nodes = [x for x in jax.tree_util.tree_leaves(state, is_leaf=has_moments) if has_moments(x)]
    if len(nodes) != 1:
        return None
    mu = jax.tree_util.tree_leaves(nodes[0].mu)
    nu = jax.tree_util.tree_leaves(nodes[0].nu)
    shapes = [tuple(p.shape) for p in params]
    if [tuple(x.shape) for x in mu] != shapes or [tuple(x.shape) for x in nu] != shapes:
        return None
    return [_common.to_float64(x) for x in mu], [_common.to_float64(x) for x in nu]


def adapter_for(obj: Any, options: Mapping[str, Any] | None = None) -> OptaxAdapter | None:
    """An :class:`OptaxAdapter` if ``obj`` is an optax-style Adamax factory (``options``: its
    other keyword arguments).

    That is: optax is already imported, ``obj`` is a plain callable taking
    ``learning_rate, b1, b2, eps``, and calling it returns a
    ``GradientTransformation``.  Imports nothing.
    """
    optax = _common.loaded("optax")
    if optax is None or isinstance(obj, type) or not callable(obj):
        return None
    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return None
    if not all(p in parameters for p in _SIGNATURE):
        return None
    # Recognized with or without the options: a factory that rejects them is an optax factory
    # all the same, and OptaxAdapter then says which option it rejected.
    for extra in ({}, dict(options)) if options else ({},):
        try:
            tx = obj(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, **extra)
        except Exception:
            continue
        if isinstance(tx, optax.GradientTransformation):
            return OptaxAdapter(obj, options=options)
    return None
