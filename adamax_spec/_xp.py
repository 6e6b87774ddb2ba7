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
