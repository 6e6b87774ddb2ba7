"""High-precision scalars and arrays for the reference (256-bit MPFR via gmpy2, else mpmath).

Inputs are binary floats, so converting them is exact; every operation then
rounds at 2**-256 relative, far below any bound we report.  Arrays are NumPy
object arrays of these numbers, so elementwise arithmetic, ``np.abs`` and
``np.maximum`` run as NumPy's C loops over the objects (no Python-level loop).

Two kinds of object array are used:

- :func:`array`: high-precision numbers (exact copies of binary floats);
- :func:`floats`: the same values as Python floats.  They are exact too, and cheaper to
  make; an operation with a high-precision partner converts them exactly (gmpy2 reads a
  double with 53 bits), so they MUST only meet high-precision operands (or operations that
  are exact or correctly rounded in float64, such as ``abs``, comparisons, or a final
  difference that is rounded to float64 anyway).

:func:`working_precision` sets 256 bits for the current thread for the duration of a
``with`` block (gmpy2 contexts are per thread); the module also sets it on import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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

    def _context() -> Any:
        return gmpy2.context(gmpy2.get_context(), precision=PRECISION_BITS)

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

    def _context() -> Any:
        return mpmath.workprec(PRECISION_BITS)


_ONE = _mp(1.0)


@contextlib.contextmanager
def working_precision() -> Iterator[None]:
    """Run the block at :data:`PRECISION_BITS` bits whatever the thread's context says."""
    with _context():
        yield


def num(x: float) -> Any:
    """One exact high-precision number from a Python/NumPy float."""
    return _ONE * float(x)


def floats(a: Any) -> np.ndarray:
    """An object array of Python floats holding ``a``'s (binary float) values exactly."""
    return np.asarray(a, dtype=np.float64).astype(object)


def array(a: Any) -> np.ndarray:
    """An object array of exact high-precision copies of ``a``'s (binary float) values.

    ``1 * x`` is exact (and, with gmpy2, ten times cheaper than the ``mpfr(x)`` constructor);
    it keeps the sign of zero, infinities and NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN inputs stay NaN
        return np.asarray(_ONE * a.astype(object), dtype=object).reshape(a.shape)


def to_float(a: Any) -> np.ndarray:
    """Round to float64, to nearest (for reporting and bound arithmetic)."""
    return np.asarray(a, dtype=object).astype(np.float64)


def pow_(b: Any, t: Any) -> Any:
    """``b**t`` at the working precision (both libraries overload ``**``)."""
    return b**t


log = _log
cos = _cos
pi = _pi
