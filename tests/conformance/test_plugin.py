"""The pytest plugin runs the suite's properties as test items of the user's own session."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

STEPS = textwrap.dedent("""
    import numpy as np

    def good(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g))
        return w - (lr / (1 - beta_1 ** t)) * m / (u + epsilon), m, u

    def eps_inside(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g) + epsilon)
        return w - (lr / (1 - beta_1 ** t)) * m / u, m, u
""")


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "usersteps.py").write_text(STEPS)
    (tmp_path / "conftest.py").write_text("")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), *args], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          check=False)


def test_plugin_turns_properties_into_items_that_pass_for_a_correct_step(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "--adamax-target", "usersteps:good", "--adamax-examples", "3",
                "-k", "dense or sparse or nonfinite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert " passed" in r.stdout and "skipped" in r.stdout  # sparse: a raw function has none


def test_plugin_fails_the_item_with_the_finding(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "--adamax-target", "usersteps:eps_inside", "--adamax-examples", "3", "-k", "U and dense")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "adamax[U-dense]" in r.stdout and "epsilon placement" in r.stdout, r.stdout


def test_without_a_target_the_plugin_adds_nothing(tmp_path: Path) -> None:
    r = _pytest(tmp_path)
    assert r.returncode == 5 and "no tests ran" in r.stdout, r.stdout
