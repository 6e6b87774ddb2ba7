"""``adamax-bench``: one Adamax step, side by side, against a measured memory-bandwidth bound.

Every implementation runs in this one process on the same data; each is timed as
the median of ``--repeats`` steps after two warm-up steps.  Only ratios taken in
one run mean anything: these machines are shared and their bandwidth varies.

Cases (``--quick`` in brackets):

``dense-10M``    one float32 tensor of 10M [1M] elements.
``many-small``   1,000 [100] float32 tensors of 10k elements.
``sparse-1pct``  an embedding table 1M [100k] x 64 float32; 1% of the rows are named
                 by the gradient's indices, 20% of those index entries repeat an
                 earlier one (so 0.8% of rows are touched, and duplicates must be summed).

Implementations (each peer imported lazily, skipped with a note when missing):

``bandwidth-bound``        a numba ``prange`` loop, with as many threads as the kernels,
                           that reads w, g, m, u and writes w, m, u (28 bytes per float32
                           element, the traffic of a fused step) doing no arithmetic but one
                           ``max``.  Its time is the bound every ratio is taken against.
                           sparse: the same loop over contiguous arrays holding the touched
                           rows.  Without numba: three ``np.copyto`` calls (single thread,
                           a weaker bound; noted).
``adamax_spec[numpy]``     :func:`adamax_spec.backends.numpy_backend.dense_step_inplace`
                           (many-small: ``dense_step_many_inplace`` with a cached ``ManyPlan``;
                           sparse: ``coalesce_rows_numpy`` + ``sparse_step_inplace``).
``adamax_spec[numpy,no-plan]``  many-small only: no cached plan (validates every array).
``adamax_spec[numpy-fallback]`` the same with ``impl="numpy"`` (blocked in-place ufuncs).
``adamax_spec.Adamax``     the library's optimizer object on NumPy arrays
                           (``apply_gradients``; sparse-1pct: with ``IndexedSlices``).
``naive-array-api``        the step as array expressions with temporaries (functional).
``gather-scatter``         sparse only: gather the touched rows of w, m, u and scatter them
                           back (``np.take`` + fancy assignment): the data movement of a lazy
                           sparse update, without its arithmetic or the duplicate summing.
``torch.optim.Adamax(foreach=True|False)``, ``optax.adamax(jit)``: the peers (dense only;
                           neither takes sparse gradients).  torch and optax put epsilon
                           inside the max: the same cost, not the same numbers.

The process sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) so that idle OpenMP threads of
one library (numba's ``omp`` layer, torch) do not spin on the cores the next one needs.

``peak_extra_bytes`` is the growth of the process's resident-set high-water mark during
one step (``VmHWM`` after the step minus ``VmRSS`` before it, with the high-water mark
reset through procfs ``self/clear_refs`` and free heap pages returned by ``malloc_trim``
first): every library's temporaries and new output arrays, at page granularity.  Where
procfs does not allow that, it is the ``tracemalloc`` peak, which sees NumPy's
allocations only; ``peak_extra_method`` says which.  ``tracemalloc_peak_bytes`` is
recorded too.  A benchmark is not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adamax_spec.backends import numpy_backend as nb

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-7
F32 = np.float32

Step = Callable[[], Any]


@dataclass
class Record:
    case: str
    impl: str
    median_ms: float | None = None
    min_ms: float | None = None
    repeats: int = 0
    ratio_to_bound: float | None = None
    peak_extra_bytes: int | None = None
    peak_extra_method: str | None = None
    tracemalloc_peak_bytes: int | None = None
    elements: int = 0
    size: str = ""
    threads: int = 0
    note: str = ""
    times_ms: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# measuring


def _time(step: Step, repeats: int, warmup: int = 2) -> list[float]:
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


def _rss_hwm_available() -> bool:
    try:
        _reset_hwm()
        _proc_status("VmHWM")
        return True
    except OSError:
        return False
    except KeyError:
        return False


def _peak_extra(step: Step, use_rss: bool) -> tuple[int | None, str, int]:
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


def _bound_kernel() -> Callable[..., None] | None:
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


def _bound_step(n: int, threads: int) -> tuple[Step, str]:
    rng = np.random.default_rng(7)
    w, g, m, u = (rng.standard_normal(n).astype(F32) for _ in range(4))
    kernel = _bound_kernel()
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


# ---------------------------------------------------------------------------------------
# implementations


def _scalars() -> dict[str, Any]:
    lr_t = F32(LR) / (F32(1) - F32(B1))
    return {"lr_t": lr_t, "one_minus_b1": F32(1) - F32(B1), "b2": F32(B2), "eps": F32(EPS)}


def _tensors(sizes: list[int], seed: int = 0) -> tuple[list[Any], ...]:
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(n).astype(F32) for n in sizes]
    gs = [rng.standard_normal(n).astype(F32) for n in sizes]
    ms = [np.zeros(n, F32) for n in sizes]
    us = [np.zeros(n, F32) for n in sizes]
    return ws, gs, ms, us


def _ours(sizes: list[int], threads: int, impl: str, plan: bool) -> tuple[Step, str]:
    if impl == "numba" and not nb.numba_available():
        raise _Skip("numba is not installed")
    ws, gs, ms, us = _tensors(sizes)
    kw = _scalars()
    if len(sizes) == 1:
        w, g, m, u = ws[0], gs[0], ms[0], us[0]

        def one() -> None:
            nb.dense_step_inplace(w, g, m, u, **kw, threads=threads, impl=impl)

        return one, ""
    cached = nb.ManyPlan() if plan else None

    def many() -> None:
        nb.dense_step_many_inplace(ws, gs, ms, us, **kw, threads=threads, impl=impl,
                                   plan=cached)

    return many, "plan cached by the caller" if plan else "a new plan every step"


def _naive(sizes: list[int]) -> tuple[Step, str]:
    ws, gs, ms, us = _tensors(sizes)
    s = _scalars()
    xp = np
    lr_t, omb1, b2, eps = (np.asarray(s[k]) for k in ("lr_t", "one_minus_b1", "b2", "eps"))

    def step() -> None:
        for i in range(len(ws)):
            w, g, m, u = ws[i], gs[i], ms[i], us[i]
            m = m + (g - m) * omb1
            dec = b2 * u
            mag = xp.abs(g)
            u = xp.where(dec < mag, mag, dec)
            ws[i], ms[i], us[i] = w - lr_t * (m / (u + eps)), m, u

    return step, "functional: new arrays every step"


def _library_dense(sizes: list[int], fast: bool = True) -> tuple[Step, str]:
    try:
        from adamax_spec import Adamax
    except Exception as e:  # the library is being written; report, don't fail
        raise _Skip(f"adamax_spec.Adamax not importable: {type(e).__name__}: {e}") from e
    ws, gs, _, _ = _tensors(sizes)
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS, fast=fast)
    pairs = list(zip(gs, ws, strict=True))

    def step() -> None:
        opt.apply_gradients(pairs)

    return step, ("Adamax().apply_gradients on NumPy arrays (fast path)" if fast
                  else "generic array-API path, results written back")


def _ours_torch(sizes: list[int], threads: int) -> tuple[Step, str]:
    torch = _import("torch")
    from adamax_spec import Adamax

    torch.set_num_threads(threads)
    ws, gs, _, _ = _tensors(sizes)
    pairs = [(torch.from_numpy(g), torch.nn.Parameter(torch.from_numpy(w))) for g, w in zip(gs, ws, strict=True)]
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)

    def step() -> None:
        opt.apply_gradients(pairs)

    return step, "Adamax().apply_gradients on torch CPU Parameters (cached data pointers, numba kernel)"


def _ours_jax(sizes: list[int]) -> tuple[Step, str]:
    jax = _import("jax")
    import jax.numpy as jnp

    from adamax_spec import Adamax, core
    from adamax_spec.backends import jax_backend

    ws, gs, _, _ = _tensors(sizes)
    params = [jnp.asarray(w) for w in ws]
    grads = [jnp.asarray(g) for g in gs]
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    donating = jax_backend.make_step(opt.hyper)
    box: dict[str, Any] = {"params": params, "state": core.init(params)}

    def step() -> None:
        box["params"], box["state"] = donating(box["params"], box["state"], grads)
        jax.block_until_ready(box["params"])

    return step, f"jax {jax.__version__}: jax_backend.make_step (jit, params and moments donated)"


def _torch(sizes: list[int], threads: int, foreach: bool) -> tuple[Step, str]:
    torch = _import("torch")
    torch.set_num_threads(threads)
    ws, gs, _, _ = _tensors(sizes)
    params = [torch.nn.Parameter(torch.from_numpy(w)) for w in ws]
    for p, g in zip(params, gs, strict=True):
        p.grad = torch.from_numpy(g)
    opt = torch.optim.Adamax(params, lr=LR, betas=(B1, B2), eps=EPS, foreach=foreach)
    return opt.step, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def _optax(sizes: list[int], threads: int) -> tuple[Step, str]:
    jax = _import("jax")
    optax = _import("optax")
    import jax.numpy as jnp

    ws, gs, _, _ = _tensors(sizes)
    params = [jnp.asarray(w) for w in ws]
    grads = [jnp.asarray(g) for g in gs]
    opt = optax.adamax(LR, b1=B1, b2=B2, eps=EPS)
    state = [opt.init(params)]
    box = [params]

    def update(p: Any, s: Any, g: Any) -> Any:
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    jitted = jax.jit(update, donate_argnums=(0, 1))

    def step() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # "donated buffers were not usable"
            box[0], state[0] = jitted(box[0], state[0], grads)
        jax.block_until_ready(box[0])

    note = f"jax {jax.__version__}, XLA CPU threads: "
    note += "1 (XLA_FLAGS)" if threads == 1 else "XLA's own (all cores)"
    return step, note


class _Skip(Exception):
    pass


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise _Skip(f"{name} not importable: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------------------------------
# sparse


def _sparse_data(rows: int, dim: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(3)
    k = max(1, rows // 100)                       # index entries: 1% of the rows
    n_unique = k - k // 5                         # 20% of the entries repeat another one
    uniq = rng.choice(rows, size=n_unique, replace=False)
    indices = np.concatenate([uniq, rng.choice(uniq, size=k - n_unique)])
    rng.shuffle(indices)
    values = rng.standard_normal((k, dim)).astype(F32)
    return indices.astype(np.int64), values, np.unique(indices)


def _gather_scatter(tables: list[Any], touched: Any, dim: int) -> tuple[Step, str]:
    buf = np.empty((touched.size, dim), F32)

    def step() -> None:
        for t in tables:
            np.take(t, touched, axis=0, out=buf)
            t[touched] = buf

    return step, f"{touched.size} unique rows of w, m, u: np.take + fancy assignment"


def _sparse_kernel(tables: list[Any], indices: Any, values: Any, threads: int) -> tuple[Step, str]:
    w, m, u = tables
    kw = _scalars()

    def step() -> None:
        rows, summed = nb.coalesce_rows_numpy(indices, values)
        nb.sparse_step_inplace(w, rows, summed, m, u, beta_1=F32(B1), threads=threads, **kw)

    return step, "coalesce_rows_numpy + sparse_step_inplace (rows updated where they lie)"


def _library_dense_table(w: Any) -> tuple[Step, str]:
    from adamax_spec import Adamax

    g = np.zeros_like(w)
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)

    def step() -> None:
        opt.apply_gradients([(g, w)])

    return step, "the same table stepped with a dense gradient (fast path)"


def _library_sparse(w: Any, indices: Any, values: Any, fast: bool = True) -> tuple[Step, str]:
    try:
        from adamax_spec import Adamax, IndexedSlices
    except Exception as e:
        raise _Skip(f"adamax_spec.Adamax/IndexedSlices not importable: "
                    f"{type(e).__name__}: {e}") from e
    opt = Adamax(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS, fast=fast)
    grad = IndexedSlices(values, indices, w.shape)

    def step() -> None:
        opt.apply_gradients([(grad, w)])

    return step, "keras profile: lazy, duplicates summed, rows written in place"


# ---------------------------------------------------------------------------------------
# driver


@dataclass
class Config:
    quick: bool
    threads: int
    repeats: int
    cases: list[str]
    use_rss: bool


def _run_case(cfg: Config, case: str) -> list[Record]:
    t = cfg.threads
    records: list[Record] = []
    makers: list[tuple[str, Callable[[], tuple[Step, str]]]]
    if case in ("dense-10M", "many-small"):
        if case == "dense-10M":
            sizes = [1_000_000 if cfg.quick else 10_000_000]
        else:
            sizes = [10_000] * (100 if cfg.quick else 1_000)
        total = sum(sizes)
        size = (f"1 x {sizes[0]:,}" if len(sizes) == 1 else f"{len(sizes):,} x {sizes[0]:,}")
        makers = [
            ("bandwidth-bound", lambda: _bound_step(total, t)),
            ("adamax_spec[numpy]", lambda: _ours(sizes, t, "numba", True)),
        ]
        if len(sizes) > 1:
            makers.append(("adamax_spec[numpy,no-plan]", lambda: _ours(sizes, t, "numba", False)))
        makers += [
            ("adamax_spec[numpy-fallback]", lambda: _ours(sizes, t, "numpy", True)),
            ("adamax_spec.Adamax", lambda: _library_dense(sizes)),
            ("adamax_spec.Adamax(fast=False)", lambda: _library_dense(sizes, fast=False)),
            ("adamax_spec[torch]", lambda: _ours_torch(sizes, t)),
            ("adamax_spec[jax]", lambda: _ours_jax(sizes)),
            ("naive-array-api", lambda: _naive(sizes)),
            ("torch.optim.Adamax(foreach=True)", lambda: _torch(sizes, t, True)),
            ("torch.optim.Adamax(foreach=False)", lambda: _torch(sizes, t, False)),
            ("optax.adamax(jit)", lambda: _optax(sizes, t)),
        ]
    elif case == "sparse-1pct":
        rows, dim = (100_000 if cfg.quick else 1_000_000), 64
        indices, values, touched = _sparse_data(rows, dim)
        total = touched.size * dim
        size = f"{rows:,} x {dim}, {indices.size:,} indices, {touched.size:,} rows touched"
        rng = np.random.default_rng(4)
        tables = [rng.standard_normal((rows, dim)).astype(F32) for _ in range(3)]
        makers = [
            ("bandwidth-bound", lambda: _bound_step(total, t)),
            ("gather-scatter", lambda: _gather_scatter(tables, touched, dim)),
            ("adamax_spec[numpy]", lambda: _sparse_kernel(tables, indices, values, t)),
            ("adamax_spec.Adamax", lambda: _library_sparse(tables[0], indices, values)),
            ("adamax_spec.Adamax(fast=False)", lambda: _library_sparse(tables[0], indices, values, False)),
            ("adamax_spec.Adamax(dense step)", lambda: _library_dense_table(tables[0])),
        ]
        for impl, why in [
            ("torch.optim.Adamax(foreach=True)", "torch Adamax rejects sparse gradients"),
            ("optax.adamax(jit)", "optax has no sparse gradients"),
        ]:
            records.append(Record(case, impl, elements=total, size=size, threads=t,
                                  note=f"skipped: {why}"))
            print(_row(records[-1]), flush=True)
    else:
        raise ValueError(f"unknown case {case!r}")
    bound_ms = None
    for impl, make in makers:
        rec = Record(case, impl, elements=total, size=size, threads=t)
        try:
            step, rec.note = make()
            times = _time(step, cfg.repeats)
            rec.times_ms = [round(x, 4) for x in times]
            rec.median_ms = statistics.median(times)
            rec.min_ms = min(times)
            rec.repeats = len(times)
            rec.peak_extra_bytes, rec.peak_extra_method, rec.tracemalloc_peak_bytes = (
                _peak_extra(step, cfg.use_rss))
        except _Skip as e:
            rec.note = f"skipped: {e}"
        except Exception as e:  # a peer failing must not hide the others' numbers
            rec.note = f"failed: {type(e).__name__}: {e}"
        finally:
            step = None  # type: ignore[assignment]
            gc.collect()
        if impl == "bandwidth-bound":
            bound_ms = rec.median_ms
        if rec.median_ms is not None and bound_ms:
            rec.ratio_to_bound = rec.median_ms / bound_ms
        records.append(rec)
        print(_row(rec), flush=True)
    return records


def _case_size(cfg: Config, case: str) -> str:
    q = cfg.quick
    return {
        "dense-10M": f"one float32 tensor of {'1M' if q else '10M'} elements",
        "many-small": f"{'100' if q else '1,000'} float32 tensors of 10k elements",
        "sparse-1pct": f"float32 table {'100k' if q else '1M'} x 64, 1% rows indexed, "
                       "20% of the indices repeated",
    }.get(case, "?")


def _row(r: Record) -> str:
    med = "-" if r.median_ms is None else f"{r.median_ms:9.2f}"
    mn = "-" if r.min_ms is None else f"{r.min_ms:9.2f}"
    ratio = "-" if r.ratio_to_bound is None else f"{r.ratio_to_bound:6.2f}"
    mem = "-" if r.peak_extra_bytes is None else f"{r.peak_extra_bytes / 2**20:9.1f}"
    return f"{r.case:12s} {r.impl:35s} {med:>9s} {mn:>9s} {ratio:>6s} {mem:>9s}  {r.note}"


def _header() -> str:
    return (f"{'case':12s} {'impl':35s} {'median ms':>9s} {'min ms':>9s} {'xbound':>6s} "
            f"{'extra MiB':>9s}  note")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("numba", "torch", "jax", "optax", "array_api_compat"):
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:
            out[name] = "missing"
    return out


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open(PROCFS / "cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _machine(threads: int) -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "threads": threads,
        "versions": _versions(),
    }
    if nb.numba_available():
        import numba

        kernel = _bound_kernel()
        if kernel is not None:           # start the thread pool so the layer is known
            x = np.zeros(2 * nb.CHUNK, F32)
            kernel(x, x.copy(), x.copy(), x.copy(), nb.CHUNK)
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:
            info["numba_threading_layer"] = "not started"
    return info


def _plot(records: list[Record], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cases = list(dict.fromkeys(r.case for r in records))
    fig, axes = plt.subplots(len(cases), 1, figsize=(9, 2.2 + 2.4 * len(cases)), squeeze=False)
    for ax, case in zip(axes[:, 0], cases, strict=True):
        rs = [r for r in records if r.case == case and r.ratio_to_bound is not None]
        ax.barh([r.impl for r in rs], [r.ratio_to_bound for r in rs],
                color=["#888888" if r.impl == "bandwidth-bound" else
                       "#1f77b4" if r.impl.startswith("adamax_spec") else "#ff7f0e" for r in rs])
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.invert_yaxis()
        size = next((r.size for r in records if r.case == case), "")
        ax.set_title(f"{case} ({size} float32, {rs[0].threads if rs else '?'} threads)",
                     fontsize=10)
        ax.set_xlabel("median time / bandwidth bound (log scale, lower is better)")
        for i, r in enumerate(rs):
            ax.text(r.ratio_to_bound or 1, i, f" {r.ratio_to_bound:.2f}x ({r.median_ms:.1f} ms)",
                    va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="adamax-bench",
        description="Time one Adamax step of adamax_spec and its peers against a measured "
                    "memory-bandwidth bound (ratios within one run are what to compare).")
    parser.add_argument("--quick", action="store_true",
                        help="smaller cases (dense 1M, 100 x 10k, sparse 100k x 64)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for numba and torch (default: numba's default, all cores)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per implementation (default 11, --quick 5)")
    parser.add_argument("--cases", default="dense-10M,many-small,sparse-1pct",
                        help="comma-separated subset of dense-10M, many-small, sparse-1pct")
    parser.add_argument("--json", metavar="PATH", help="write the records as a JSON list")
    parser.add_argument("--png", metavar="PATH", help="write a bar chart (matplotlib, Agg)")
    args = parser.parse_args(argv)

    threads = args.threads
    if threads is not None and threads < 1:
        parser.error("--threads must be positive")
    # Idle OpenMP threads (numba's omp layer, torch) spin for a while after each parallel
    # region and would steal the cores of whichever library runs next in this process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    if threads == 1 and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()
    if threads is None:
        if nb.numba_available():
            import numba

            threads = int(numba.get_num_threads())
        else:
            threads = os.cpu_count() or 1
    cfg = Config(
        quick=args.quick,
        threads=threads,
        repeats=args.repeats or (5 if args.quick else 11),
        cases=[c.strip() for c in args.cases.split(",") if c.strip()],
        use_rss=_rss_hwm_available(),
    )
    machine = _machine(threads)
    print("adamax-bench" + (" --quick" if cfg.quick else ""))
    print(f"machine: {machine['cpu']}; cpu_count={machine['cpu_count']} "
          f"usable={machine['cpus_usable']}; threads used={threads}; "
          f"numba layer={machine.get('numba_threading_layer', '-')}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()))
    print(f"median of {cfg.repeats} steps after 2 warm-up steps; xbound = median / "
          "bandwidth-bound median of the same case; extra MiB: "
          + ("resident high-water-mark growth during one step" if cfg.use_rss
             else "tracemalloc peak (NumPy allocations only)"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    machine["load_average_1min"] = load
    if load > 0.5:
        print(f"warning: 1-minute load average {load:.2f} before starting: other processes use "
              "the CPUs, so multi-threaded timings (kernel and bound alike) will be noisy")
    print(_header())
    records: list[Record] = []
    for case in cfg.cases:
        print(f"-- {case}: {_case_size(cfg, case)}")
        records += _run_case(cfg, case)
    notes = [r for r in records if r.median_ms is None]
    if notes:
        print("\nnot measured:")
        for r in notes:
            print(f"  {r.case} {r.impl}: {r.note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**asdict(r), "machine": machine} for r in records], f, indent=1)
        print(f"wrote {args.json}")
    if args.png:
        _plot(records, args.png)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
