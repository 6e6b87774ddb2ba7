"""The main job: every installed implementation x every profile, one compliance report.

``adamax-conformance --matrix`` (``make report``) runs the suite for our
implementation on every installed backend and for every installed peer
(torch.optim.Adamax, optax.adamax, tf_keras legacy, Keras 3 on each of its
installed backends) and every registered target (:mod:`~adamax_spec.conformance.targets`)
against each profile, then writes ``REPORT_DIR/index.md``
(the matrix, links to per-cell reports with reproducers, error plots, versions)
and ``matrix.json``.  Keras 3 picks its backend once per process, so Keras 3
on a second or third backend runs in a child process of this module.

Exit code: 0 when our implementation passes every profile on every backend
(peers failing a foreign profile is a finding, not an error), else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from adamax_spec.profiles import PROFILE_NAMES

from .case import Target
from .engine import run_all
from .properties import PROPERTIES
from .report import to_json, to_markdown
from .reproducer import Source
from .targets import KERAS3, STAMP_DISTS, installed_targets, keras_backend, known_targets, stem, versions
from .xfails import fails_run

KERAS_BACKENDS = ("tensorflow", "jax", "torch")
SHORT = {"pass": "pass", "fail": "FAIL", "not supported": "n/s", "error": "ERROR", "xfail": "xfail",
         "skipped": "same"}


@dataclass
class Cell:
    """One implementation x profile: status per property, where its report is."""

    label: str
    profile: str
    statuses: dict[str, str]
    seconds: float = 0.0
    first_failure: str = ""
    report: str = ""


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 to ``path`` (appended) for the block: what a framework's C++ or absl
    logging writes there (TensorFlow's oneDNN notice, "failed call to cuInit"), whatever the
    environment's log levels, lands in the target's log instead of between the progress lines,
    which go to standard output."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def run_cells(targets: list[tuple[str, Callable[[str], Target]]], report_dir: Path, *, examples: int,
              seed: int, done: int = 0, total: int | None = None, t0: float | None = None) -> list[Cell]:
    """Run every target x profile, writing one Markdown and one JSON report per cell; what the
    target writes to standard error goes to ``REPORT_DIR/<target>.log``."""
    t0 = time.perf_counter() if t0 is None else t0
    total = total or len(targets) * len(PROFILE_NAMES)
    cells = []
    known = {t.label(): t for t in known_targets()}  # how each target loads, for its reproducers
    for label, make in targets:
        for profile in PROFILE_NAMES:
            done += 1
            head = f"[{done:2}/{total} {time.perf_counter() - t0:5.0f}s] {label} x {profile}"
            log = report_dir / f"{stem(label)}.log"
            try:
                with stderr_to(log):
                    target = make(profile)
            except Exception as e:  # an installed peer that fails to load is reported, not fatal
                cells.append(Cell(label, profile, {p.id: "error" for p in PROPERTIES}, first_failure=str(e)))
                print(f"{head} cannot load: {e}", flush=True)
                continue
            print(head, end=" ", flush=True)
            with stderr_to(log):
                kt = known.get(label)
                source = Source(kt.spec, profile, kt.backend) if kt else None
                results = run_all(target, profile, examples=examples, seed=seed, source=source,
                                  progress=lambda r: print(SHORT.get(r.status, r.status), end=" ", flush=True))
            seconds = round(sum(r.seconds for r in results), 2)
            meta = {"target": label, "profile": profile, "examples": examples, "seed": seed,
                    "seconds": seconds, "versions": versions(STAMP_DISTS, platform=True)}
            name = stem(label, profile)
            (report_dir / f"{name}.md").write_text(to_markdown(results, meta))
            (report_dir / f"{name}.json").write_text(to_json(results, meta))
            bad = [r for r in results if fails_run(r.status)]
            first = f"{bad[0].property}: {bad[0].detail}" if bad else ""
            cells.append(Cell(label, profile, {r.property: r.status for r in results}, seconds, first, f"{name}.md"))
            print(f"({seconds:.0f}s)", flush=True)
    return cells


def _start_child_keras(backend: str, report_dir: Path, examples: int, seed: int) -> subprocess.Popen[bytes]:
    """Keras 3 on another backend, in a child process (Keras fixes its backend at import) that
    runs while this process works through the other cells; its output goes to a log file."""
    part = report_dir / f"cells-keras-{backend}.json"
    part.unlink(missing_ok=True)
    env = dict(os.environ, KERAS_BACKEND=backend)
    cmd = [sys.executable, "-m", "adamax_spec.conformance.matrix", "--keras-only", "--report-dir",
           str(report_dir), "--examples", str(examples), "--seed", str(seed), "--cells", str(part)]
    with open(report_dir / f"keras-{backend}.log", "wb") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish_child_keras(backend: str, proc: subprocess.Popen[bytes], report_dir: Path) -> list[Cell]:
    code = proc.wait()
    part = report_dir / f"cells-keras-{backend}.json"
    if code != 0 or not part.exists():
        label = KERAS3.label(backend)
        why = f"child process exited {code}; see keras-{backend}.log"
        return [Cell(label, p, {q.id: "error" for q in PROPERTIES}, first_failure=why) for p in PROFILE_NAMES]
    cells = [Cell(**c) for c in json.loads(part.read_text())]
    part.unlink()
    return cells


def summary(cells: list[Cell]) -> list[str]:
    """One line per implementation, one column per profile: fits on one screen."""
    labels = list(dict.fromkeys(c.label for c in cells))
    by = {(c.label, c.profile): c for c in cells}
    width = max(len(lab) for lab in ["implementation", *labels]) + 2  # the header never runs into a column
    lines = ["implementation".ljust(width) + "".join(p.ljust(22) for p in PROFILE_NAMES)]
    for lab in labels:
        row = lab.ljust(width)
        for p in PROFILE_NAMES:
            c = by.get((lab, p))
            row += _cell_text(c).ljust(22) if c else "-".ljust(22)
        lines.append(row.rstrip())
    return lines


def _cell_text(c: Cell) -> str:
    st = c.statuses.values()
    bad = [k for k, v in c.statuses.items() if fails_run(v)]
    if bad:
        return "FAIL " + ",".join(bad) if len(",".join(bad)) <= 17 else f"FAIL {len(bad)} properties"
    ok = sum(v == "pass" for v in st)
    ns = sum(v == "not supported" for v in st)
    return f"pass {ok}" + (f" (n/s {ns})" if ns else "")


def _headline(failure: str) -> str:
    """The first failure for the matrix: its property and diagnosis (the cause) when there is one."""
    prop, _, detail = failure.partition(": ")
    diagnosis = next((ln for ln in detail.splitlines() if ln.startswith("diagnosis:")), "")
    text = f"{prop}: {diagnosis}" if diagnosis else failure.replace("\n", " ")
    return text if len(text) <= 200 else text[:199] + "…"


def index_md(cells: list[Cell], examples: int, seed: int, seconds: float, plots: list[str],
             versions: dict[str, str]) -> str:
    ids = [p.id for p in PROPERTIES]
    md = ["# Adamax compliance matrix", "",
          f"{examples} examples per property (long-run properties fewer), seed {seed}, {seconds:.0f} s. "
          "Cells: pass / FAIL / n/s (not supported by the target) / same (failed on a root cause another "
          "property of the row reports: a wrong dtype, an exception...) / ERROR. Click an implementation for its "
          "report with reproducers. Property ids are the clauses of `docs/spec.md`.", "",
          "| implementation | profile | " + " | ".join(ids) + " | first failure |",
          "|---|---|" + "---|" * (len(ids) + 1)]
    for c in cells:
        name = f"[{c.label}]({c.report})" if c.report else c.label
        first = _headline(c.first_failure).replace("|", "\\|")
        md.append(f"| {name} | {c.profile} | "
                  + " | ".join(SHORT.get(c.statuses.get(i, ""), c.statuses.get(i, "")) for i in ids)
                  + f" | {first} |")
    if plots:
        md += ["", "## Error against step, representative trajectories", ""]
        md += [f"![{p}]({p})" for p in plots]
    md += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    return "\n".join(md) + "\n"


def run_matrix(report_dir: Path, *, examples: int, seed: int) -> int:
    report_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    targets = installed_targets()
    others = [b for b in KERAS_BACKENDS if b != keras_backend() and importlib.util.find_spec(b) is not None]
    others = others if KERAS3.installed() else []
    children = {b: _start_child_keras(b, report_dir, examples, seed) for b in others}
    if children:
        print(f"(Keras 3 on {', '.join(children)}: child processes, running alongside)", flush=True)
    cells = run_cells(targets, report_dir, examples=examples, seed=seed,
                      total=len(targets) * len(PROFILE_NAMES), t0=t0)
    for b, proc in children.items():
        print(f"(waiting for Keras 3 on {b})", flush=True)
        cells += _finish_child_keras(b, proc, report_dir)
    plots: list[str] = []
    try:
        from .plots import draw_error_plots

        plots = draw_error_plots(report_dir, targets)
    except ImportError as e:
        print(f"(no plots: {e})")
    seconds = time.perf_counter() - t0
    stamp = versions(STAMP_DISTS, platform=True)
    (report_dir / "index.md").write_text(index_md(cells, examples, seed, seconds, plots, stamp))
    (report_dir / "matrix.json").write_text(json.dumps(
        {"examples": examples, "seed": seed, "versions": stamp, "cells": [asdict(c) for c in cells]}, indent=2))
    print()
    print("\n".join(summary(cells)))
    print(f"\nreport: {report_dir / 'index.md'} ({seconds:.0f} s)")
    ours_bad = [c for c in cells if c.label.startswith("adamax_spec[") and c.first_failure]
    return 1 if ours_bad else 0


def main(argv: list[str] | None = None) -> int:
    """Child-process entry for Keras 3 on one backend (``--keras-only``)."""
    ap = argparse.ArgumentParser(prog="python -m adamax_spec.conformance.matrix")
    ap.add_argument("--keras-only", action="store_true")
    ap.add_argument("--report-dir", default="reports")
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cells", help="write the cells as JSON here (child mode)")
    args = ap.parse_args(argv)
    report_dir = Path(args.report_dir)
    if not args.keras_only:
        return run_matrix(report_dir, examples=args.examples, seed=args.seed)
    report_dir.mkdir(parents=True, exist_ok=True)
    cells = run_cells(installed_targets(keras_only=True), report_dir, examples=args.examples, seed=args.seed)
    Path(args.cells).write_text(json.dumps([asdict(c) for c in cells]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["Cell", "run_cells", "run_matrix", "summary"]
