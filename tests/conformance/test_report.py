"""The main job's pieces: matrix cells, the one-screen summary, index page and error plots."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from adamax_spec.conformance import matrix
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.runner import PROPERTIES
from adamax_spec.profiles import PROFILE_NAMES


def test_cells_reports_summary_and_index(tmp_path: Path) -> None:
    cells = matrix.run_cells([("adamax_spec[numpy]", partial(OursTarget, "numpy"))], tmp_path, examples=1, seed=0)
    assert [c.profile for c in cells] == list(PROFILE_NAMES)
    for c in cells:
        assert set(c.statuses) == {p.id for p in PROPERTIES}
        assert set(c.statuses.values()) <= {"pass", "not supported"}, c
        data = json.loads((tmp_path / c.report.replace(".md", ".json")).read_text())
        assert data["schema"] and data["profile"] == c.profile
    lines = matrix.summary(cells)
    assert len(lines) == 2 and max(map(len, lines)) <= 120
    assert lines[1].startswith("adamax_spec[numpy]") and "FAIL" not in lines[1]
    page = matrix.index_md(cells, 1, 0, 1.0, ["errors-own-profile.png"], {"numpy": "x"})
    assert "](adamax_spec_numpy_-keras.md)" in page and "![errors-own-profile.png]" in page
    assert page.count("\n| [adamax_spec[numpy]]") == len(PROFILE_NAMES)


def test_a_failing_cell_names_the_failing_properties() -> None:
    bad = matrix.Cell("x", "keras", {p.id: ("fail" if p.id == "U-dense" else "pass") for p in PROPERTIES},
                      first_failure="U-dense: step 1 ...")
    assert "FAIL U-dense" in matrix.summary([bad])[1]


def test_error_plots_are_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from adamax_spec.conformance.plots import draw_error_plots

    names = draw_error_plots(tmp_path, [("adamax_spec[numpy]", partial(OursTarget, "numpy"))])
    assert names == ["errors-own-profile.png", "errors-keras-profile.png"]
    for n in names:
        assert (tmp_path / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matrix_headline_keeps_the_cause() -> None:
    failure = "U-dense: step 1, w: expected 1.0, got 2.0 (9 x bound)\ndiagnosis: fits torch: epsilon placement"
    assert matrix._headline(failure) == "U-dense: diagnosis: fits torch: epsilon placement"
    assert matrix._headline("C-clip: target raised ValueError") == "C-clip: target raised ValueError"
