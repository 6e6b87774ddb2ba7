"""Deep runs: many generated trajectories per installed target, each under its own profile.

``python -m adamax_spec.conformance.evidence.deep [--trajectories N] [--targets ...] [--out DIR] [--resume]``
(``--summarize``: print a Markdown table of ``DIR``'s summaries instead.)

Runs the suite's properties (:data:`~adamax_spec.conformance.properties.PROPERTIES`, through
:func:`~adamax_spec.conformance.engine.run_property`) in rounds, each round with a fresh
hypothesis seed, until the target has run ``N`` trajectories (examples the property actually ran:
:attr:`Result.examples`; the argument-validation property V-args builds optimizers, not
trajectories, so it runs once and is not counted) or its time budget (``--seconds``) is spent.
Properties keep their relative weights (``Property.scale``: long runs and large step counters
get fewer examples).  Each target's summary is rewritten to ``OUT/<target>.json`` after every
property, so an interrupted run keeps what it did; trajectories/second is printed per target.
With ``--resume`` a target whose summary in ``OUT`` was made by the same code (a SHA-256 of the
sources that decide its verdicts, :func:`code_fingerprint`, and the versions of the libraries
involved) continues where
it stopped, with the next round's seed, so the goal can be reached over several sittings; a
summary made by other code is set aside (renamed ``*.stale.json``) and the target starts again.

Targets and profiles: every installed target (:func:`~adamax_spec.conformance.targets.installed_targets`),
each under its native profile (:func:`~adamax_spec.conformance.targets.native_profile`): our implementation
(every installed backend) and ``tf_keras`` legacy under ``keras``, ``torch.optim.Adamax`` under ``torch``,
``optax.adamax`` under ``optax``, Keras 3 under ``keras3``, registered targets under ``keras``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

from ..engine import run_property
from ..properties import PROPERTIES
from ..properties.validation import V_ARGS
from ..targets import (
    OUR_BACKENDS,
    STAMP_DISTS,
    installed_targets,
    native_profile,
    stem,
    versions,
)

#: properties whose examples are not trajectories (constructor arguments only)
NOT_TRAJECTORIES = frozenset({V_ARGS.id})


def our_backend_files(backend: str) -> frozenset[str] | None:
    """The modules of ``backends/`` that our target on ``backend`` (``adamax_spec[<backend>]``) can
    run: the fast path registered for that library (entry-point group ``adamax_spec.fast_paths``,
    as :mod:`adamax_spec.dispatch` finds it), the state files' array I/O (``adamax_spec.array_io``),
    and every module of ``backends/`` those import; ``None`` for a backend the suite does not know
    (then every module counts).  ``tests/conformance/test_deep.py`` checks that a run loads no others."""
    import ast
    import importlib.metadata
    import importlib.util

    if backend not in OUR_BACKENDS:
        return None
    package = "adamax_spec.backends"
    folder = _where(package)
    todo = [ep.value.partition(":")[0] for group in ("adamax_spec.fast_paths", "adamax_spec.array_io")
            for ep in importlib.metadata.entry_points(group=group)
            if group == "adamax_spec.array_io" or ep.name == backend]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        module = name.removeprefix(f"{package}.")
        if module == name or module in found or not (folder / f"{module}.py").exists():
            continue
        found.add(module)
        for node in ast.walk(ast.parse((folder / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
                todo += [base, *(f"{base}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
    return frozenset(found)


def _where(pkg: str) -> Path:
    """The folder of an installed package (the install maps top-level folders into ``adamax_spec``)."""
    import importlib

    return Path(next(iter(importlib.import_module(pkg).__path__)))


#: the suite's modules (besides ``properties/`` and the adapters) whose code decides a verdict, its
#: diagnosis or its reproducer
SUITE_FILES = ("property.py", "engine.py", "timeout.py", "diagnosis.py", "reproducer.py", "strategies.py",
               "case.py")

#: the adapter module each deep-run target goes through (label prefix -> file in ``adapters/``)
ADAPTER_OF = {"adamax_spec[": "ours.py", "torch.optim.": "torch_optim.py", "optax.": "optax_adapter.py",
              "tf_keras ": "keras_adapter.py", "keras 3": "keras_adapter.py"}


def code_fingerprint(label: str = "") -> str:
    """SHA-256 of the sources that decide a verdict: the reference, the suite's properties
    (``properties/``, :data:`SUITE_FILES`: the engine, diagnosis and reproducers, strategies and
    cases), the shared adapter code and the target's own adapter (every adapter
    for a label not in :data:`ADAPTER_OF`), and, for our own targets (``adamax_spec[...]``),
    the implementation and the backend modules that target runs (:func:`our_backend_files`).
    Reports, the CLI, the target table and the docs do not count."""
    here = _where("adamax_spec.conformance")
    own = next((f for prefix, f in ADAPTER_OF.items() if label.startswith(prefix)), None)
    adapters = [here / "adapters" / n for n in ("__init__.py", "_common.py", own)] if own else \
        [*(here / "adapters").glob("*.py")]
    files = [*_where("adamax_spec.reference").glob("*.py"), *adapters,
             *_where("adamax_spec.conformance.properties").glob("*.py"), *(here / n for n in SUITE_FILES)]
    if label.startswith("adamax_spec["):
        backends = _where("adamax_spec.backends")
        names = our_backend_files(label[len("adamax_spec["):].split("]")[0].split(",")[0])
        files += [*_where("adamax_spec").glob("*.py"),
                  *(backends.glob("*.py") if names is None else (backends / f"{n}.py" for n in names))]
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: (f.parent.name, f.name)):
        h.update(f"{f.parent.name}/{f.name}".encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _resumable(path: Path, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The saved summary at ``path`` if the same code and libraries made it, else ``None``
    (a summary made by other code is renamed ``*.stale.json``)."""
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and all(old.get(k) == v for k, v in stamp.items()):
        return old
    path.replace(path.with_suffix(".stale.json"))
    return None


def deep_run(label: str, make: Any, *, trajectories: int, seconds: float, out: Path, seed: int = 0,
             per_round: int = 50, resume: bool = False) -> dict[str, Any]:
    """Rounds of every property until ``trajectories`` ran or ``seconds`` passed; returns the summary.

    ``resume``: continue the summary already in ``out`` if the same code made it (see the module)."""
    profile = native_profile(label)
    stamp = {"target": label, "profile": profile, "code": code_fingerprint(label), "versions": versions(STAMP_DISTS),
             "seed": seed, "per_round": per_round}
    path = out / f"{stem(label)}.json"
    old = _resumable(path, stamp) if resume else None
    summary: dict[str, Any] = old or {**stamp, "goal": trajectories, "trajectories": 0, "seconds": 0.0,
                                      "rounds": 0, "per_property": {}, "failures": [], "status": "running"}
    summary["goal"] = trajectories
    before = float(summary["seconds"])

    def save() -> None:
        path.write_text(json.dumps(summary, indent=1, default=str))

    t0 = time.perf_counter()
    try:
        target = make(profile)
    except Exception as e:  # an installed target that fails to load is reported, not fatal
        summary["status"] = f"cannot load: {e}"
        save()
        return summary
    r = int(summary["rounds"])
    while summary["trajectories"] < trajectories and time.perf_counter() - t0 < seconds:
        left = trajectories - summary["trajectories"]
        for prop in PROPERTIES:
            if prop.id in NOT_TRAJECTORIES and r > 0:
                continue
            if time.perf_counter() - t0 >= seconds:
                break
            n = prop.scale(min(per_round, max(1, math.ceil(left / len(PROPERTIES)))))
            res = run_property(prop, target, profile, examples=n, seed=seed + r)
            pp = summary["per_property"].setdefault(prop.id, {"examples": 0, "seconds": 0.0, "status": {}})
            pp["examples"] += res.examples
            pp["seconds"] = round(pp["seconds"] + res.seconds, 2)
            pp["status"][res.status] = pp["status"].get(res.status, 0) + 1
            if prop.id not in NOT_TRAJECTORIES:
                summary["trajectories"] += res.examples
            if res.status in ("fail", "error"):
                summary["failures"].append({"property": prop.id, "round": r, "seed": seed + r, "status": res.status,
                                            "detail": res.detail, "reproducer": res.reproducer})
            summary["seconds"] = round(before + time.perf_counter() - t0, 1)
            save()
        r += 1
        summary["rounds"] = r
    summary["seconds"] = round(before + time.perf_counter() - t0, 1)
    summary["per_second"] = round(summary["trajectories"] / max(summary["seconds"], 1e-9), 2)
    summary["status"] = "fail" if summary["failures"] else "pass"
    save()
    return summary


def summarize(out: Path) -> str:
    """A Markdown table of the summaries in ``out`` (stale ones left out): per target its profile,
    trajectories against the goal, time, failures, and whether this checkout's code made it."""
    rows = ["| target | profile | trajectories | goal reached | seconds | per second | failures "
            "| made by this code |", "|---|---|---:|---|---:|---:|---:|---|"]
    for path in sorted(out.glob("*.json")):
        if path.name.endswith(".stale.json"):
            continue
        s = json.loads(path.read_text())
        n, goal, secs = int(s["trajectories"]), int(s["goal"]), float(s["seconds"])
        current = "yes" if s.get("code") == code_fingerprint(s["target"]) else "no (code changed since)"
        rows.append(f"| {s['target']} | {s['profile']} | {n:,} | {'yes' if n >= goal else 'no'} "
                    f"| {secs:,.0f} | {n / max(secs, 1e-9):.1f} | {len(s['failures'])} | {current} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trajectories", type=int, default=10_000, help="goal per target (default 10000)")
    p.add_argument("--targets", nargs="*", default=None,
                   help="labels (or substrings of labels) of installed targets; default: all")
    p.add_argument("--out", default="reports/deep")
    p.add_argument("--seconds", type=float, default=math.inf, help="time budget per target")
    p.add_argument("--budget", nargs="*", default=[], metavar="LABEL=N[:SECONDS]",
                   help="per-target goal (and time budget), overriding --trajectories/--seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-round", type=int, default=50, help="examples per property per round (at most)")
    p.add_argument("--resume", action="store_true",
                   help="continue each target's summary in --out where the same code made it")
    p.add_argument("--summarize", action="store_true",
                   help="print a Markdown table of the summaries in --out and run nothing")
    a = p.parse_args(argv)
    out = Path(a.out)
    if a.summarize:
        print(summarize(out), end="")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    budget: dict[str, tuple[int, float]] = {}
    for item in a.budget:
        key, _, val = item.rpartition("=")
        n, _, s = val.partition(":")
        budget[key] = (int(n), float(s) if s else a.seconds)
    targets = installed_targets()
    if a.targets:
        targets = [(lab, mk) for lab, mk in targets if any(t == lab or t in lab for t in a.targets)]
    bad = 0
    for label, make in targets:
        n, secs = next((v for k, v in budget.items() if k == label or k in label), (a.trajectories, a.seconds))
        print(f"{label} under {native_profile(label)}: goal {n} trajectories", flush=True)
        s = deep_run(label, make, trajectories=n, seconds=secs, out=out, seed=a.seed, per_round=a.per_round,
                     resume=a.resume)
        bad += s["status"] != "pass"
        print(f"  {s['status']}: {s['trajectories']} trajectories in {s['seconds']:.0f} s "
              f"({s.get('per_second', 0):.1f}/s)", flush=True)
        for f in s["failures"]:
            print(f"  {f['property']} (seed {f['seed']}): {f['detail'][:300]}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
