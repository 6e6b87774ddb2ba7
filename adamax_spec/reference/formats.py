"""Binary floating-point formats a target may compute in, and rounding to them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FORMATS", "Format", "fmt", "round_to", "ulp"]


@dataclass(frozen=True)
class Format:
    """``precision`` significand bits (implicit bit included); ``unit`` = 2**-precision
    is the unit roundoff (half an ULP of 1); ``tiny`` the smallest normal number."""

    name: str
    precision: int
    tiny: float
    max: float

    @property
    def unit(self) -> float:
        return 2.0 ** -self.precision


FORMATS = {
    "float64": Format("float64", 53, 2.0**-1022, float(np.finfo(np.float64).max)),
    "float32": Format("float32", 24, 2.0**-126, float(np.finfo(np.float32).max)),
    "float16": Format("float16", 11, 2.0**-14, 65504.0),
    "bfloat16": Format("bfloat16", 8, 2.0**-126, 3.3895313892515355e38),
}


def fmt(dtype: str) -> Format:
    try:
        return FORMATS[dtype]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(FORMATS)}, got dtype={dtype!r}") from None


def round_to(x: np.ndarray | float, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (nearest, ties to even), returned as float64."""
    a = np.asarray(x, dtype=np.float64)
    if dtype == "float64":
        return a.copy()
    if dtype in ("float32", "float16"):
        with np.errstate(over="ignore"):
            return a.astype(dtype).astype(np.float64)
    if dtype == "bfloat16":
        _, e = np.frexp(a)  # a = m * 2**e with 0.5 <= |m| < 1
        e = np.maximum(e, -125)  # below bfloat16's smallest normal, keep its subnormal spacing
        r = np.ldexp(np.round(np.ldexp(a, 8 - e)), e - 8)  # np.round: ties to even
        return np.where(np.isfinite(a), r, a)
    raise ValueError(f"unknown dtype {dtype!r}")


def ulp(x: np.ndarray, dtype: str) -> np.ndarray:
    """The ULP of ``dtype`` at the magnitude of ``x`` (the subnormal spacing near 0)."""
    f = fmt(dtype)
    a = np.abs(np.asarray(x, dtype=np.float64))
    sub = f.tiny * 2.0 ** (1 - f.precision)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    return np.maximum(np.exp2(e - (f.precision - 1)), sub)
