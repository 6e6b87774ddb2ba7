"""Deep runs (``python -m adamax_spec.conformance.evidence.deep``): counting, and resuming over sittings."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.evidence import deep
from adamax_spec.conformance.targets import OUR_BACKENDS, installed_targets

LABEL = "adamax_spec[numpy]"


def _run(out: Path, goal: int, *, resume: bool) -> dict:
    return deep.deep_run(LABEL, partial(OursTarget, "numpy"), trajectories=goal, seconds=600, out=out,
                         per_round=1, resume=resume)


def test_resume_continues_with_new_seeds_and_adds_up(tmp_path: Path) -> None:
    first = _run(tmp_path, 5, resume=False)
    assert first["status"] == "pass" and first["trajectories"] >= 5 and first["rounds"] >= 1
    again = _run(tmp_path, first["trajectories"] + 5, resume=True)
    assert again["status"] == "pass"
    assert again["rounds"] > first["rounds"]  # later rounds: seeds seed + rounds, not repeated
    assert again["trajectories"] >= first["trajectories"] + 5
    assert again["seconds"] >= first["seconds"]
    for prop, counts in first["per_property"].items():
        assert again["per_property"][prop]["examples"] >= counts["examples"]
    # without --resume the target starts again from round 0
    fresh = _run(tmp_path, 1, resume=False)
    assert fresh["rounds"] == 1


def test_summary_from_other_code_is_set_aside(tmp_path: Path) -> None:
    first = _run(tmp_path, 1, resume=False)
    path = tmp_path / "adamax_spec_numpy_.json"
    saved = json.loads(path.read_text())
    assert saved["code"] == deep.code_fingerprint(LABEL) and saved["rounds"] == first["rounds"]
    saved["code"] = "0" * 64  # as if the reference or the suite had changed since
    path.write_text(json.dumps(saved))
    again = _run(tmp_path, 1, resume=True)
    assert again["rounds"] == 1  # started again
    assert json.loads((tmp_path / "adamax_spec_numpy_.stale.json").read_text())["code"] == "0" * 64


def test_summarize_tables_current_summaries_only(tmp_path: Path) -> None:
    _run(tmp_path, 1, resume=False)
    table = deep.summarize(tmp_path)
    assert f"| {LABEL} | keras |" in table and "| yes |" in table.splitlines()[2]
    (tmp_path / "adamax_spec_numpy_.json").rename(tmp_path / "adamax_spec_numpy_.stale.json")
    assert len(deep.summarize(tmp_path).splitlines()) == 2  # header only


def test_fingerprint_covers_each_targets_own_adapter_only() -> None:
    ours, torch_optim = deep.code_fingerprint(LABEL), deep.code_fingerprint("torch.optim.Adamax")
    assert len({ours, torch_optim, deep.code_fingerprint("optax.adamax"),
                deep.code_fingerprint("tf_keras legacy Adamax")}) == 4
    # both Keras targets go through one adapter; an unknown label counts every adapter
    assert deep.code_fingerprint("tf_keras legacy Adamax") == deep.code_fingerprint("keras 3 Adamax [tensorflow]")
    assert deep.code_fingerprint("someone else's") not in (ours, torch_optim)


def test_each_backend_fingerprint_names_a_backend_file_set() -> None:
    fp = {b: deep.code_fingerprint(f"adamax_spec[{b}]") for b in OUR_BACKENDS}
    assert len(set(fp.values())) == len(fp)            # numpy, torch, jax... each its own files
    assert deep.code_fingerprint("adamax_spec[mystery]") not in fp.values()   # unknown: every file
    assert deep.our_backend_files("mystery") is None
    # the fast path registered for the library, and what it imports from backends/
    numpy, torch = (deep.our_backend_files(b) or frozenset() for b in ("numpy", "torch"))
    assert {"numpy_apply", "numpy_backend"} <= numpy and "torch_backend" not in numpy
    assert {"torch_backend", "numpy_apply"} <= torch


OURS_INSTALLED = [label[len("adamax_spec["):-1] for label, _ in installed_targets() if label.startswith("adamax_spec[")]


@pytest.mark.parametrize("backend", OURS_INSTALLED)
def test_our_targets_run_only_the_backend_files_their_fingerprint_covers(backend: str) -> None:
    """Every property on this backend (a few examples each) loads no module of ``backends/``
    outside ``our_backend_files(backend)``: a change anywhere else cannot change its verdicts."""
    code = ("import json, sys\n"
            "from adamax_spec import dispatch\n"
            "from adamax_spec.conformance.engine import run_property\n"
            "from adamax_spec.conformance.properties import PROPERTIES\n"
            "from adamax_spec.conformance.adapters.ours import OursTarget\n"
            "asked, fast_step = [], dispatch.fast_step\n"
            "dispatch.fast_step = lambda *a, **k: asked.append(1) or fast_step(*a, **k)\n"
            f"target = OursTarget({backend!r}, 'keras')\n"
            "for p in PROPERTIES:\n"
            "    run_property(p, target, 'keras', examples=3, seed=0)\n"
            "print(json.dumps([len(asked), [m.rsplit('.', 1)[1] for m in sys.modules\n"
            "                               if m.startswith('adamax_spec.backends.')]]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    asked, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert asked, "no step asked for a fast path: the check would prove nothing"
    allowed = deep.our_backend_files(backend) or frozenset()
    assert set(loaded) <= allowed, set(loaded) - allowed
