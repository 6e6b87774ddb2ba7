"""The dask fast path: one graph layer per parameter for the element-wise update.

The generic path builds the dense step out of about ten dask operations per tensor
(``m + (g - m)*(1 - b1)``, ``b2*u``, ``|g|``, the max, the division...), each one a
layer of the graph and a task per chunk.  Here the whole update of one tensor is one
:func:`dask.array.map_blocks` call that runs the core's own
:func:`adamax_spec.core.update_rows` (``kernel_form=True``: the same operations, in the
same order and dtype, as the generic path) on each chunk's NumPy block and returns
``w``, ``m`` and ``u`` stacked on a new leading axis; three slices of it are the new
arrays, chunked as the parameter (a gradient or moment chunked otherwise is rechunked
to it first).  Clipping, the learning rate and the step scalars come from the core's own
functions (:func:`adamax_spec.core.begin_step`), as lazy 0-d dask arrays, so nothing is computed before the caller asks.

Sparse gradients take the generic path (which refuses them on dask: summing duplicate
rows needs the number of distinct rows, which a lazy array leaves unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from adamax_spec.core import AdamaxState, Step, StepScalars, update_rows
from adamax_spec.profiles import Profile
from adamax_spec.sparse import IndexedSlices

__all__ = ["IN_PLACE", "step"]

#: Dask arrays are immutable: this fast path returns new arrays (``Adamax.apply``).
IN_PLACE = False


def _block(w: np.ndarray, g: np.ndarray, m: np.ndarray, u: np.ndarray, *scalars: np.ndarray,
           profile: Profile) -> np.ndarray:
    """One chunk's step: ``stack([w', m', u'])`` by :func:`adamax_spec.core.update_rows`."""
    new = update_rows(profile, w, g, m, u, StepScalars(*scalars), kernel_form=True)
    return np.stack(new)


def step(params: Sequence[Any], st: Step, state: AdamaxState, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """``Adamax.apply`` on dask arrays, one ``map_blocks`` layer per tensor; ``None`` for sparse."""
    grads = st.grads
    if any(isinstance(g, IndexedSlices) for g in grads):
        return None
    new_w, new_m, new_u = list(params), list(state.m), list(state.u)
    for i, (w, g) in enumerate(zip(params, grads, strict=True)):
        if g is None:
            continue
        s = st.scalars(w)
        g, m, u = (x.rechunk(w.chunks) for x in (g, state.m[i], state.u[i]))  # blocks of the parameter
        stacked = da.map_blocks(
            _block, w, g, m, u, s.lr_t, s.beta_1, s.one_minus_beta_1, s.beta_2, s.epsilon,
            profile=st.profile, new_axis=0, chunks=((3,), *w.chunks), dtype=w.dtype,
            meta=np.empty((0,) * (w.ndim + 1), w.dtype),
        )
        new_w[i], new_m[i], new_u[i] = stacked[0], stacked[1], stacked[2]
    return new_w, AdamaxState(st.t, tuple(new_m), tuple(new_u))
