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
import gc
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adamax_spec.backends import numpy_backend as nb

from ..targets import versions
from .bench_steps import (
    Skip,
    gather_scatter,
    library_dense,
    library_dense_table,
    library_sparse,
    naive,
    optax_jit,
    ours,
    ours_jax,
    ours_torch,
    sparse_data,
    sparse_kernel,
    torch_optim,
)
from .measure import F32, PROCFS, Step, bound_kernel, bound_step, peak_extra, rss_hwm_available, time_steps


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
            ("bandwidth-bound", lambda: bound_step(total, t)),
            ("adamax_spec[numpy]", lambda: ours(sizes, t, "numba", True)),
        ]
        if len(sizes) > 1:
            makers.append(("adamax_spec[numpy,no-plan]", lambda: ours(sizes, t, "numba", False)))
        makers += [
            ("adamax_spec[numpy-fallback]", lambda: ours(sizes, t, "numpy", True)),
            ("adamax_spec.Adamax", lambda: library_dense(sizes)),
            ("adamax_spec.Adamax(fast=False)", lambda: library_dense(sizes, fast=False)),
            ("adamax_spec[torch]", lambda: ours_torch(sizes, t)),
            ("adamax_spec[jax]", lambda: ours_jax(sizes)),
            ("naive-array-api", lambda: naive(sizes)),
            ("torch.optim.Adamax(foreach=True)", lambda: torch_optim(sizes, t, True)),
            ("torch.optim.Adamax(foreach=False)", lambda: torch_optim(sizes, t, False)),
            ("optax.adamax(jit)", lambda: optax_jit(sizes, t)),
        ]
    elif case == "sparse-1pct":
        rows, dim = (100_000 if cfg.quick else 1_000_000), 64
        indices, values, touched = sparse_data(rows, dim)
        total = touched.size * dim
        size = f"{rows:,} x {dim}, {indices.size:,} indices, {touched.size:,} rows touched"
        rng = np.random.default_rng(4)
        tables = [rng.standard_normal((rows, dim)).astype(F32) for _ in range(3)]
        makers = [
            ("bandwidth-bound", lambda: bound_step(total, t)),
            ("gather-scatter", lambda: gather_scatter(tables, touched, dim)),
            ("adamax_spec[numpy]", lambda: sparse_kernel(tables, indices, values, t)),
            ("adamax_spec.Adamax", lambda: library_sparse(tables[0], indices, values)),
            ("adamax_spec.Adamax(fast=False)", lambda: library_sparse(tables[0], indices, values, False)),
            ("adamax_spec.Adamax(dense step)", lambda: library_dense_table(tables[0])),
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
            times = time_steps(step, cfg.repeats)
            rec.times_ms = [round(x, 4) for x in times]
            rec.median_ms = statistics.median(times)
            rec.min_ms = min(times)
            rec.repeats = len(times)
            rec.peak_extra_bytes, rec.peak_extra_method, rec.tracemalloc_peak_bytes = (
                peak_extra(step, cfg.use_rss))
        except Skip as e:
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
        "versions": versions(("numpy", "numba", "torch", "jax", "optax", "array-api-compat")),
    }
    if nb.numba_available():
        import numba

        kernel = bound_kernel()
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
        use_rss=rss_hwm_available(),
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
