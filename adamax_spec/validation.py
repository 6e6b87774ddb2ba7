"""Argument validation: every bad input raises before anything changes (clauses V-*).

Messages name the argument and the offending value, e.g.
``ValueError: beta_1 must be a finite number in [0, 1), got beta_1=1.0``.
We are stricter than Keras 2.9 where Keras is accidental (a negative
``learning_rate`` is accepted there, ``epsilon=0`` silently becomes 1e-7);
``docs/spec.md`` says which of these an implementation MAY accept.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from ._xp import device, namespace
from .core import AdamaxState
from .sparse import IndexedSlices

__all__ = [
    "ALLOWED_KWARGS",
    "check_learning_rate",
    "check_number",
    "check_pairs",
    "check_params",
    "check_sequences",
    "check_state_dict",
    "check_step",
]

#: Extra keyword arguments Keras 2.9's constructor accepts.
ALLOWED_KWARGS = ("clipnorm", "clipvalue", "decay", "global_clipnorm", "lr")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(
    name: str, value: Any, *, low: float = -math.inf, high: float = math.inf,
    low_open: bool = False, high_open: bool = False,
) -> float:
    """``value`` as a float, or ``TypeError``/``ValueError`` naming ``name``."""
    if hasattr(value, "shape") and tuple(value.shape) == ():
        try:
            value = float(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a real number, got {name}={value!r}") from e
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {name}={value!r}")
    v = float(value)
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if not math.isfinite(v) or below or above:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {name}={value!r}")
    return v


def check_learning_rate(name: str, value: Any) -> Any:
    """A float >= 0, a real 0-d array >= 0, a schedule or a callable."""
    if callable(value):
        return value
    if hasattr(value, "shape"):
        if tuple(value.shape) != ():
            raise ValueError(f"{name} must be a 0-d array, got {name} of shape {tuple(value.shape)}")
        xp = namespace(value)
        if not xp.isdtype(value.dtype, "real floating"):
            raise TypeError(f"{name} must have a real floating dtype, got {name}.dtype={value.dtype}")
        check_number(name, float(value), low=0.0)
        return value
    return check_number(name, value, low=0.0)


def check_scheduled_lr(value: Any, iterations: int) -> None:
    """A schedule or callable returned a usable learning rate for this step."""
    if hasattr(value, "shape"):
        check_learning_rate("learning_rate (as returned by the schedule)", value)
        return
    if not _is_real(value):
        raise TypeError(
            f"learning_rate schedule returned {value!r} at step {iterations}; expected a real number"
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"learning_rate schedule returned {value!r} at step {iterations}; "
            "expected a finite number >= 0"
        )


def check_sequences(params: Any, grads: Any) -> tuple[list[Any], list[Any]]:
    """``params`` and ``grads`` as lists; a bare array (not a list of arrays) is refused.

    ``list(array)`` would silently iterate over its rows and update each row as a parameter.
    """
    out = []
    for name, seq in (("params", params), ("grads", grads)):
        if hasattr(seq, "shape") or isinstance(seq, IndexedSlices | str | bytes):
            raise TypeError(
                f"{name} must be a sequence of arrays (one per parameter), got a single {type(seq).__name__}"
            )
        try:
            out.append(list(seq))
        except TypeError as e:
            raise TypeError(f"{name} must be a sequence of arrays, got {name}={seq!r}") from e
    return out[0], out[1]


def check_pairs(grads_and_vars: Any) -> list[tuple[Any, Any]]:
    """``apply_gradients``' argument as a list of ``(grad, var)`` pairs."""
    if hasattr(grads_and_vars, "shape"):
        raise TypeError("grads_and_vars must be an iterable of (grad, var) pairs, got a single array")
    try:
        pairs = list(grads_and_vars)
    except TypeError as e:
        raise TypeError(f"grads_and_vars must be an iterable of (grad, var) pairs, got {grads_and_vars!r}") from e
    if set(map(type, pairs)) <= {tuple} and set(map(len, pairs)) <= {2}:
        return pairs                    # the common case, checked without a Python loop
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"grads_and_vars[{i}] must be a (grad, var) pair, got {type(pair).__name__} {pair!r:.80}")
    return [(g, v) for g, v in pairs]


def check_state_dict(state: Any) -> tuple[int, list[Any], list[Any]]:
    """``(iterations, m, u)`` from a :meth:`Adamax.state_dict`-shaped mapping, or an error naming the field."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict as returned by state_dict(), got {type(state).__name__}")
    if not isinstance(state.get("config", {}), Mapping):
        raise TypeError(f"state['config'] must be a dict as returned by get_config(), got {state['config']!r:.80}")
    iterations = state.get("iterations")
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
        raise ValueError(f"state['iterations'] must be an int >= 0, got {iterations!r}")
    moments = []
    for key in ("m", "u"):
        seq = state.get(key, [])
        if hasattr(seq, "shape") or isinstance(seq, str | bytes | Mapping):
            raise TypeError(f"state[{key!r}] must be a list of arrays, got {type(seq).__name__}")
        try:
            moments.append(list(seq))
        except TypeError as e:
            raise TypeError(f"state[{key!r}] must be a list of arrays, got {seq!r}") from e
    m, u = moments
    if len(m) != len(u):
        raise ValueError(f"state has {len(m)} m arrays but {len(u)} u arrays")
    for i, (a, b) in enumerate(zip(m, u, strict=True)):
        for key, x in (("m", a), ("u", b)):
            xp = _array_namespace(x, f"state[{key!r}][{i}]")
            if not xp.isdtype(x.dtype, "real floating"):
                raise TypeError(f"state[{key!r}][{i}] must have a real floating dtype, got dtype={x.dtype}")
        _same(f"state['u'][{i}]", b, f"state['m'][{i}]", a)
    return int(iterations), m, u


def _array_namespace(x: Any, where: str) -> Any:
    """The array-API namespace of ``x``; a ``TypeError`` naming ``where`` if ``x`` is no such array."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{where} must be an array, got {type(x).__name__}")
    try:
        return namespace(x)
    except TypeError as e:
        raise TypeError(f"{where} must be an array-API array, got {type(x).__name__}") from e


def check_params(params: Sequence[Any]) -> None:
    """Every parameter is an array (checked before moments are allocated for them)."""
    if all(map(hasattr, params, repeat("shape"))) and all(map(hasattr, params, repeat("dtype"))):
        return
    for i, w in enumerate(params):
        if not hasattr(w, "shape") or not hasattr(w, "dtype"):
            raise TypeError(f"params[{i}] must be an array, got {type(w).__name__}")


def check_step(params: Sequence[Any], grads: Sequence[Any], state: AdamaxState) -> None:
    """Check that ``params``, ``grads`` and ``state`` fit together; raise before any change."""
    if len(params) != len(grads):
        raise ValueError(
            f"grads must have one entry per parameter: got {len(grads)} grads for {len(params)} params"
        )
    if len(state.m) != len(params) or len(state.u) != len(params):
        raise ValueError(
            f"state holds moments for {len(state.m)} parameters, but {len(params)} params were given"
        )
    if params and all(g is None for g in grads):
        raise ValueError("No gradients provided for any variable: every entry of grads is None")
    xp0 = None
    for i, (w, g) in enumerate(zip(params, grads, strict=True)):
        where = f"params[{i}]"
        xp = _array_namespace(w, where)
        if xp0 is None:
            xp0 = xp
        elif xp is not xp0:
            raise TypeError(f"{where} belongs to another array library than params[0]")
        if not xp.isdtype(w.dtype, "real floating"):
            raise TypeError(f"{where} must have a real floating dtype, got dtype={w.dtype}")
        for what, s in (("m", state.m[i]), ("u", state.u[i])):
            _same(f"state.{what}[{i}]", s, where, w)
        if g is None:
            continue
        if isinstance(g, IndexedSlices):
            _check_sparse(i, g, w)
        else:
            _same(f"grads[{i}]", g, where, w)


def check_same_grad_dtypes(grads: Sequence[Any]) -> None:
    """global_clipnorm sums squares across tensors: their dtypes must agree."""
    dts = {str((g.values if isinstance(g, IndexedSlices) else g).dtype) for g in grads if g is not None}
    if len(dts) > 1:
        raise TypeError(f"global_clipnorm needs gradients of one dtype, got dtypes {sorted(dts)}")


def _same(name: str, x: Any, ref_name: str, ref: Any) -> None:
    if isinstance(x, IndexedSlices) or not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be an array of the same library as {ref_name}, got {type(x).__name__}")
    try:
        namespace(x, ref)
    except TypeError as e:
        raise TypeError(f"{name} must be an array of the same library as {ref_name}, got {type(x).__name__}") from e
    if tuple(x.shape) != tuple(ref.shape):
        raise ValueError(f"{name} has shape {tuple(x.shape)}, but {ref_name} has shape {tuple(ref.shape)}")
    if x.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, but {ref_name} has dtype {ref.dtype}")
    if device(x) != device(ref):
        raise ValueError(f"{name} is on device {device(x)}, but {ref_name} is on device {device(ref)}")


def _check_sparse(i: int, g: IndexedSlices, w: Any) -> None:
    name = f"grads[{i}]"
    xp = namespace(w)
    if w.ndim < 1:
        raise ValueError(f"{name} is sparse, but params[{i}] is 0-d: sparse gradients need rows")
    if tuple(g.dense_shape) != tuple(w.shape):
        raise ValueError(f"{name}.dense_shape={tuple(g.dense_shape)} does not match params[{i}].shape={tuple(w.shape)}")
    try:
        namespace(g.indices, g.values, w)
    except TypeError as e:
        raise TypeError(f"{name}.indices and .values must be arrays of params[{i}]'s library") from e
    if not xp.isdtype(g.indices.dtype, "integral"):
        raise TypeError(f"{name}.indices must be a 1-d integer array, got dtype={g.indices.dtype}")
    if g.indices.dtype not in (xp.int32, xp.int64):  # narrower ones: torch cannot index, JAX overflows
        raise TypeError(f"{name}.indices must be int32 or int64 (as Keras's IndexedSlices), "
                        f"got dtype={g.indices.dtype}")
    if g.indices.ndim != 1:
        raise ValueError(f"{name}.indices must be a 1-d integer array, got shape {tuple(g.indices.shape)}")
    want = (g.indices.shape[0], *tuple(w.shape[1:]))
    if tuple(g.values.shape) != want:
        raise ValueError(f"{name}.values has shape {tuple(g.values.shape)}, expected {want}")
    if g.values.dtype != w.dtype:
        raise TypeError(f"{name}.values has dtype {g.values.dtype}, but params[{i}] has dtype {w.dtype}")
    for what, x in (("indices", g.indices), ("values", g.values)):
        if device(x) != device(w):
            raise ValueError(f"{name}.{what} is on device {device(x)}, but params[{i}] is on {device(w)}")
    if g.indices.shape[0]:
        lo, hi = int(xp.min(g.indices)), int(xp.max(g.indices))
        if lo < 0 or hi >= w.shape[0]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name}.indices contains {bad}, outside [0, {w.shape[0]})")
