"""The JAX fast path: the dense Adamax step compiled with ``jax.jit`` (imported only for JAX arrays).

JAX arrays are immutable, so the step is functional: ``Adamax.apply`` on JAX arrays
calls :func:`step`, which runs the core's own :func:`adamax_spec.core.update_rows`
(``kernel_form=True``: ``m + (g - m)*(1 - b1)``, ``max(b2*u, |g|)``, ``w - lr_t*m/(u+eps)``,
the profile's epsilon and NaN rule) for every parameter inside one jitted function,
so XLA fuses the element-wise work into one pass per tensor.  The step scalars
(learning rate, bias correction) and clipping are computed outside by the core,
exactly as the generic path computes them, and passed in as arguments, so a new
step count or learning rate never recompiles.  ``Adamax.apply`` does **not** donate:
the caller's arrays stay valid, as the functional API promises.

:func:`make_step` returns the optax-style pure step ``(params, state, grads) ->
(params, state)`` that *donates* the parameter and moment buffers (XLA updates them
in place where the platform allows); the arrays passed in are invalid afterwards.

Sparse gradients (``IndexedSlices``: data-dependent shapes) take the generic path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax

from adamax_spec.clipping import clip_gradients
from adamax_spec.core import AdamaxState, Hyper, StepScalars, learning_rate_at, step_scalars, update_rows
from adamax_spec.profiles import Profile
from adamax_spec.sparse import IndexedSlices

__all__ = ["make_step", "step"]


def _update(profile: Profile, which: tuple[int, ...], ws: Sequence[Any], gs: Sequence[Any], ms: Sequence[Any],
            us: Sequence[Any], scalars: Sequence[Sequence[Any]]) -> tuple[list[Any], list[Any], list[Any]]:
    out_w, out_m, out_u = [], [], []
    for w, g, m, u, k in zip(ws, gs, ms, us, which, strict=True):
        nw, nm, nu = update_rows(profile, w, g, m, u, StepScalars(*scalars[k]), kernel_form=True)
        out_w.append(nw)
        out_m.append(nm)
        out_u.append(nu)
    return out_w, out_m, out_u


_JITTED: dict[bool, Callable[..., Any]] = {}


def _jitted(donate: bool) -> Callable[..., Any]:
    fn = _JITTED.get(donate)
    if fn is None:
        fn = _JITTED[donate] = jax.jit(_update, static_argnums=(0, 1),
                                       donate_argnums=(2, 4, 5) if donate else ())
    return fn


def _prepare(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState, hyper: Hyper
             ) -> tuple[list[int], list[Any], tuple[int, ...], list[Any]] | None:
    live = [i for i, g in enumerate(grads) if g is not None]
    if any(isinstance(grads[i], IndexedSlices) for i in live):
        return None
    grads = clip_gradients(grads, clipvalue=hyper.clipvalue, clipnorm=hyper.clipnorm,
                           global_clipnorm=hyper.global_clipnorm)
    lr = learning_rate_at(hyper, state.iterations)
    t = state.iterations + 1
    slot: dict[Any, int] = {}
    scalars: list[tuple[Any, ...]] = []          # one set per dtype, shared by its tensors
    for i in live:
        w = params[i]
        if w.dtype not in slot:
            s = step_scalars(hyper, lr, t, w)
            slot[w.dtype] = len(scalars)
            scalars.append((s.lr_t, s.beta_1, s.one_minus_beta_1, s.beta_2, s.epsilon))
    return live, [grads[i] for i in live], tuple(slot[params[i].dtype] for i in live), scalars


def _run(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState, hyper: Hyper, donate: bool
         ) -> tuple[list[Any], AdamaxState] | None:
    prepared = _prepare(params, grads, state, hyper)
    if prepared is None:
        return None
    live, gs, which, scalars = prepared
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")
        nw, nm, nu = _jitted(donate)(hyper.profile, which, [params[i] for i in live], gs,
                                     [state.m[i] for i in live], [state.u[i] for i in live], scalars)
    new_w, new_m, new_u = list(params), list(state.m), list(state.u)
    for k, i in enumerate(live):
        new_w[i], new_m[i], new_u[i] = nw[k], nm[k], nu[k]
    return new_w, AdamaxState(state.iterations + 1, tuple(new_m), tuple(new_u))


def step(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState, hyper: Hyper, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """``Adamax.apply`` on JAX arrays: the jitted step, inputs left valid; ``None`` for sparse."""
    return _run(params, grads, state, hyper, donate=False)


def make_step(hyper: Hyper) -> Callable[[Sequence[Any], AdamaxState, Sequence[Any]], tuple[list[Any], AdamaxState]]:
    """A pure step ``(params, state, grads) -> (new_params, new_state)`` that donates buffers.

    ``hyper`` is an optimizer's :attr:`Adamax.hyper`; ``state`` starts as
    :func:`adamax_spec.core.init(params) <adamax_spec.core.init>`.  ``params`` and the
    state's moments must not be used after the call (their buffers are donated).
    Arguments are not validated (run one ``Adamax.apply`` first to check them);
    sparse gradients are not accepted.
    """
    def donating_step(params: Sequence[Any], state: AdamaxState, grads: Sequence[Any]
                      ) -> tuple[list[Any], AdamaxState]:
        out = _run(params, grads, state, hyper, donate=True)
        if out is None:
            raise TypeError("make_step takes dense gradients only (IndexedSlices: use Adamax.apply)")
        return out

    return donating_step
