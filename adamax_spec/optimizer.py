"""``Adamax``: the Keras-style optimizer object, a thin shell over :mod:`adamax_spec.core`."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from . import core, schedules
from .core import AdamaxState, Hyper
from .profiles import Profile, get_profile
from .validation import (
    ALLOWED_KWARGS,
    check_learning_rate,
    check_number,
    check_pairs,
    check_params,
    check_same_grad_dtypes,
    check_scheduled_lr,
    check_sequences,
    check_state_dict,
    check_step,
)

__all__ = ["Adamax"]


class Adamax:
    """Adamax (Kingma & Ba 2015, sec. 7.1) with Keras 2.9 semantics by default.

    ``t += 1; m = b1*m + (1-b1)*g; u = max(b2*u, |g|); w -= lr/(1-b1**t) * m/(u+eps)``

    Arguments follow ``tf.keras.optimizers.Adamax``: ``learning_rate`` (float, 0-d
    array, schedule or zero-argument callable), ``beta_1``, ``beta_2``, ``epsilon``,
    ``name``, and the keyword arguments ``clipvalue``, ``clipnorm``,
    ``global_clipnorm``, ``decay`` and the deprecated ``lr``.  ``profile`` selects
    the variant (``"keras"``, ``"keras3"``, ``"torch"``, ``"optax"``, ...); an
    argument left as ``None`` takes the profile's default.

    Use :meth:`apply` with any array-API arrays (it returns new parameters), or
    :meth:`apply_gradients` to update mutable arrays (NumPy, torch, CuPy) in place.
    A step that raises changes nothing.  ``fast=True`` (default) lets a per-library fast
    path take the step where it gives the generic path's results (``docs/performance.md``);
    ``fast=False`` (or setting ``opt.fast = False``) always takes the generic array-API path.
    """

    def __init__(
        self,
        learning_rate: Any = None,
        beta_1: float | None = None,
        beta_2: float | None = None,
        epsilon: float | None = None,
        name: str = "Adamax",
        *,
        profile: str | Profile = "keras",
        fast: bool = True,
        **kwargs: Any,
    ) -> None:
        self.profile = get_profile(profile)
        p = self.profile
        unknown = sorted(set(kwargs) - set(ALLOWED_KWARGS))
        if unknown:
            raise TypeError(
                f"Unexpected keyword argument passed to optimizer: {unknown[0]}. "
                f"Allowed kwargs are {list(ALLOWED_KWARGS)}."
            )
        if "lr" in kwargs:
            warnings.warn(
                "The `lr` argument is deprecated, use `learning_rate` instead.",
                DeprecationWarning,
                stacklevel=2,
            )
            learning_rate = kwargs["lr"]
            lr_name = "lr"
        else:
            lr_name = "learning_rate"
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got name={name!r}")
        self.name = name or "adamax"
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
        self._hyper = Hyper(
            profile=p,
            learning_rate=check_learning_rate(
                lr_name, p.learning_rate if learning_rate is None else learning_rate
            ),
            beta_1=check_number("beta_1", p.beta_1 if beta_1 is None else beta_1,
                                low=0.0, high=1.0, high_open=True),
            beta_2=check_number("beta_2", p.beta_2 if beta_2 is None else beta_2,
                                low=0.0, high=1.0, high_open=True),
            epsilon=self._check_epsilon(epsilon),
            decay=check_number("decay", kwargs.get("decay", 0.0), low=0.0),
            **clips,
        )
        self._state: AdamaxState | None = None
        #: Use a per-library fast path when one applies (``adamax_spec.backends.dispatch``);
        #: ``False`` always takes the generic array-API path (the reference the fast paths are tested against).
        self.fast = bool(fast)
        self._fast_cache: dict[str, Any] = {}

    def _check_epsilon(self, epsilon: float | None) -> float:
        p = self.profile
        if epsilon is None:
            return p.epsilon_value
        if p.epsilon == "none":
            return check_number("epsilon", epsilon, low=0.0)
        return check_number("epsilon", epsilon, low=0.0, low_open=True)

    # -- hyperparameters -------------------------------------------------------------
    @property
    def hyper(self) -> Hyper:
        return self._hyper

    @property
    def learning_rate(self) -> Any:
        return self._hyper.learning_rate

    @property
    def iterations(self) -> int:
        """Steps applied so far (Keras ``optimizer.iterations``)."""
        return 0 if self._state is None else self._state.iterations

    @property
    def state(self) -> AdamaxState | None:
        """The explicit state (``None`` before the first step)."""
        return self._state

    # -- stepping -------------------------------------------------------------------
    def apply(self, params: Sequence[Any], grads: Sequence[Any]) -> list[Any]:
        """One step; returns the new parameters and keeps the new state.

        ``grads[i]`` is an array, an :class:`IndexedSlices` or ``None``.
        Nothing changes if it raises.
        """
        params, grads = check_sequences(params, grads)
        if not params and not grads:
            return []  # Keras: an empty apply is a no-op and does not count as a step
        new_params, new_state = self._step(params, grads, write_rows=None)
        self._state = new_state
        return new_params

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Any]]) -> None:
        """Keras-style: update the (mutable) variables in place from ``(grad, var)`` pairs."""
        pairs = check_pairs(grads_and_vars)
        if not pairs:
            return
        grads = [g for g, _ in pairs]
        # A fast path may prove all variables writable at once and reuse its detached views (torch).
        params = _fast_targets([v for _, v in pairs], self._fast_cache) if self.fast else None
        if params is None:
            # A leaf that requires grad (torch) refuses in-place writes; its detached view shares storage.
            params = [v.detach() if getattr(v, "requires_grad", False) else v for _, v in pairs]
            for i, v in enumerate(params):
                if not _writeable(v):
                    raise TypeError(
                        f"variable {i} ({type(v).__name__}) cannot be written in place; "
                        "use Adamax.apply(params, grads), which returns new arrays"
                    )
        new_params, new_state = self._step(params, grads, write_rows=_write_rows_in_place)
        for old, new, g in zip(params, new_params, grads, strict=True):
            if g is not None and new is not old:
                old[...] = new
        if self._state is not None:
            for olds, news in ((self._state.m, new_state.m), (self._state.u, new_state.u)):
                if olds is news:        # a fast path updated these very arrays in place
                    continue
                for old, new in zip(olds, news, strict=True):
                    if new is not old and _writeable(old):
                        old[...] = new
        self._state = new_state

    def _step(self, params: Sequence[Any], grads: Sequence[Any], write_rows: Any) -> tuple[list[Any], AdamaxState]:
        params, grads = list(params), list(grads)
        check_params(params)
        state = self._state if self._state is not None else core.init(params)
        if not state.m and params:  # a step count restored before any moments existed
            state = core.init(params)._replace(iterations=state.iterations)
        if not (self.fast and _fast_check(params, grads, state, self._fast_cache)):
            check_step(params, grads, state)
        if self._hyper.global_clipnorm is not None:
            check_same_grad_dtypes(grads)
        hyper = self._hyper
        if callable(hyper.learning_rate):
            lr = core.learning_rate_at(hyper, state.iterations)
            check_scheduled_lr(lr, state.iterations)
            hyper = _with_lr(hyper, lr)
        if self.fast:
            done = _fast_step(params, grads, state, hyper, in_place=write_rows is _write_rows_in_place,
                              cache=self._fast_cache)
            if done is not None:
                return done
        return core.apply_gradients(params, grads, state, hyper, write_rows=write_rows)

    # -- config and state ------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras's ``get_config`` keys (clip keys only when set), plus ``profile``."""
        h = self._hyper
        cfg: dict[str, Any] = {"name": self.name}
        for k in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(h, k) is not None:
                cfg[k] = getattr(h, k)
        lr = h.learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            lr = lr()
        elif hasattr(lr, "shape"):
            lr = float(lr)
        cfg.update(learning_rate=lr, decay=h.decay, beta_1=h.beta_1, beta_2=h.beta_2,
                   epsilon=h.epsilon, profile=self.profile.name)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Adamax:
        """Inverse of :meth:`get_config` (the input dict is not modified)."""
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        if config.get("decay", 0.0) == 0.0:
            config.pop("decay", None)
        return cls(**config)

    def state_dict(self) -> dict[str, Any]:
        """``{"config", "iterations", "m", "u"}``: arrays plus JSON-able config, no pickle."""
        s = self._state
        return {
            "config": self.get_config(),
            "iterations": 0 if s is None else s.iterations,
            "m": [] if s is None else list(s.m),
            "u": [] if s is None else list(s.u),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore moments and step count saved by :meth:`state_dict` (validated first)."""
        iterations, m, u = check_state_dict(state)
        saved = state.get("config", {}).get("profile", self.profile.name) if isinstance(state, dict) else None
        if saved != self.profile.name:
            raise ValueError(f"state was saved under profile {saved!r}, but this optimizer uses {self.profile.name!r}")
        self._state = AdamaxState(iterations, tuple(m), tuple(u)) if m or iterations else None

    def __repr__(self) -> str:
        return f"Adamax(profile={self.profile.name!r}, {self.get_config()!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Adamax:
        new = copy.copy(self)
        new._fast_cache = {}
        new._state = copy.deepcopy(self._state, memo)
        return new


def _with_lr(hyper: Hyper, lr: Any) -> Hyper:
    from dataclasses import replace

    return replace(hyper, learning_rate=lr, decay=0.0)


def _fast_step(params: list[Any], grads: list[Any], state: AdamaxState, hyper: Hyper, *, in_place: bool,
               cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """The step through a per-library fast path (validated arguments), or ``None`` for the generic path.

    The registry lives in ``adamax_spec.backends.dispatch`` and imports a library's module only when
    that library's arrays arrive; the core itself names no array library.
    """
    import importlib

    dispatch = importlib.import_module("adamax_spec.backends.dispatch")
    result: tuple[list[Any], AdamaxState] | None = dispatch.fast_step(
        params, grads, state, hyper, in_place=in_place, cache=cache)
    return result


def _fast_check(params: list[Any], grads: list[Any], state: AdamaxState, cache: dict[str, Any]) -> bool:
    """``True`` if a fast path's cheap check proves that ``check_step`` would accept these arguments.

    ``False`` means "not proven" (``check_step`` then runs and raises where it must).
    """
    import importlib

    return bool(importlib.import_module("adamax_spec.backends.dispatch").accepts(params, grads, state,
                                                                                cache=cache))


def _fast_targets(variables: list[Any], cache: dict[str, Any]) -> list[Any] | None:
    """The arrays ``apply_gradients`` writes for ``variables`` if a fast path proves them all writable.

    ``None`` means "not proven": the caller detaches and checks each variable itself.
    """
    import importlib

    result: list[Any] | None = importlib.import_module("adamax_spec.backends.dispatch").in_place_targets(
        variables, cache)
    return result


def _writeable(x: Any) -> bool:
    from array_api_compat import is_writeable_array

    return bool(is_writeable_array(x))


def _write_rows_in_place(table: Any, rows: Any, values: Any) -> Any:
    from array_api_extra import at

    return at(table, rows).set(values, copy=False)

