"""The judge's inputs: the gradients each step's update sees, and the trajectory as flat arrays.

Clipping and coalescing do not depend on the interpretation, so they are done once
per :func:`~adamax_spec.reference.verdict.judge` call, on exact values:

* clipping (Keras 2.9's order: ``clipvalue``, then ``clipnorm`` per parameter, then
  ``global_clipnorm``) evaluated exactly, with the error bound a correct target's
  float arithmetic may add, per element: ``(n/2 + 4) u |g'| + tiny`` for a norm of
  ``n`` elements (``+ 5`` for the global norm), with ``u`` the dtype's unit roundoff;
* duplicate rows of a sparse gradient summed exactly; a correct target's sum of ``k``
  rows may be off by ``k - 1`` roundings (``(k - 1)(u sum|v| + tiny)``), plus, where it
  flushes subnormals, the subnormal addends it reads as zero.

Each parameter's gradient at each step becomes a :class:`Grad`: flat exact values
(Python-float object arrays), their float64 copies and their error bounds, and the
flat indices a lazy sparse step updates.  :class:`Observed` holds the target's
trajectory (weights, and ``m``/``u`` where it exposes them) as flat float64 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from adamax_spec.reference import exact
from adamax_spec.reference.formats import Format, round_to
from adamax_spec.reference.model import Variant

__all__ = ["Grad", "Observed", "gradients"]


@dataclass
class Grad:
    """One parameter's gradient at one step, flattened: ``idx`` the updated elements (None: all)."""

    idx: np.ndarray | None
    g: np.ndarray      # object
    g_f: np.ndarray    # float64
    g_err: Any         # float64 array or 0.0
    # what u sees in place of |g| (a ``sum_abs`` variant's summed |slices|), None: |g|
    a: np.ndarray | None = None
    a_f: np.ndarray | None = None
    a_err: Any = 0.0

    def pick(self, sel: Any) -> Grad:
        """The elements ``sel`` (dense gradients)."""
        at = lambda e: e[sel] if isinstance(e, np.ndarray) and e.ndim else e  # noqa: E731
        return Grad(None, self.g[sel], self.g_f[sel], at(self.g_err),
                     None if self.a is None else self.a[sel], None if self.a_f is None else self.a_f[sel],
                     at(self.a_err))

    def magnitude(self) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(a, a_f, a_err)``: what u sees (exact, float64, uncertainty)."""
        if self.a is None or self.a_f is None:
            return np.abs(self.g), np.abs(self.g_f), self.g_err
        return self.a, self.a_f, self.a_err


def gradients(case: Any, v: Variant, f: Format) -> list[list[Grad | None]]:
    """Per step, per parameter: the gradient the update sees (``None``: the parameter has none)."""
    out = []
    for grads in case.grads:
        vals, errs = _clip(grads, case.hyper, f, case.dtype)
        row: list[Grad | None] = []
        for i, g in enumerate(grads):
            if g is None:
                row.append(None)
                continue
            shape = np.shape(case.params[i])
            if hasattr(g, "indices"):
                index = np.asarray(g.indices).reshape(-1)
                rows, gv, gb = _coalesce(index, vals[i], errs[i], f)
                # sum_abs: u sees sum_j |v_j| (|.| is 1-Lipschitz: the slices' errors carry over),
                # unless global_clipnorm summed the slices (global_clip_sums)
                sum_abs = v.sum_abs and not (v.global_clip_sums and case.hyper.get("global_clipnorm") is not None)
                mags = _coalesce(index, np.abs(vals[i]), errs[i], f) if sum_abs and rows.size < index.size \
                    else None
                if v.lazy:
                    ncol = int(np.prod(shape[1:]))
                    idx = (rows[:, None] * ncol + np.arange(ncol)).reshape(-1)
                    flat = lambda x: np.asarray(x, dtype=object).reshape(-1)  # noqa: E731
                    gflat = flat(gv)
                    grad = Grad(idx, gflat, exact.to_float(gflat), np.asarray(gb).reshape(-1))
                    if mags is not None:
                        grad.a = flat(mags[1])
                        grad.a_f, grad.a_err = exact.to_float(grad.a), np.asarray(mags[2]).reshape(-1)
                    row.append(grad)
                    continue
                grad = Grad(None, *_scatter(shape, rows, gv, gb))
                if mags is not None:
                    grad.a, grad.a_f, grad.a_err = _scatter(shape, rows, mags[1], mags[2])
                row.append(grad)
            else:
                gflat = np.asarray(vals[i], dtype=object).reshape(-1)
                gerr = errs[i] if np.ndim(errs[i]) == 0 else np.asarray(errs[i]).reshape(-1)
                row.append(Grad(None, gflat, exact.to_float(gflat), gerr))
        out.append(row)
    return out


# -- clipping and coalescing (independent of the interpretation) ----------------------------
def _clip(grads: list[Any], hyper: dict[str, Any], f: Format, dtype: str) -> tuple[list[Any], list[Any]]:
    """Clipping in Keras 2.9's order on exact values; returns (values, errors) per param.

    Sparse gradients are clipped on their values as given (before duplicates are summed).
    Without clipping the values are returned as exact Python floats (object arrays).
    """
    raw = [None if g is None else np.asarray(g.values if hasattr(g, "indices") else g, dtype=np.float64)
           for g in grads]
    cv, cn, gn = hyper.get("clipvalue"), hyper.get("clipnorm"), hyper.get("global_clipnorm")
    if cv is None and cn is None and gn is None:
        return [None if v is None else exact.floats(v) for v in raw], [0.0] * len(raw)
    vals: list[Any] = [None if v is None else exact.array(v) for v in raw]
    errs: list[Any] = [None if v is None else np.zeros(v.shape) for v in vals]
    e = f.unit
    if cv is not None:
        c = exact.num(float(round_to(cv, dtype)))
        # np.asarray: ufuncs on 0-d object arrays return bare scalars
        vals = [None if v is None else np.asarray(np.minimum(np.maximum(v, -c), c), dtype=object) for v in vals]
    if cn is not None:
        c = exact.num(float(round_to(cn, dtype)))
        for i, v in enumerate(vals):
            if v is None or v.size == 0:
                continue
            norm = _sqrt(np.sum(v * v))
            vals[i] = np.asarray(v * c / max(norm, c), dtype=object)
            errs[i] = (errs[i] + (v.size / 2 + 4) * e * exact.to_float(np.abs(vals[i]))) + f.tiny
    if gn is not None:
        present = [v for v in vals if v is not None and v.size]
        if present:
            total = sum(np.sum(v * v) for v in present)
            n = sum(v.size for v in present)
            c = exact.num(float(round_to(gn, dtype)))
            norm = _sqrt(total)
            scale = c / max(norm, c)
            for i, v in enumerate(vals):
                if v is not None:
                    vals[i] = np.asarray(v * scale, dtype=object)
                    errs[i] = errs[i] + (n / 2 + 5) * e * exact.to_float(np.abs(vals[i])) + f.tiny
    return vals, errs


def _sqrt(x: Any) -> Any:
    return x.sqrt() if hasattr(x, "sqrt") else x ** exact.num(0.5)


def _coalesce(indices: np.ndarray, values: np.ndarray, errs: Any, f: Format):
    """Sum duplicate rows exactly; a correct target's sum may differ by (k-1) roundings, and
    where it flushes subnormals (U-2: TensorFlow on CPU, GPUs) by (k-1) flushed partial sums,
    each below ``tiny``, and by its subnormal addends, each read as zero."""
    rows, inverse, counts = np.unique(indices, return_inverse=True, return_counts=True)
    errs = np.broadcast_to(np.asarray(errs, dtype=np.float64), values.shape)
    if rows.size == indices.size:  # no duplicates: nothing is summed
        order = np.argsort(inverse)
        return rows, values[order], errs[order]
    out = np.empty((rows.size, *values.shape[1:]), dtype=object)
    bound = np.zeros(out.shape)
    one = exact.num(1.0)
    for j in range(rows.size):
        sel = np.flatnonzero(inverse == j)
        s = one * values[sel[0]]
        for k in sel[1:]:
            s = s + values[k]
        out[j] = s
        if sel.size == 1:
            bound[j] = errs[sel].sum(axis=0)
            continue
        mags = np.abs(exact.to_float(values[sel])) * (1 + 2.0**-48)
        subnormal = np.where(mags < f.tiny, mags, 0.0).sum(axis=0)
        bound[j] = errs[sel].sum(axis=0) + (counts[j] - 1) * (f.unit * mags.sum(axis=0) + f.tiny) + subnormal
    return rows, out, bound


def _scatter(shape: tuple[int, ...], rows: np.ndarray, vs: Any, bs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Densified rows, flat: (exact values, float64 values, errors); other rows are 0."""
    dense = exact.floats(np.zeros(shape))
    derr = np.zeros(shape)
    dense[rows], derr[rows] = vs, bs
    return dense.reshape(-1), exact.to_float(dense).reshape(-1), derr.reshape(-1)


class Observed:
    """The trajectory as flat float64 arrays (and exact Python-float object arrays), made once."""

    def __init__(self, case: Any, traj: Any) -> None:
        flat = lambda a: np.asarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
        self.w = [[flat(p) for p in ps] for ps in traj.params]
        self.m = [None if ms is None else [flat(x) for x in ms] for ms in traj.m]
        self.u = [None if us is None else [flat(x) for x in us] for us in traj.u]
        self.start = [flat(p) for p in case.params]

    def state(self, q: str, k: int) -> list[np.ndarray] | None:
        """The target's ``q`` (``"m"`` or ``"u"``) after step ``k + 1``, per parameter; ``None`` if hidden."""
        arr = self.m if q == "m" else self.u
        return arr[k] if k < len(arr) else None
