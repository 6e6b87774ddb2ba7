"""The main job: every installed implementation x every profile, one compliance matrix."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from .case import Target
from .report import to_json, to_markdown
from .runner import PROPERTIES, run_all

PROFILES = ("keras", "keras3", "torch", "optax")


def installed_targets() -> list[tuple[str, Any]]:
    """(label, factory(profile) -> Target) for everything installed here."""
    from .adapters.ours import OursTarget

    out: list[tuple[str, Any]] = []
    for b in ("numpy", "torch", "jax", "array_api_strict"):
        if importlib.util.find_spec(b) is not None:
            out.append((f"adamax_spec[{b}]", lambda p, b=b: OursTarget(b, p)))
    peers = [("torch.optim.Adamax", "torch", "torch.optim:Adamax"),
             ("optax.adamax", "optax", "optax:adamax"),
             ("tf_keras legacy Adamax", "tf_keras", "tf_keras.optimizers.legacy:Adamax"),
             ("keras 3 Adamax", "keras", "keras.optimizers:Adamax")]
    from .cli import load_target

    for label, mod, spec in peers:
        if importlib.util.find_spec(mod) is not None:
            out.append((label, lambda p, spec=spec: load_target(spec)))
    return out


def run_matrix(report_dir: Path, *, examples: int, seed: int) -> int:
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for label, make in installed_targets():
        for profile in PROFILES:
            try:
                target: Target = make(profile)
            except Exception as e:  # an installed peer that fails to load is reported, not fatal
                rows.append((label, profile, {p.id: f"error: {e}" for p in PROPERTIES}))
                continue
            print(f"[{time.perf_counter() - t0:6.0f}s] {label} x {profile} ...", flush=True)
            results = run_all(target, profile, examples=examples, seed=seed)
            meta = {"target": label, "profile": profile, "examples": examples, "seed": seed,
                    "seconds": round(sum(r.seconds for r in results), 2)}
            stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{label}-{profile}")
            (report_dir / f"{stem}.md").write_text(to_markdown(results, meta))
            (report_dir / f"{stem}.json").write_text(to_json(results, meta))
            rows.append((label, profile, {r.property: r.status for r in results}))
            print("    " + "  ".join(f"{r.property}:{r.status}" for r in results), flush=True)
    ids = [p.id for p in PROPERTIES]
    md = ["# Adamax compliance matrix", "",
          f"{examples} examples per property, seed {seed}. Cells: pass / FAIL / n/s (not supported).", "",
          "| implementation | profile | " + " | ".join(ids) + " |",
          "|---|---|" + "---|" * len(ids)]
    short = {"pass": "pass", "fail": "FAIL", "not supported": "n/s", "error": "ERROR", "xfail": "xfail"}
    for label, profile, st in rows:
        md.append(f"| {label} | {profile} | " + " | ".join(short.get(st.get(i, ""), st.get(i, "")) for i in ids) + " |")
    (report_dir / "index.md").write_text("\n".join(md) + "\n")
    table = [{"implementation": a, "profile": b, "results": c} for a, b, c in rows]
    (report_dir / "matrix.json").write_text(json.dumps(table, indent=2))
    print("\n".join(md[4:]))
    print(f"\nreport: {report_dir / 'index.md'} ({time.perf_counter() - t0:.0f} s)")
    sys.stdout.flush()
    return 0
