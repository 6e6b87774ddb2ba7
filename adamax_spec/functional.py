"""The validated functional form of Adamax, in the shape optax users know.

::

    hyper = make_hyper(learning_rate=0.01, clipnorm=1.0)      # Keras 2.9 arguments, checked
    state = init(params)                                       # iterations 0, zero m and u
    params, state = update(params, grads, state, hyper)        # one step; inputs untouched

:func:`update` validates every argument before anything happens (clauses V-*), takes a
per-library fast path where one applies (:mod:`adamax_spec.dispatch`) and the generic
array-API path (:func:`adamax_spec.core.apply_gradients`) otherwise.  A step that
raises changes nothing.  :class:`adamax_spec.Adamax` is a thin shell that keeps the
state between calls.  Under ``jax.jit`` use :func:`adamax_spec.backends.jax_backend.make_step`
or the unjitted :func:`update`: the step count is a Python ``int``.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

from . import core, dispatch
from .core import AdamaxState, Hyper
from .profiles import Profile, get_profile
from .validation import (
    ALLOWED_KWARGS,
    check_learning_rate,
    check_number,
    check_params,
    check_same_grad_dtypes,
    check_scheduled_lr,
    check_step,
)

__all__ = ["init", "make_hyper", "update"]


def make_hyper(
    learning_rate: Any = None,
    beta_1: float | None = None,
    beta_2: float | None = None,
    epsilon: float | None = None,
    *,
    profile: str | Profile = "keras",
    _stacklevel: int = 2,
    **kwargs: Any,
) -> Hyper:
    """Validated hyperparameters: ``tf.keras.optimizers.Adamax``'s arguments (``learning_rate``,
    ``beta_1``, ``beta_2``, ``epsilon``, and the keywords ``clipvalue``, ``clipnorm``,
    ``global_clipnorm``, ``decay`` and the deprecated ``lr``); ``None`` takes the profile's default.
    A bad value raises ``TypeError``/``ValueError`` naming the argument and the value."""
    p = get_profile(profile)
    unknown = sorted(set(kwargs) - set(ALLOWED_KWARGS))
    if unknown:
        raise TypeError(
            f"Unexpected keyword argument passed to optimizer: {unknown[0]}. "
            f"Allowed kwargs are {list(ALLOWED_KWARGS)}."
        )
    lr_name = "learning_rate"
    if "lr" in kwargs:
        warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.",
                      DeprecationWarning, stacklevel=_stacklevel + 1)
        learning_rate, lr_name = kwargs["lr"], "lr"
    clips = {k: kwargs.get(k) for k in ("clipvalue", "clipnorm", "global_clipnorm")}
    for k, v in clips.items():
        if v is not None:
            clips[k] = check_number(k, v, low=0.0, low_open=True)
    if clips["clipnorm"] is not None and clips["global_clipnorm"] is not None:
        raise ValueError(
            "Cannot accept both `clipnorm` and `global_clipnorm`. Received: "
            f"`clipnorm`={clips['clipnorm']}, `global_clipnorm`={clips['global_clipnorm']}."
        )
    if p.clipping == "keras3" and sum(v is not None for v in clips.values()) > 1:
        set_ = {k: v for k, v in clips.items() if v is not None}
        raise ValueError(f"Only one of clipnorm, clipvalue and global_clipnorm can be set, got {set_}")
    return Hyper(
        profile=p,
        learning_rate=check_learning_rate(lr_name, p.learning_rate if learning_rate is None else learning_rate),
        beta_1=check_number("beta_1", p.beta_1 if beta_1 is None else beta_1, low=0.0, high=1.0, high_open=True),
        beta_2=check_number("beta_2", p.beta_2 if beta_2 is None else beta_2, low=0.0, high=1.0, high_open=True),
        epsilon=_check_epsilon(p, epsilon),
        decay=check_number("decay", kwargs.get("decay", 0.0), low=0.0),
        **clips,
    )


def _check_epsilon(p: Profile, epsilon: float | None) -> float:
    if epsilon is None:
        return p.epsilon_value
    if p.epsilon == "none":
        return check_number("epsilon", epsilon, low=0.0)
    return check_number("epsilon", epsilon, low=0.0, low_open=True)


def init(params: Any) -> AdamaxState:
    """Fresh state for ``params`` (a sequence of arrays): no steps, zero moments of their shape,
    dtype and device."""
    params = list(params)
    check_params(params)
    return core.init(params)


def update(
    params: Any,
    grads: Any,
    state: AdamaxState,
    hyper: Hyper,
    *,
    fast: bool = True,
    in_place: bool = False,
    cache: dict[str, Any] | None = None,
) -> tuple[list[Any], AdamaxState]:
    """One validated step: ``(new_params, new_state)``.

    ``grads[i]`` is an array, an :class:`~adamax_spec.sparse.IndexedSlices` or ``None``.
    ``in_place=True`` writes lazy sparse rows (and lets a fast path write everything) into
    the given arrays, which must then be writable; otherwise the inputs are left untouched.
    ``fast=False`` always takes the generic array-API path.  ``cache``: a dict kept between
    steps for a fast path's plans (optional).
    """
    params, grads = list(params), list(grads)
    cache = {} if cache is None else cache
    check_params(params)
    if not (fast and dispatch.accepts(params, grads, state, cache=cache)):
        check_step(params, grads, state)
    if hyper.global_clipnorm is not None:
        check_same_grad_dtypes(grads)
    if callable(hyper.learning_rate):
        lr = core.learning_rate_at(hyper, state.iterations)
        check_scheduled_lr(lr, state.iterations)
        hyper = replace(hyper, learning_rate=lr, decay=0.0)
    if fast:
        done = dispatch.fast_step(params, grads, state, hyper, in_place=in_place, cache=cache)
        if done is not None:
            return done
    return core.apply_gradients(params, grads, state, hyper, write_rows=_write_rows_in_place if in_place else None)


def _write_rows_in_place(table: Any, rows: Any, values: Any) -> Any:
    from array_api_extra import at

    return at(table, rows).set(values, copy=False)
