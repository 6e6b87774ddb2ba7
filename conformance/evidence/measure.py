"""Measuring one step: its median time, the memory it allocates, and the bandwidth bound.

``time_steps`` times a step after warm-up steps; ``peak_extra`` is the growth of the
process's resident-set high-water mark during one step (procfs ``clear_refs`` reset and
``malloc_trim`` first), or the ``tracemalloc`` peak where procfs does not allow that;
``bound_step`` is the memory-bandwidth bound every ratio of ``adamax-bench`` is taken
against (see :mod:`adamax_spec.conformance.evidence.bench`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from adamax_spec.backends import numpy_backend as nb

F32 = np.float32

Step = Callable[[], Any]


def time_steps(step: Step, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        step()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


#: Linux's process file system; another mount point can be given in ADAMAX_BENCH_PROCFS.
PROCFS = Path(os.environ.get("ADAMAX_BENCH_PROCFS", "/proc"))


def _reset_hwm() -> None:
    """Reset the peak-RSS counter (VmHWM) of this process (``clear_refs`` code 5)."""
    (PROCFS / "self" / "clear_refs").write_text("5")


def _proc_status(key: str) -> int:
    with open(PROCFS / "self" / "status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def rss_hwm_available() -> bool:
    try:
        _reset_hwm()
        _proc_status("VmHWM")
        return True
    except OSError:
        return False
    except KeyError:
        return False


def peak_extra(step: Step, use_rss: bool) -> tuple[int | None, str, int]:
    """(extra bytes during one step, method, tracemalloc peak of that step)."""
    gc.collect()
    tracemalloc.start()
    try:
        step()
        _, traced = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if not use_rss:
        return traced, "tracemalloc", traced
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    before = _proc_status("VmRSS")
    _reset_hwm()
    step()
    after = _proc_status("VmHWM")
    return max(0, after - before), "rss-hwm", traced


# ---------------------------------------------------------------------------------------
# the bound


def bound_kernel() -> Callable[..., None] | None:
    if not nb.numba_available():
        return None
    import numba

    if "kernel" not in _BOUND:
        def bound(w: Any, g: Any, m: Any, u: Any, chunk: int) -> None:  # pragma: no cover
            n = w.size
            for c in numba.prange((n + chunk - 1) // chunk):
                s = c * chunk
                e = min(s + chunk, n)
                ww, gg, mm, uu = w[s:e], g[s:e], m[s:e], u[s:e]
                for i in range(ww.size):
                    tw, tg, tm, tu = ww[i], gg[i], mm[i], uu[i]
                    ww[i] = tg
                    mm[i] = tu
                    uu[i] = max(tw, tm)

        _BOUND["kernel"] = numba.njit(parallel=True, fastmath=False, nogil=True)(bound)
        _BOUND["serial"] = numba.njit(fastmath=False, nogil=True)(bound)
    return _BOUND["kernel"]


_BOUND: dict[str, Any] = {}


def bound_step(n: int, threads: int) -> tuple[Step, str]:
    rng = np.random.default_rng(7)
    w, g, m, u = (rng.standard_normal(n).astype(F32) for _ in range(4))
    kernel = bound_kernel()
    if kernel is None:
        def copy3() -> None:
            np.copyto(w, g)
            np.copyto(m, u)
            np.copyto(u, w)

        return copy3, "numba missing: 3 np.copyto calls, 1 thread (a weaker bound)"
    import numba

    if n <= nb.CHUNK or threads == 1:       # where the kernels run serially, so does the bound
        serial = _BOUND["serial"]

        def serial_step() -> None:
            serial(w, g, m, u, nb.CHUNK)

        return serial_step, "numba loop, 1 thread (as the kernel at this size), reads 4 writes 3"

    def step() -> None:
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            kernel(w, g, m, u, nb.CHUNK)
        finally:
            numba.set_num_threads(previous)

    return step, f"numba prange, {threads} threads, reads 4 arrays writes 3 (28 B/element)"

