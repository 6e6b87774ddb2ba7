"""``adamax-bench`` runs every implementation it lists and records each one (timings are not
checked: a benchmark is not a test; that every step it times runs is)."""

from __future__ import annotations

import json

import pytest

from adamax_spec.conformance.evidence import bench


@pytest.mark.parametrize("case", ["many-small", "sparse-1pct"])
def test_every_implementation_runs_or_says_why_not(tmp_path, case, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--cases", case, "--repeats", "1", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    impls = [r["impl"] for r in records]
    assert {"bandwidth-bound", "adamax_spec[numpy]", "adamax_spec.Adamax"} <= set(impls)
    failed = [f"{r['impl']}: {r['note']}" for r in records if r["note"].startswith("failed")]
    assert failed == []
    for r in records:
        assert (r["median_ms"] is not None) != r["note"].startswith("skipped"), r
        assert r["ratio_to_bound"] is None or r["ratio_to_bound"] > 0
    assert "wrote" in capsys.readouterr().out
