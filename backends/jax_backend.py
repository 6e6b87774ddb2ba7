"""The JAX fast path: the dense Adamax step compiled with ``jax.jit`` (imported only for JAX arrays).

JAX arrays are immutable, so the step is functional: ``Adamax.apply`` on JAX arrays
calls :func:`step`, which runs the core's own :func:`adamax_spec.core.update_rows`
(``kernel_form=True``: ``m + (g - m)*(1 - b1)``, ``max(b2*u, |g|)``, ``w - lr_t*m/(u+eps)``,
the profile's epsilon and NaN rule) for every parameter inside one jitted function,
so XLA fuses the element-wise work into one pass per tensor.  The step scalars
(learning rate, bias correction) and clipping are computed outside by the core,
exactly as the generic path computes them (on host NumPy values of the parameter's
dtype: same bits, no eager JAX work per step), and passed in as arguments, so a new
step count or learning rate never recompiles.  Clipping, the learning rate, ``t`` and the
scalars come from the core's :class:`~adamax_spec.core.Step`.  ``Adamax.apply`` does **not** donate:
the caller's arrays stay valid, as the functional API promises.

:func:`make_step` returns the optax-style pure step ``(params, state, grads) ->
(params, state)`` that *donates* the parameter and moment buffers (XLA updates them
in place where the platform allows); the arrays passed in are invalid afterwards.

Sparse gradients (``IndexedSlices``) are compiled too.  Their number of slices varies
from step to step, and every new shape would compile anew, so :func:`_pad` first pads
``indices`` and ``values`` to the next power of two with rows that name index ``n``
(one past the last row) and hold zeros; clipping then sees the same norms (zeros add
nothing).  Inside the jitted step :func:`_coalesce` sums duplicate rows exactly as
:func:`adamax_spec.sparse.coalesce_rows` does (sorted unique rows, each sum added in
the order the slices occur) and gives the padding index ``n``, which the row writes
(``mode="drop"``) discard.  A lazy profile then updates only the named rows (Keras's
``b1*m + (1 - b1)*g`` form, as the core's sparse path); a dense-sparse profile
scatters the sums into zeros and takes the dense step.  (The ``sum_of_abs`` rule
never reaches a fast path: :func:`adamax_spec.backends.dispatch.fast_step` declines it.)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamax_spec.core import AdamaxState, Hyper, Step, StepScalars, begin_step, update_rows
from adamax_spec.profiles import Profile
from adamax_spec.sparse import IndexedSlices

__all__ = ["IN_PLACE", "kernel_grads", "make_step", "step"]

#: JAX arrays are immutable: this fast path returns new arrays (``Adamax.apply``).
IN_PLACE = False


def _update(profile: Profile, which: tuple[int, ...], ws: Sequence[Any], gs: Sequence[Any], ms: Sequence[Any],
            us: Sequence[Any], scalars: Sequence[Sequence[Any]]) -> tuple[list[Any], list[Any], list[Any]]:
    """Every parameter's step; ``gs[k]`` is a dense gradient or a padded ``(indices, values)`` pair."""
    out_w, out_m, out_u = [], [], []
    for w, g, m, u, k in zip(ws, gs, ms, us, which, strict=True):
        s = StepScalars(*scalars[k])
        if not isinstance(g, tuple):
            nw, nm, nu = update_rows(profile, w, g, m, u, s, kernel_form=True)
        else:
            indices, values = g
            rows, total = _coalesce(indices, values, w.shape[0])
            if profile.sparse == "lazy":
                w_rows, m_rows, u_rows = (a.at[rows].get(mode="fill", fill_value=0) for a in (w, m, u))
                new = update_rows(profile, w_rows, total, m_rows, u_rows, s, kernel_form=False)
                nw, nm, nu = (a.at[rows].set(r, mode="drop") for a, r in zip((w, m, u), new, strict=True))
            else:
                dense = jnp.zeros_like(w).at[rows].set(total.astype(w.dtype), mode="drop")
                nw, nm, nu = update_rows(profile, w, dense, m, u, s, kernel_form=True)
        out_w.append(nw)
        out_m.append(nm)
        out_u.append(nu)
    return out_w, out_m, out_u


def _coalesce(indices: Any, values: Any, n: int) -> tuple[Any, Any]:
    """:func:`adamax_spec.sparse.coalesce_rows` with static shapes: ``(rows, sums)`` of length
    ``len(indices)``, ``rows`` sorted ascending, then ``n`` where no row is left (and for the
    padding, whose index is ``n``).  Each sum adds a row's slices in the order they occur."""
    size = indices.shape[0]
    order = jnp.argsort(indices, stable=True)
    ordered = indices[order]
    first = jnp.concatenate([jnp.ones(1, bool), ordered[1:] != ordered[:-1]])
    starts = jnp.nonzero(first, size=size, fill_value=size)[0]
    counts = jnp.concatenate([starts[1:], jnp.full(1, size, starts.dtype)]) - starts
    rows = jnp.where(counts > 0, ordered[jnp.minimum(starts, size - 1)], n).astype(indices.dtype)
    most = jnp.max(jnp.where(rows < n, counts, 0))       # the padding row is not a real row
    expand = (slice(None),) + (None,) * (values.ndim - 1)

    def slice_at(r: Any) -> Any:
        return values[order[jnp.minimum(starts + r, size - 1)]]

    def add(r: Any, total: Any) -> Any:
        return total + jnp.where((counts > r)[expand], slice_at(r), jnp.zeros((), values.dtype))

    return rows, jax.lax.fori_loop(1, most, add, slice_at(0))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _pad(indices: Any, values: Any, size: int, n: int) -> tuple[Any, Any]:
    """``indices`` and ``values`` padded to ``size`` slices that name row ``n`` and hold zeros;
    ``indices`` as int32 (int64 for 2**31 rows or more), which holds ``n`` whatever their dtype."""
    extra = size - indices.shape[0]
    indices = indices.astype(jnp.int32 if n < 2**31 - 1 else jnp.int64)
    return (jnp.concatenate([indices, jnp.full((extra,), n, indices.dtype)]),
            jnp.concatenate([values, jnp.zeros((extra, *values.shape[1:]), values.dtype)]))


def _padded(g: IndexedSlices) -> IndexedSlices:
    size = max(8, 1 << (g.indices.shape[0] - 1).bit_length())
    indices, values = _pad(g.indices, g.values, size, g.dense_shape[0])
    return IndexedSlices(values, indices, g.dense_shape)


_JITTED: dict[bool, Callable[..., Any]] = {}


def _jitted(donate: bool) -> Callable[..., Any]:
    fn = _JITTED.get(donate)
    if fn is None:
        fn = _JITTED[donate] = jax.jit(_update, static_argnums=(0, 1),
                                       donate_argnums=(2, 4, 5) if donate else ())
    return fn


def _host_like(w: Any, lr: Any) -> Any:
    """What the step scalars are computed on: a NumPy 0-d array of ``w``'s dtype, so that they
    are host values passed into the jitted step (six eager JAX conversions cost about 1 ms a
    step); the same bits, since each scalar is one IEEE operation or conversion in that dtype
    (``tests/backends/test_fast_paths.py``).  ``w`` itself for bfloat16 (NumPy's ``finfo`` does not know
    it) and for a learning rate that is an array (kept where it lives: no device sync)."""
    if hasattr(lr, "shape") or w.dtype == jnp.bfloat16:
        return w
    return np.empty((), w.dtype)


def kernel_grads(grads: Sequence[Any]) -> list[Any]:
    """``grads`` with every sparse gradient padded (:func:`_padded`): the same values and norms,
    in the few shapes the jitted step and the clipping ops compile for."""
    return [_padded(g) if isinstance(g, IndexedSlices) else g for g in grads]


def _prepare(params: Sequence[Any], st: Step) -> tuple[list[int], list[Any], tuple[int, ...], list[Any]]:
    live = [i for i, g in enumerate(st.grads) if g is not None]
    slot: dict[Any, int] = {}
    scalars: list[tuple[Any, ...]] = []          # one set per dtype, shared by its tensors
    for i in live:
        w = params[i]
        if w.dtype not in slot:
            s = st.scalars(w, _host_like(w, st.lr))
            slot[w.dtype] = len(scalars)
            scalars.append((s.lr_t, s.beta_1, s.one_minus_beta_1, s.beta_2, s.epsilon))
    gs = [(g.indices, g.values) if isinstance(g, IndexedSlices) else g for g in (st.grads[i] for i in live)]
    return live, gs, tuple(slot[params[i].dtype] for i in live), scalars


def _run(params: Sequence[Any], st: Step, state: AdamaxState, donate: bool) -> tuple[list[Any], AdamaxState]:
    live, gs, which, scalars = _prepare(params, st)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*donated buffers were not usable.*")
        nw, nm, nu = _jitted(donate)(st.profile, which, [params[i] for i in live], gs,
                                     [state.m[i] for i in live], [state.u[i] for i in live], scalars)
    new_w, new_m, new_u = list(params), list(state.m), list(state.u)
    for k, i in enumerate(live):
        new_w[i], new_m[i], new_u[i] = nw[k], nm[k], nu[k]
    return new_w, AdamaxState(st.t, tuple(new_m), tuple(new_u))


def step(params: Sequence[Any], st: Step, state: AdamaxState, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState]:
    """``Adamax.apply`` on JAX arrays: the jitted step, inputs left valid."""
    return _run(params, st, state, donate=False)


def make_step(hyper: Hyper) -> Callable[[Sequence[Any], AdamaxState, Sequence[Any]], tuple[list[Any], AdamaxState]]:
    """A pure step ``(params, state, grads) -> (new_params, new_state)`` that donates buffers.

    ``hyper`` is an optimizer's :attr:`Adamax.hyper`; ``state`` starts as
    :func:`adamax_spec.core.init(params) <adamax_spec.core.init>`.  ``params`` and the
    state's moments must not be used after the call (their buffers are donated).
    Arguments are not validated (run one ``Adamax.apply`` first to check them).
    Sparse gradients are accepted except under a ``sum_of_abs`` profile (Keras 3), whose
    rule only the generic path implements.
    """
    def donating_step(params: Sequence[Any], state: AdamaxState, grads: Sequence[Any]
                      ) -> tuple[list[Any], AdamaxState]:
        if hyper.profile.sparse_magnitude != "abs_of_sum" and any(isinstance(g, IndexedSlices) for g in grads):
            raise TypeError(f"make_step under profile {hyper.profile.name!r} takes dense gradients only "
                            "(its sparse rule, u from the sum of |values|, is on the generic path: use Adamax.apply)")
        return _run(params, begin_step(kernel_grads(grads), state, hyper), state, donate=True)

    return donating_step
