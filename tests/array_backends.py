"""The array libraries as the tests see them: one :class:`Backend` per library (and device).

Test modules in every folder import this module by name (``from array_backends import
Backend``): pytest loads ``tests/conftest.py`` first and, in its default ``prepend`` import mode
with no ``__init__.py`` in ``tests/``, puts ``tests/`` on ``sys.path`` to do so.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from adamax_spec.backends import host as _codec

#: The libraries a :class:`Backend` can be, in the order tests list them.
LIBRARIES = ("numpy", "torch", "jax", "array_api_strict", "dask")


def installed(*libraries: str) -> list[str]:
    """Those of ``libraries`` that are installed, in the order given."""
    return [lib for lib in libraries if importlib.util.find_spec(lib) is not None]


class Backend:
    """Arrays of one library, on one device: made from nested lists or NumPy data, copied back.

    ``library`` is the module name (``"numpy"``, ``"torch"``, ``"jax"``, ``"array_api_strict"``,
    ``"dask"``); ``name`` adds the device for array-api-strict.  ``other`` is a second device
    of the same library (array-api-strict only, else ``None``) for tests of arrays that
    disagree on where they live.
    """

    def __init__(self, library: str, device: str | None = None) -> None:
        """Skips the calling test when ``library`` is not installed."""
        if library not in LIBRARIES:
            raise ValueError(f"unknown library {library!r}; known: {LIBRARIES}")
        if device is not None and library != "array_api_strict":
            raise ValueError(f"{library}: only array_api_strict has simulated devices")
        self.library = library
        self.name = library
        self.device: Any = None
        self.other: Any = None
        if library == "numpy":
            self.xp: Any = np
        elif library == "torch":
            self.xp = pytest.importorskip("torch")
        elif library == "jax":
            self.xp = pytest.importorskip("jax.numpy")
        elif library == "dask":
            self.xp = pytest.importorskip("dask.array")
        else:
            self.xp = pytest.importorskip("array_api_strict")
            if device is not None:
                self.name = f"array_api_strict[{device}]"
                self.device = self.xp.Device(device)
            self.other = self.xp.Device("device2" if device == "device1" else "device1")

    # -- making arrays ---------------------------------------------------------------------------
    def arr(self, values: Any, dtype: str = "float32", device: Any = None) -> Any:
        """An array of ``dtype`` holding ``values`` (nested lists or a NumPy array, rounded once to
        ``dtype``), on ``device`` (array-api-strict; default: this backend's device).  Never a
        view of ``values``: tests write the result in place."""
        xp, lib = self.xp, self.library
        if lib == "numpy":
            return np.array(values, dtype=dtype)
        if lib == "torch":
            a = np.asarray(values)
            if a.dtype.kind == "f":
                return xp.from_numpy(a.astype(np.float64)).to(getattr(xp, dtype))
            return xp.asarray(values, dtype=getattr(xp, dtype))
        if lib == "jax":
            a = np.asarray(values, dtype=np.float64)
            return xp.asarray(a.astype(np.float32) if dtype != "float64" else a).astype(getattr(xp, dtype))
        if lib == "dask":
            return xp.from_array(np.array(values, dtype=dtype), chunks=2)
        where = self.device if device is None else device
        return xp.asarray(np.array(values, dtype=dtype), device=where)

    def zeros(self, shape: tuple[int, ...], dtype: str = "float32") -> Any:
        return self.arr(np.zeros(shape), dtype)

    def idx(self, indices: Any) -> Any:
        """Row indices (integers) in the library's index dtype (array-api-strict: the device's)."""
        xp, lib, i = self.xp, self.library, np.asarray(indices, dtype=np.int64)
        if lib == "numpy":
            return i.copy()
        if lib == "torch":
            return xp.from_numpy(i)
        if lib == "jax":
            return xp.asarray(i.astype(np.int32))
        if lib == "dask":
            return xp.from_array(i)
        info = xp.__array_namespace_info__()
        return xp.asarray(i, dtype=info.default_dtypes(device=self.device)["indexing"], device=self.device)

    # -- reading them back -----------------------------------------------------------------------
    def host(self, x: Any) -> np.ndarray:
        """An exact float64 NumPy copy of ``x``."""
        lib = self.library
        if lib == "numpy":
            return np.array(x, dtype=np.float64)
        if lib == "torch":
            return x.detach().to(self.xp.float64).cpu().numpy()
        if lib == "jax":
            return np.asarray(x.astype(self.xp.float32) if x.dtype != self.xp.float64 else x, dtype=np.float64)
        if lib == "dask":
            return np.asarray(x.compute(scheduler="synchronous"), dtype=np.float64)
        return np.array(x.to_device(self.xp.__array_namespace_info__().default_device()), dtype=np.float64)

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype).removeprefix("torch.").removeprefix("array_api_strict.")

    def where(self, x: Any) -> Any:
        """Where ``x`` lives: its device, or its chunks (dask), or its sharding (JAX)."""
        if self.library == "numpy":
            return "cpu"
        if self.library == "jax":
            return x.sharding
        if self.library == "dask":
            return x.chunks
        return x.device

    @property
    def writeable(self) -> bool:
        """Whether ``apply_gradients`` can write its arrays in place."""
        return self.library in ("numpy", "torch")

    @property
    def sparse(self) -> bool:
        """Whether the optimizer takes sparse gradients (``IndexedSlices``) of this library."""
        return self.library != "dask"


# -- bitwise snapshots ----------------------------------------------------------------------------
def bits(x: Any) -> Any:
    """Bitwise identity of an array of any library: (dtype, shape, bytes); other objects by value."""
    if not hasattr(x, "dtype"):
        return repr(x)
    return _codec.dtype_name(x), tuple(x.shape), _codec.to_bytes(x)


def snapshot(opt: Any, params: list[Any]) -> tuple[int, list[Any], list[Any]]:
    """An optimizer's step count and moments and the parameters, bit for bit."""
    s = opt.state
    moments = [] if s is None else [bits(a) for a in (*s.m, *s.u)]
    return opt.iterations, moments, [bits(p) for p in params]
