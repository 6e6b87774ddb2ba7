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
    """A 0-d array of ``like``'s dtype and device holding ``value``."""
    if hasattr(value, "shape"):
        return xp.astype(xp.asarray(value, device=device(like)), like.dtype)
    return xp.asarray(value, dtype=like.dtype, device=device(like))


def is_floating(xp: Any, x: Any) -> bool:
    return bool(xp.isdtype(x.dtype, "real floating"))
