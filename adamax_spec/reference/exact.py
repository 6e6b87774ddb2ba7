"""High-precision scalars and arrays for the reference (256-bit MPFR via gmpy2, else mpmath).

Inputs are binary floats, so converting them is exact; every operation then
rounds at 2**-256 relative, far below any bound we report.  Arrays are NumPy
object arrays of these numbers, so elementwise arithmetic, ``np.abs`` and
``np.maximum`` work unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PRECISION_BITS = 256

try:
    import gmpy2

    gmpy2.get_context().precision = PRECISION_BITS
    _mp = gmpy2.mpfr
    BACKEND = "gmpy2"

    def _log(x: Any) -> Any:
        return gmpy2.log(x)

    def _cos(x: Any) -> Any:
        return gmpy2.cos(x)

    def _pi() -> Any:
        return gmpy2.const_pi()

except ImportError:  # pragma: no cover - exercised only without gmpy2
    import mpmath

    mpmath.mp.prec = PRECISION_BITS
    _mp = mpmath.mpf
    BACKEND = "mpmath"

    def _log(x: Any) -> Any:
        return mpmath.log(x)

    def _cos(x: Any) -> Any:
        return mpmath.cos(x)

    def _pi() -> Any:
        return +mpmath.pi


_to_mp = np.frompyfunc(lambda v: _mp(float(v)), 1, 1)
_to_float = np.frompyfunc(float, 1, 1)


def num(x: float) -> Any:
    """One exact high-precision number from a Python/NumPy float."""
    return _mp(float(x))


def array(a: Any) -> np.ndarray:
    """An object array of exact high-precision copies of ``a``'s (binary float) values."""
    a = np.asarray(a, dtype=np.float64)
    out = _to_mp(a)
    return np.asarray(out, dtype=object).reshape(a.shape)


def to_float(a: Any) -> np.ndarray:
    """Round to float64 (for reporting and bound arithmetic)."""
    return np.asarray(_to_float(np.asarray(a, dtype=object)), dtype=np.float64)




def pow_(b: Any, t: Any) -> Any:
    """``b**t`` at the working precision (both libraries overload ``**``)."""
    return b**t


log = _log
cos = _cos
pi = _pi
