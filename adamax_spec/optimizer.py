"""``Adamax``: the Keras-style optimizer object, a thin shell over :mod:`adamax_spec.functional`."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from . import core, dispatch, functional, schedules
from .core import AdamaxState, Hyper
from .profiles import Profile, get_profile
from .validation import check_pairs, check_params, check_sequences, check_state_dict

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
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got name={name!r}")
        self.name = name or "adamax"
        self._hyper = functional.make_hyper(learning_rate, beta_1, beta_2, epsilon, profile=self.profile,
                                            _stacklevel=3, **kwargs)
        self._state: AdamaxState | None = None
        #: Use a per-library fast path when one applies (``adamax_spec.dispatch``);
        #: ``False`` always takes the generic array-API path (the reference the fast paths are tested against).
        self.fast = bool(fast)
        self._fast_cache: dict[str, Any] = {}

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
        new_params, new_state = self._step(params, grads, in_place=False)
        self._state = new_state
        return new_params

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Any]]) -> None:
        """Keras-style: update the (mutable) variables in place from ``(grad, var)`` pairs."""
        pairs = check_pairs(grads_and_vars)
        if not pairs:
            return
        grads = [g for g, _ in pairs]
        # A fast path may prove all variables writable at once and reuse its detached views (torch).
        params = dispatch.in_place_targets([v for _, v in pairs], self._fast_cache) if self.fast else None
        if params is None:
            # A leaf that requires grad (torch) refuses in-place writes; its detached view shares storage.
            params = [v.detach() if getattr(v, "requires_grad", False) else v for _, v in pairs]
            for i, v in enumerate(params):
                if not _writeable(v):
                    raise TypeError(
                        f"variable {i} ({type(v).__name__}) cannot be written in place; "
                        "use Adamax.apply(params, grads), which returns new arrays"
                    )
        new_params, new_state = self._step(params, grads, in_place=True)
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

    def _step(self, params: Sequence[Any], grads: Sequence[Any], *, in_place: bool) -> tuple[list[Any], AdamaxState]:
        params = list(params)
        check_params(params)
        state = self._state if self._state is not None else core.init(params)
        if not state.m and params:  # a step count restored before any moments existed
            state = core.init(params)._replace(iterations=state.iterations)
        return functional.update(params, grads, state, self._hyper, fast=self.fast, in_place=in_place,
                                 cache=self._fast_cache)

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


def _writeable(x: Any) -> bool:
    from array_api_compat import is_writeable_array

    return bool(is_writeable_array(x))
