"""The only door to array libraries in the core: array-API namespaces via array-api-compat."""

from __future__ import annotations

import math
import struct
from typing import Any

from array_api_compat import array_namespace, device

__all__ = ["device", "is_floating", "namespace", "round_to_float32", "scalar"]


def namespace(*arrays: Any) -> Any:
    """The array-API namespace shared by ``arrays`` (``TypeError`` if they differ)."""
    return array_namespace(*arrays)


def round_to_float32(x: float) -> float:
    """``x`` rounded to the nearest float32 (ties to even), as a Python float."""
    if not math.isfinite(x):
        return x
    try:
        return float(struct.unpack("f", struct.pack("f", x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


def round_to_format(x: float, eps: float, smallest_normal: float) -> float:
    """``x`` rounded (ties to even) to the binary format with machine epsilon ``eps`` and
    smallest normal ``smallest_normal`` (an ``xp.finfo``'s fields), subnormals included, as a
    Python float; for ``|x|`` below the format's largest finite value (no overflow to inf)."""
    if x == 0 or not math.isfinite(x):
        return x
    # x = f * 2**e with 0.5 <= |f| < 1: a normal x has p = 1 - log2(eps) bits, so its ULP is
    # 2**(e - p); below the normal range the ULP is fixed at smallest_normal * eps.
    e = math.frexp(x)[1]
    p = 1 - math.frexp(eps)[1] + 1
    ulp_exp = max(e - p, math.frexp(smallest_normal * eps)[1] - 1)
    return math.ldexp(round(math.ldexp(x, -ulp_exp)), ulp_exp)  # exact scalings; round() ties to even


def scalar(xp: Any, value: Any, like: Any) -> Any:
    """A 0-d array of ``like``'s dtype and device holding ``value``.

    An array spread over several devices reports a layout (a JAX sharding) as its
    device, which a 0-d array cannot take; the scalar is then made without a device,
    so that it follows the spread operand it is combined with.
    """
    where = device(like)
    try:
        if hasattr(value, "shape"):
            return xp.astype(xp.asarray(value, device=where), like.dtype)
        return xp.asarray(value, dtype=like.dtype, device=where)
    except ValueError:
        if hasattr(value, "shape"):
            return xp.astype(xp.asarray(value), like.dtype)
        return xp.asarray(value, dtype=like.dtype)


def is_floating(xp: Any, x: Any) -> bool:
    return bool(xp.isdtype(x.dtype, "real floating"))
