"""The main job's pieces: matrix cells, the one-screen summary, index page and error plots."""

from __future__ import annotations

import base64
import json
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from adamax_spec.conformance import matrix, report
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.properties import PROPERTIES
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
    bad = matrix.Cell("x", "keras", {p.id: ("fail" if p.id == "U-1" else "pass") for p in PROPERTIES},
                      first_failure="U-1: step 1 ...")
    assert "FAIL U-1" in matrix.summary([bad])[1]


def test_error_plots_are_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from adamax_spec.conformance.plots import draw_error_plots

    names = draw_error_plots(tmp_path, [("adamax_spec[numpy]", partial(OursTarget, "numpy"))])
    assert names == ["errors-own-profile.png", "errors-keras-profile.png"]
    for n in names:
        assert (tmp_path / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matrix_headline_keeps_the_cause() -> None:
    failure = "U-1: step 1, w: expected 1.0, got 2.0 (9 x bound)\ndiagnosis: fits torch: epsilon placement"
    assert matrix._headline(failure) == "U-1: diagnosis: fits torch: epsilon placement"
    assert matrix._headline("C-1: target raised ValueError") == "C-1: target raised ValueError"


# -- the HTML report, report formats, error plots for one target (issue 20) ----------------------


class _Tags(HTMLParser):
    """What the tests need of a page: every start tag with its attributes, the text of each <pre>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.pres: list[str] = []
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "pre":
            self._pre += 1
            self.pres.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre -= 1

    def handle_data(self, data: str) -> None:
        if self._pre:
            self.pres[-1] += data


def _run_records() -> tuple[list[report.Result], dict[str, object]]:
    failing = report.Result(
        "U-1", "dense steps match the reference within the error bound", "fail", 3, 0.5,
        "step 2, params[0][1], w: expected 1.0, got 2.0 (8.8e+30 x bound)\ndiagnosis: fits torch & <b>",
        reproducer="print('<script>alert(1)</script> & done')",
        verdict={"failures": [{"step": 2, "ratio": 8.8e30, "ulps": 3e7}]}, diagnosis="fits torch & <b>")
    results = [report.Result("T-1", "step counter", "pass", 5, 0.1), failing,
               report.Result("SP-1", "sparse rows", "not supported", 0, 0.0, "sparse: not supported")]
    steps = np.arange(1, 101)
    meta: dict[str, object] = {
        "target": "mine.step", "spec": "mine:step", "profile": "keras", "examples": 5, "seed": 0,
        "seconds": 1.0, "complete": True, "versions": {"numpy": "x"},
        "errors": {"label": "mine.step", "profile": "keras", "case": "representative",
                   "ratio": list(0.5 / steps), "ulp": list(np.sqrt(steps))}}
    return results, meta


def test_html_report_is_one_self_contained_page(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results, meta = _run_records()
    path = tmp_path / "out" / "run.html"
    report.write_reports([str(path)], results, meta)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and not text.lstrip().startswith("{")  # not JSON
    page = _Tags()
    page.feed(text)
    page.close()
    assert "script" not in {t for t, _ in page.tags}  # the reproducer's <script> is text, not a tag
    for prop in ("U-1", "T-1", "SP-1"):
        assert ("h3", {"id": prop}) in page.tags or prop in text
    assert ("h3", {"id": "U-1"}) in page.tags
    assert results[1].reproducer in page.pres  # escaped in the source, unchanged for the reader
    assert "fits torch & <b>" in page.pres  # the diagnosis, apart from the detail
    assert not any("diagnosis:" in p for p in page.pres)
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == 1
    src = imgs[0]["src"] or ""
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # self-contained: nothing loaded from elsewhere
    assert not [a for t, a in page.tags if t in ("link", "script") or (t == "img" and a is not imgs[0])]
    for key in ("mine:step", "keras", "numpy"):
        assert key in text
    assert "DOES NOT CONFORM" in text


def test_html_without_plots_says_why() -> None:
    results, meta = _run_records()
    del meta["errors"]
    results[1].verdict = {}
    text = report.to_html(results, meta)
    assert "<img" not in text and "No error plots" in text


def test_unknown_report_suffix_is_an_error_before_anything_is_written(tmp_path: Path) -> None:
    results, meta = _run_records()
    good, bad = tmp_path / "r.json", tmp_path / "r.txt"
    with pytest.raises(ValueError, match=r"r\.txt.*\.txt.*known suffixes: \.json, \.xml, \.md, \.html"):
        report.write_reports([str(good), str(bad)], results, meta)
    assert not good.exists() and not bad.exists()
    with pytest.raises(ValueError, match="no suffix"):
        report.check_report_paths([tmp_path / "report"])
    assert report.report_format("x.HTML") is report.to_html and report.report_format("x.md") is report.to_markdown


def _ylim(ax: object) -> tuple[float, float]:
    lo, hi = ax.get_ylim()  # type: ignore[attr-defined]
    return float(lo), float(hi)


def _texts(fig: object) -> str:
    texts = [t.get_text() for t in fig.texts]  # type: ignore[attr-defined]
    for ax in fig.axes:  # type: ignore[attr-defined]
        texts += [t.get_text() for t in ax.texts]
    return "\n".join(texts)


def test_a_spike_does_not_flatten_the_other_lines() -> None:
    pytest.importorskip("matplotlib")
    from adamax_spec.conformance import plots

    rng = np.random.default_rng(1)
    lines = [plots.Line(f"ok{i}", 10 ** rng.uniform(-3, -0.5, 100), 10 ** rng.uniform(-1, 3.4, 100)) for i in range(4)]
    spike_r, spike_u = np.full(100, 0.1), np.full(100, 2.0)
    spike_r[40], spike_u[40] = 1e31, 1e38
    fig = plots.error_figure([*lines, plots.Line("peer", spike_r, spike_u)], "spike")
    (lo1, hi1), (_, hi2) = _ylim(fig.axes[0]), _ylim(fig.axes[1])
    ok_r = max(float(np.max(ln.ratio)) for ln in lines)
    ok_u = max(float(np.max(ln.ulp)) for ln in lines)
    assert ok_r <= hi1 <= 1e4 * ok_r and lo1 <= 1e-3  # the bound line and every other point on scale
    assert ok_u <= hi2 <= 1e5 * ok_u
    notes = _texts(fig)
    assert notes.count("1 point off scale") == 2 and "1e+31" in notes and "1e+38" in notes
    assert "difference of near-equal terms" in notes and "criterion is the bound" in notes
    # without the spike: no off-scale note, and the scale hugs the data
    calm = plots.error_figure(lines, "calm")
    assert "off scale" not in _texts(calm) and _ylim(calm.axes[0])[1] <= 10


def test_log_scale_ignores_a_few_huge_values_but_not_a_whole_implementation() -> None:
    from adamax_spec.conformance.plots import log_scale

    typical = [np.full(100, 0.5)] * 4
    assert log_scale([*typical, [1e31]], anchor=1.0, decades=3, floor=1e-6).top == 10.0  # the bound shows
    assert log_scale([*typical, [50.0, 1e31]], anchor=1.0, decades=3, floor=1e-6).top == 100.0
    high = log_scale([*typical[:3], np.full(100, 5e4)], anchor=1.0, decades=3, floor=1e-6)
    assert high.top >= 5e4  # a quarter of the points: that is the data, not a spike
    shown, off = high.place([np.nan, np.inf, 0.0, 1.0])
    assert off.tolist() == [True, True, False, False] and shown[2] == high.bottom
    assert log_scale([], anchor=1.0, decades=3, floor=1e-6).top == 10.0


def test_matrix_plots_go_through_the_same_scales(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from adamax_spec.conformance import plots

    def fake(target: object, case: object, profile: str) -> tuple[np.ndarray, np.ndarray]:
        r = np.full(100, 0.2)
        if getattr(target, "backend", "") == "torch":
            r[10] = 1e31
        return r, np.full(100, 3.0)

    figures: list[object] = []
    real = plots.error_figure
    monkeypatch.setattr(plots, "step_errors", fake)
    monkeypatch.setattr(plots, "error_figure", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    targets = [("a", partial(OursTarget, "numpy")), ("b", lambda p: OursTarget("numpy", p))]
    targets.append(("c", lambda p: type("T", (), {"backend": "torch"})()))
    assert plots.draw_error_plots(tmp_path, targets) == ["errors-own-profile.png", "errors-keras-profile.png"]
    assert len(figures) == 2
    for fig in figures:
        assert _ylim(fig.axes[0])[1] <= 10 and "1 point off scale" in _texts(fig)  # type: ignore[attr-defined]


def test_plots_for_one_target(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from adamax_spec.conformance import plots

    series = plots.error_series(OursTarget("numpy", "keras"), "keras")
    assert series is not None and len(series["ratio"]) == len(series["ulp"]) == 100
    assert max(series["ratio"]) <= 1.0  # ours conforms on the representative trajectory
    json.dumps(series)  # a record every report format can carry
    results, meta = _run_records()
    meta["errors"] = series
    paths = plots.write_target_plots(results, meta, tmp_path / "plots")
    assert [p.name for p in paths] == ["mine.step-keras-errors.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.write_target_plots([], {"target": "x", "profile": "keras"}, tmp_path / "none") == []


def test_html_and_junit_count_an_xpass_only_under_strict_xfails() -> None:
    results = [report.Result("U-1", "dense", "xpass", 1, 0.1, "listed in the xfails file but passed"),
               report.Result("T-1", "counter", "xfail", 1, 0.1, "step 1: ...")]
    meta = {"target": "x", "profile": "keras", "complete": True}
    assert "CONFORMS: 1 xpass, 1 xfail" in report.to_html(results, meta)
    assert "DOES NOT CONFORM" in report.to_html(results, {**meta, "strict_xfails": True})
    assert 'failures="0"' in report.to_junit(results, meta)
    strict_junit = report.to_junit(results, {**meta, "strict_xfails": True})
    assert 'failures="1"' in strict_junit and strict_junit.count("<failure ") == 1
    partial_run = report.to_html(results[:1], {**meta, "complete": False})
    assert "incomplete run" in partial_run


def test_matrix_reproducers_load_the_target_again(tmp_path: Path) -> None:
    """A matrix cell's reproducer names the target as its row was loaded (the target table's
    TARGET string), so it runs as printed; torch.optim.Adamax fails the keras profile (epsilon
    inside the max), so its keras cell has one."""
    pytest.importorskip("torch")
    torch_row = next(t for t in matrix.known_targets() if t.name == "torch.optim.Adamax")
    cells = matrix.run_cells([(torch_row.label(), torch_row.make)], tmp_path, examples=2, seed=0)
    keras = next(c for c in cells if c.profile == "keras")
    assert "fail" in keras.statuses.values(), keras
    text = (tmp_path / keras.report).read_text()
    assert f"replay({torch_row.spec!r}, " in text and "TARGET = None" not in text
