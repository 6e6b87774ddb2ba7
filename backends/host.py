"""Arrays to and from host bytes, for state files (:mod:`adamax_spec.state_file`).

The only place the state-file code touches a concrete array library. Arrays leave their
device through DLPack or NumPy, as little-endian C-order bytes; they come back in the
namespace, on the device and with the dtype of a ``like`` array (the parameter they belong to).
``bfloat16`` travels as its 16 raw bits (NumPy has no bfloat16; torch and JAX do).
torch is only touched when the array already is a torch tensor (``sys.modules`` look-up).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

__all__ = ["dtype_name", "from_bytes", "to_bytes"]


def dtype_name(x: Any) -> str:
    """The dtype's plain name: ``float32``, ``bfloat16``, ... (no library prefix)."""
    return str(x.dtype).rsplit(".", 1)[-1]


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _to_host(x: Any) -> np.ndarray:
    if _is_torch(x):
        import torch

        t = x.detach().cpu()
        return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()
    if isinstance(x, np.ndarray | np.generic):
        return np.asarray(x)
    try:
        return np.from_dlpack(x)
    except (TypeError, ValueError, RuntimeError, BufferError, AttributeError):
        pass
    if hasattr(x, "get") and callable(x.get):  # CuPy: device to host copy
        return np.asarray(x.get())
    return np.asarray(x)  # JAX bfloat16 (ml_dtypes), anything with __array__


def to_bytes(x: Any) -> bytes:
    """``x``'s elements as little-endian, C-order bytes."""
    host = np.ascontiguousarray(_to_host(x))
    if sys.byteorder != "little" and host.dtype.itemsize > 1:
        host = host.byteswap()
    return host.tobytes()


def from_bytes(data: bytes, dtype: str, shape: tuple[int, ...], like: Any) -> Any:
    """An array of ``shape`` from ``data``, in ``like``'s namespace, on its device, of dtype ``dtype``.

    ``dtype`` must be ``like``'s dtype (the caller checks); the result is a fresh, writeable array.
    """
    if dtype == "bfloat16":
        bits = np.frombuffer(data, dtype="<u2").astype(np.uint16).reshape(shape)
        if _is_torch(like):
            import torch

            return torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).to(like.device)
        try:
            import ml_dtypes
        except ImportError as e:
            raise TypeError(f"cannot rebuild a bfloat16 array for {type(like).__name__} without ml_dtypes") from e
        host = bits.view(ml_dtypes.bfloat16)
    else:
        host = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    if _is_torch(like):
        import torch

        return torch.from_numpy(host).to(like.device)
    if isinstance(like, np.ndarray | np.generic):
        return host
    xp = array_namespace(like)
    out = xp.asarray(host, device=device(like))
    if out.dtype != like.dtype:
        out = xp.astype(out, like.dtype)
    return out
