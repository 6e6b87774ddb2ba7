"""The pytest plugin runs the suite's properties as test items of the user's own session."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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
                "--adamax-only", "U-1", "--adamax-only", "SP-1", "--adamax-only", "N-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 1 skipped" in r.stdout  # sparse: a raw function has none


def test_plugin_fails_the_item_with_the_finding(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "--adamax-target", "usersteps:eps_inside", "--adamax-examples", "3", "-k", "U-1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "adamax[U-1]" in r.stdout and "epsilon placement" in r.stdout, r.stdout


def test_without_a_target_the_plugin_adds_nothing(tmp_path: Path) -> None:
    r = _pytest(tmp_path)
    assert r.returncode == 5 and "no tests ran" in r.stdout, r.stdout


# ---------------------------------------------------------------------------------------------
# The same front end as the CLI (issue #20): options, checks, scaling, xfails, one usage error


def test_plugin_options_are_the_cli_run_options() -> None:
    """Both front ends are built from one table: the same names, help texts, defaults, choices."""
    from adamax_spec.conformance import cli, plugin

    added: dict[str, dict[str, object]] = {}

    class Group:
        def addoption(self, name: str, **kw: object) -> None:
            added[name] = kw

    class Parser:
        def getgroup(self, *args: object, **kw: object) -> Group:
            return Group()

    plugin.pytest_addoption(Parser())
    cli_actions = {a.dest: a for a in cli.parser()._actions}
    cli_modes = {"help", "identify", "matrix", "report_dir", "version"}  # what only the CLI does
    names = {n.removeprefix("--adamax-").replace("-", "_"): kw for n, kw in added.items()}
    assert all(n.startswith("--adamax-") for n in added)
    assert set(names) == set(cli_actions) - cli_modes
    for dest, kw in names.items():
        a = cli_actions[dest]
        assert kw["help"] == a.help and kw["help"], dest
        assert (kw["default"], kw.get("choices"), kw.get("type")) == (a.default, a.choices, a.type), dest


def test_bad_profile_is_one_usage_error_before_anything_runs(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    r = _pytest(tmp_path, "--adamax-target", "usersteps:good", "--adamax-profile", "Keras")
    assert time.perf_counter() - t0 < 60
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage error
    assert "'Keras'" in r.stderr and "keras3" in r.stderr and "torch" in r.stderr, r.stderr
    assert "passed" not in r.stdout and "failed" not in r.stdout


@pytest.mark.parametrize("args,word", [
    (["--adamax-examples", "0"], "--adamax-examples must be >= 1"),
    (["--adamax-only", "NOPE"], "'NOPE'"),
    (["--adamax-require", "teleport"], "teleport"),
    (["--adamax-option", "lr"], "--adamax-option 'lr'"),
])
def test_bad_option_values_are_the_cli_checks(tmp_path: Path, args: list[str], word: str) -> None:
    r = _pytest(tmp_path, "--adamax-target", "usersteps:good", *args)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ERROR: adamax-conformance:")]
    assert r.returncode == 4 and len(errors) == 1 and word in errors[0], r.stdout + r.stderr


def test_unloadable_target_is_one_usage_error_not_a_failure_per_property(tmp_path: Path) -> None:
    r = _pytest(tmp_path, "--adamax-target", "no_such_module_xyz:Adamax")
    assert r.returncode == 4, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert out.count("cannot load") == 1 and "no_such_module_xyz" in out, out
    assert "failed" not in r.stdout and "adamax[" not in r.stdout


def test_plugin_scales_examples_per_property_as_the_cli_does(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Same target, options and seed: the same examples per property (U-3's long runs: 4 // 10 -> 2),
    the same verdicts; and --adamax-report / --adamax-plots write the CLI's report and plot."""
    from adamax_spec.conformance import cli

    opts = ["--only", "U-1", "--only", "U-3", "--examples", "4", "--seed", "7"]
    assert cli.main(["adamax_spec", *opts, "--report", str(tmp_path / "cli.json")]) == 0
    capsys.readouterr()
    r = _pytest(tmp_path, "--adamax-target", "adamax_spec", *(a.replace("--", "--adamax-") for a in opts),
                "--adamax-report", str(tmp_path / "plugin.json"), "--adamax-plots", "plots")
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr
    assert len(list((tmp_path / "plots").glob("*.png"))) == 1 and "adamax-conformance: plot: " in r.stdout

    def runs(name: str) -> dict[str, tuple[str, int]]:
        data = json.loads((tmp_path / name).read_text())
        return {x["property"]: (x["status"], x["examples"]) for x in data["results"]}

    assert runs("plugin.json") == runs("cli.json") == {"U-1": ("pass", 4), "U-3": ("pass", 2)}


def test_plugin_reports_xfail_and_xpass_and_strict_xfails_fails(tmp_path: Path) -> None:
    (tmp_path / "xfails.txt").write_text("U-1  # epsilon inside the max\nD-1\n")
    args = ["--adamax-target", "usersteps:eps_inside", "--adamax-examples", "3", "--adamax-only", "U-1",
            "--adamax-only", "D-1", "--adamax-xfails", "xfails.txt"]
    r = _pytest(tmp_path, *args)
    assert r.returncode == 0 and "1 xfailed, 1 xpassed" in r.stdout, r.stdout + r.stderr
    r = _pytest(tmp_path, *args, "--adamax-strict-xfails")
    assert r.returncode == 1 and "1 failed, 1 xfailed" in r.stdout and "XPASS(strict)" in r.stdout, r.stdout
    (tmp_path / "xfails.txt").write_text("U-1\nU-dnese\n")
    r = _pytest(tmp_path, *args)
    assert r.returncode == 4 and "'U-dnese'" in r.stderr and "known:" in r.stderr, r.stdout + r.stderr


def test_plugin_require_turns_not_supported_into_a_failure(tmp_path: Path) -> None:
    args = ["--adamax-target", "usersteps:good", "--adamax-examples", "2", "--adamax-only", "SP-1"]
    r = _pytest(tmp_path, *args)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout  # a raw function has no sparse path
    r = _pytest(tmp_path, *args, "--adamax-require", "sparse")
    assert r.returncode == 1 and "1 failed" in r.stdout and "sparse" in r.stdout, r.stdout


def test_plugin_option_reaches_the_target(tmp_path: Path) -> None:
    """``--adamax-option scale=...``: a keyword argument of every call of the step function."""
    (tmp_path / "scaled.py").write_text(textwrap.dedent('''
        import numpy as np

        def step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon, scale):
            m = beta_1 * m + (1 - beta_1) * g
            u = np.maximum(beta_2 * u, np.abs(g))
            return w - scale * (lr / (1 - beta_1 ** t)) * m / (u + epsilon), m, u
    '''))
    args = ["--adamax-target", "scaled:step", "--adamax-examples", "2", "--adamax-only", "U-1"]
    r = _pytest(tmp_path, *args, "--adamax-option", "scale=1.0")
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
    r = _pytest(tmp_path, *args, "--adamax-option", "scale=2.0")
    assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout + r.stderr


def test_plugin_reports_one_root_cause_once_and_writes_its_reproducer(tmp_path: Path) -> None:
    """Weights returned in float64: D-1's item fails, U-1's is skipped pointing there, as in the
    CLI (engine.Causes); ``--adamax-reproducer`` writes the script the CLI writes."""
    (tmp_path / "upcast.py").write_text(STEPS + textwrap.dedent("""
        def upcasts(w, g, m, u, **kw):
            w, m, u = good(w, g, m, u, **kw)
            return w.astype(np.float64), m, u
    """))
    script = tmp_path / "repro.py"
    r = _pytest(tmp_path, "--adamax-target", "upcast:upcasts", "--adamax-examples", "3", "--adamax-only", "U-1",
                "--adamax-only", "D-1", "--adamax-reproducer", str(script), "-rs")
    assert r.returncode == 1 and "1 failed, 1 skipped" in r.stdout, r.stdout + r.stderr
    assert "same root cause as D-1 (see there)" in r.stdout, r.stdout
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "FAIL D-1" in done.stdout, done.stdout + done.stderr
