"""The CuPy fast path of ``Adamax.apply_gradients``: one fused CUDA kernel per tensor.

Imported only when CuPy arrays reach the optimizer; CuPy itself is imported lazily
and the kernels are compiled on first use.  Two kernels, both generated from the
profile by :func:`dense_body` / :func:`sparse_body`:

dense (``cupy.ElementwiseKernel``, ``w``, ``m``, ``u`` updated in place)::

    mn  = m + (g - m) * omb1
    dec = b2 * u;  mag = |g|            (+ eps on mag "inside", on dec "inside_decay")
    un  = dec < mag ? mag : dec         ("keep_decayed"; "propagate": NaN-propagating max)
    w   = w - lr_t * (mn / (un + eps))  ("outside"; else mn / un)

sparse (lazy rows; duplicates summed first by :func:`adamax_spec.sparse.coalesce_rows`):
one thread per element of the summed gradient rows, which reads row ``rows[k]`` of
``w``, ``m``, ``u`` where it lies, updates it (``m*b1 + g*(1 - b1)``, NaN-propagating max)
and writes it back: gather, update and scatter fused, cost proportional to the rows named.

Every operation rounds once in the parameter dtype: products and sums are written with
the ``__f*_rn`` / ``__d*_rn`` intrinsics so the compiler cannot contract them into
FMAs (float16 computes each operation in float32 and rounds, which is exact for one
operation).  ``tests/backends/test_fast_paths.py`` evaluates the generated bodies with NumPy on
the CPU against the generic expression (the math), and runs the kernels themselves
where CuPy and a CUDA device are present.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from adamax_spec.core import AdamaxState, Step
from adamax_spec.sparse import IndexedSlices, coalesce_rows, densify

__all__ = ["IN_PLACE", "PREAMBLE", "dense_body", "sparse_body", "step"]

#: This fast path writes the caller's arrays (``Adamax.apply_gradients``).
IN_PLACE = True

#: Round-to-nearest operations that the compiler may not fuse, for half, float and double.
PREAMBLE = r"""
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float16 add_rn(float16 a, float16 b) { return float16(__fadd_rn(float(a), float(b))); }
__device__ __forceinline__ float16 sub_rn(float16 a, float16 b) { return float16(__fsub_rn(float(a), float(b))); }
__device__ __forceinline__ float16 mul_rn(float16 a, float16 b) { return float16(__fmul_rn(float(a), float(b))); }
__device__ __forceinline__ float16 div_rn(float16 a, float16 b) { return float16(__fdiv_rn(float(a), float(b))); }
template <typename T> __device__ __forceinline__ T abs_(T a) { return a < T(0) ? -a : (a == T(0) ? T(0) : a); }
template <typename T> __device__ __forceinline__ T max_keep(T dec, T mag) { return dec < mag ? mag : dec; }
template <typename T> __device__ __forceinline__ T max_prop(T dec, T mag) {
    return dec != dec ? dec : (mag != mag ? mag : (dec < mag ? mag : dec));
}
"""


def _update_lines(epsilon: str, nan_in_max: str, kernel_form: bool) -> list[str]:
    lines = ["T mn = add_rn(m0, mul_rn(sub_rn(g, m0), omb1));" if kernel_form
             else "T mn = add_rn(mul_rn(m0, b1), mul_rn(g, omb1));",
             "T dec = mul_rn(b2, u0);",
             "T mag = abs_(g);"]
    if epsilon == "inside":
        lines.append("mag = add_rn(mag, eps);")
    elif epsilon == "inside_decay":
        lines.append("dec = add_rn(dec, eps);")
    lines.append("T un = max_keep(dec, mag);" if nan_in_max == "keep_decayed" and kernel_form
                 else "T un = max_prop(dec, mag);")
    lines.append("T den = add_rn(un, eps);" if epsilon == "outside" else "T den = un;")
    lines.append("T wn = sub_rn(w0, mul_rn(lr_t, div_rn(mn, den)));")
    return lines


def dense_body(epsilon: str, nan_in_max: str) -> str:
    """The dense kernel's operation: ``w``, ``m``, ``u`` are read and written in place."""
    return "\n".join(["T w0 = w; T m0 = m; T u0 = u;", *_update_lines(epsilon, nan_in_max, True),
                      "w = wn; m = mn; u = un;"])


def sparse_body(epsilon: str) -> str:
    """The sparse kernel's operation, one element ``i`` of the summed rows ``g``."""
    return "\n".join([
        "long long j = (long long)rows[i / dim] * dim + i % dim;",
        "T w0 = w[j]; T m0 = m[j]; T u0 = u[j];",
        *_update_lines(epsilon, "propagate", False),
        "w[j] = wn; m[j] = mn; u[j] = un;"])


_KERNELS: dict[tuple[str, ...], Any] = {}


def _kernel(kind: str, epsilon: str, nan_in_max: str) -> Any:
    key = (kind, epsilon, nan_in_max)
    if key not in _KERNELS:
        cp = importlib.import_module("cupy")
        if kind == "dense":
            _KERNELS[key] = cp.ElementwiseKernel(
                "T g, T lr_t, T omb1, T b2, T eps", "T w, T m, T u",
                dense_body(epsilon, nan_in_max), f"adamax_dense_{epsilon}_{nan_in_max}",
                preamble=PREAMBLE)
        else:
            _KERNELS[key] = cp.ElementwiseKernel(
                "T g, raw I rows, int64 dim, T lr_t, T b1, T omb1, T b2, T eps, raw T w, raw T m, raw T u",
                "", sparse_body(epsilon), f"adamax_sparse_{epsilon}", preamble=PREAMBLE)
    return _KERNELS[key]


def step(params: Sequence[Any], st: Step, state: AdamaxState, *,
         cache: dict[str, Any]) -> tuple[list[Any], AdamaxState] | None:
    """One in-place step on CuPy arrays, or ``None`` (nothing changed) if not possible."""
    cp = importlib.import_module("cupy")
    profile, grads = st.profile, st.grads
    live = [i for i, g in enumerate(grads) if g is not None]
    for i in live:
        for x in (params[i], state.m[i], state.u[i]):
            if type(x) is not cp.ndarray or not x.flags.c_contiguous or x.dtype.kind != "f":
                return None
    work = []
    for i in live:
        w, g, m, u = params[i], grads[i], state.m[i], state.u[i]
        s = st.scalars(w)
        if isinstance(g, IndexedSlices) and profile.sparse == "lazy":
            rows, values = coalesce_rows(g.indices, g.values)
            work.append(("sparse", w, cp.ascontiguousarray(values), m, u, rows, s))
            continue
        if isinstance(g, IndexedSlices):
            g = densify(g, w)
        work.append(("dense", w, cp.ascontiguousarray(g), m, u, None, s))
    written = [x for item in work for x in (item[1], item[3], item[4])]
    if len({id(x) for x in written}) != len(written) or any(
            x.base is not None for x in written):   # views may overlap: leave them to the generic path
        return None
    with cp.cuda.Device(params[live[0]].device.id):
        for kind, w, g, m, u, rows, s in work:
            if kind == "dense":
                _kernel("dense", profile.epsilon, profile.nan_in_max)(
                    g, s.lr_t, s.one_minus_beta_1, s.beta_2, s.epsilon, w, m, u)
            elif g.size:
                dim = g.size // max(1, g.shape[0])
                _kernel("sparse", profile.epsilon, "propagate")(
                    g, rows, dim, s.lr_t, s.beta_1, s.one_minus_beta_1, s.beta_2, s.epsilon, w, m, u)
    return list(params), AdamaxState(st.t, state.m, state.u)
