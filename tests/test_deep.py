"""Deep runs (``python -m adamax_spec.conformance.deep``): counting, and resuming over sittings."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from adamax_spec.conformance import deep
from adamax_spec.conformance.adapters.ours import OursTarget

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
