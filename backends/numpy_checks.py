"""What the in-place NumPy fast path accepts: argument checks shared by all its entry points.

The fast path never decides whether it applies: each check raises
:class:`UnsupportedArrays` (a :class:`ValueError` naming the argument) for an input
it cannot update in place -- not a ``numpy.ndarray``, not C-contiguous, not writable
(``w``, ``m``, ``u``), unaligned, dtype not float16/32/64 or not shared, shapes that
differ, arrays that overlap -- and the caller then uses the generic path.  Scalars
(``lr_t``, ``b2``, ...) are rounded to the arrays' dtype here, once
(:func:`as_scalar`).  Bad option strings (``epsilon``, ``nan_in_max``, ``impl``) and
thread counts are plain :class:`ValueError`: they are the caller's mistake, not a
reason to fall back.

Imports nothing from the other ``numpy_*`` modules (they all import this one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "IMPLS",
    "Impl",
    "UnsupportedArrays",
    "as_scalar",
    "check_array",
    "check_disjoint",
    "check_threads",
    "modes",
]

Impl = Literal["auto", "numba", "numpy"]

#: The dtypes the fast path updates.
FLOAT_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
)

_EPSILON_MODES = {"outside": 0, "inside": 1, "inside_decay": 2, "none": 3}
_NAN_MODES = {"keep_decayed": 0, "propagate": 1}
#: The values of ``impl`` (:func:`~adamax_spec.backends.numpy_numba.select_impl`).
IMPLS = ("auto", "numba", "numpy")


class UnsupportedArrays(ValueError):
    """The fast path cannot update these arguments in place; use the generic path."""


def check_array(
    name: str,
    a: Any,
    dtype: np.dtype[Any] | None,
    shape: tuple[int, ...] | None,
    writable: bool,
) -> np.ndarray[Any, Any]:
    """``a`` if the fast path can use it as argument ``name`` (of ``dtype`` and ``shape`` where given)."""
    if type(a) is not np.ndarray:
        raise UnsupportedArrays(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise UnsupportedArrays(
            f"{name} has dtype {a.dtype}; the fast path handles native float16, float32, float64"
        )
    if dtype is not None and a.dtype != dtype:
        raise UnsupportedArrays(f"{name} has dtype {a.dtype}, expected {dtype} (like w)")
    if shape is not None and a.shape != shape:
        raise UnsupportedArrays(f"{name} has shape {a.shape}, expected {shape} (like w)")
    flags = a.flags
    if not flags.c_contiguous:
        raise UnsupportedArrays(f"{name} is not C-contiguous")
    if not flags.aligned:
        raise UnsupportedArrays(f"{name} is not aligned")
    if writable and not flags.writeable:
        raise UnsupportedArrays(f"{name} is not writable")
    return a


def as_scalar(name: str, x: Any, dtype: np.dtype[Any]) -> Any:
    """``x`` as a NumPy scalar of ``dtype``; arrays must already have that dtype."""
    if type(x) is dtype.type:
        return x
    if isinstance(x, np.ndarray | np.generic):
        if x.shape != ():
            raise UnsupportedArrays(f"{name} must be a scalar or 0-d array, got shape {x.shape}")
        if x.dtype != dtype:
            raise UnsupportedArrays(f"{name} has dtype {x.dtype}, expected {dtype} (like w)")
        return dtype.type(x[()] if isinstance(x, np.ndarray) else x)
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise UnsupportedArrays(
            f"{name} must be a real number or a 0-d numpy array, got {type(x).__name__}"
        )
    return dtype.type(x)


def modes(epsilon: str, nan_in_max: str, impl: str) -> tuple[int, int]:
    """The kernels' integer codes for ``epsilon`` and ``nan_in_max``, after checking all three options."""
    if epsilon not in _EPSILON_MODES:
        raise ValueError(f"epsilon must be one of {sorted(_EPSILON_MODES)}, got {epsilon!r}")
    if nan_in_max not in _NAN_MODES:
        raise ValueError(f"nan_in_max must be one of {sorted(_NAN_MODES)}, got {nan_in_max!r}")
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return _EPSILON_MODES[epsilon], _NAN_MODES[nan_in_max]


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is ``None`` or a positive int."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


def check_disjoint(names: Sequence[str], arrays: Sequence[np.ndarray[Any, Any]]) -> None:
    """Raise :class:`UnsupportedArrays` naming the first two of ``arrays`` that share memory."""
    if len({id(a) for a in arrays}) == len(arrays) and all(a.flags.owndata for a in arrays):
        return                          # distinct arrays that own their data never overlap
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            if arrays[i].size and arrays[j].size and np.may_share_memory(arrays[i], arrays[j]):
                raise UnsupportedArrays(f"{names[i]} and {names[j]} overlap in memory")
