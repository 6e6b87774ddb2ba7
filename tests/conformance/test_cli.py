"""The ``adamax-conformance`` CLI against the real installed libraries, run in-process.

Each run is small (``--examples``, ``--only``) so the file stays fast; the default
run's timing per target is measured by ``make report``, not asserted here.
Hand-written targets (buggy, crashing, hanging) live in a module written to a
temporary directory, imported by the CLI as any user module would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from adamax_spec.conformance import cli

pytestmark = pytest.mark.peers

USER_MODULE = '''
import time
import numpy as np


def good(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """Keras 2.9 Adamax, written out plainly with every hyperparameter rounded to the weight dtype."""
    dt = w.dtype.type
    b1, b2, eps, lr = dt(beta_1), dt(beta_2), dt(epsilon), dt(lr)
    m = m + (g - m) * (dt(1) - b1)
    u = np.maximum(b2 * u, np.abs(g))
    return w - lr / (dt(1) - b1 ** dt(t)) * (m / (u + eps)), m, u


def adam_bias(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """A realistic bug: Adam's bias correction copied into Adamax (sqrt(1 - b2**t) in the step)."""
    dt = w.dtype.type
    b1, b2, eps, lr = dt(beta_1), dt(beta_2), dt(epsilon), dt(lr)
    m = m + (g - m) * (dt(1) - b1)
    u = np.maximum(b2 * u, np.abs(g))
    step = lr * np.sqrt(dt(1) - b2 ** dt(t)) / (dt(1) - b1 ** dt(t))
    return w - step * (m / (u + eps)), m, u


def eps_in_max(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """Another one: epsilon moved inside the max (torch's form) under a Keras profile."""
    dt = w.dtype.type
    b1, b2, eps, lr = dt(beta_1), dt(beta_2), dt(epsilon), dt(lr)
    m = m + (g - m) * (dt(1) - b1)
    u = np.maximum(b2 * u, np.abs(g) + eps)
    return w - lr / (dt(1) - b1 ** dt(t)) * (m / u), m, u


def sgd(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """Not Adamax at all: fits no known variant."""
    return w - w.dtype.type(lr) * g, m, u


def raises(w, g, m, u, **kw):
    raise RuntimeError("kernel launch failed")


def hangs(w, g, m, u, **kw):
    time.sleep(3)
    return good(w, g, m, u, **kw)


def wrong_shape(w, g, m, u, **kw):
    w, m, u = good(w, g, m, u, **kw)
    return np.append(w, 0).astype(w.dtype), m, u


def mutates(w, g, m, u, **kw):
    out = good(w, g, m, u, **kw)
    g *= 0
    return out


def no_momentum_scale(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """m accumulates g without the (1 - b1) factor: breaks |m/u| <= (1-b1)/(1-b1/b2)."""
    dt = w.dtype.type
    b1, b2, eps, lr = dt(beta_1), dt(beta_2), dt(epsilon), dt(lr)
    m = b1 * m + g
    u = np.maximum(b2 * u, np.abs(g))
    return w - lr / (dt(1) - b1 ** dt(t)) * (m / (u + eps)), m, u


def nan_to_zero(w, g, m, u, **kw):
    """Hides NaN gradients: a NaN must never become a number in w."""
    return good(w, np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0), m, u, **kw)


def upcasts(w, g, m, u, **kw):
    w, m, u = good(w, g, m, u, **kw)
    return w.astype(np.float64), m, u


def interrupted(w, g, m, u, **kw):
    if w.dtype == np.float16:
        raise KeyboardInterrupt
    return good(w, g, m, u, **kw)


def counter_stuck(w, g, m, u, *, t, **kw):
    """A float16 step counter: t + 1 counted in float16 stops at 2048 (2048 + 1 rounds to 2048)."""
    return good(w, g, m, u, t=min(t, 2048), **kw)


def no_decay(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    """u is never decayed: max(u, |g|) for max(b2*u, |g|)."""
    dt = w.dtype.type
    b1, eps, lr = dt(beta_1), dt(epsilon), dt(lr)
    m = m + (g - m) * (dt(1) - b1)
    u = np.maximum(u, np.abs(g))
    return w - lr / (dt(1) - b1 ** dt(t)) * (m / (u + eps)), m, u


def raises_at_3(w, g, m, u, *, t, **kw):
    if t >= 3:
        raise RuntimeError("kernel launch failed")
    return good(w, g, m, u, t=t, **kw)
'''


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of an importable module holding hand-written step functions."""
    name = f"user_adamax_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return name


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _need(module: str) -> None:
    pytest.importorskip(module)


# ---------------------------------------------------------------------------------------------
# The peers: pass their own profile, fail the others with the cause named.


def test_torch_fails_keras_profile_on_epsilon_placement(capsys: pytest.CaptureFixture[str]) -> None:
    _need("torch")
    code, out, _ = run_cli(capsys, "torch.optim:Adamax", "--profile", "keras", "--only", "U-1",
                           "--examples", "10")
    assert code == 1
    assert "epsilon placement" in out and "torch" in out.split("diagnosis:")[1]


def test_tf_keras_rejected_under_torch_profile(capsys: pytest.CaptureFixture[str]) -> None:
    _need("tf_keras")
    code, out, _ = run_cli(capsys, "tf_keras.optimizers.legacy:Adamax", "--profile", "torch",
                           "--only", "U-1", "--only", "V-args", "--examples", "10")
    assert code == 1
    assert "epsilon placement" in out
    assert "FAIL           V-args" in out  # torch's validation (lr < 0 ...) is missing


@pytest.mark.parametrize("spec,profile", [
    ("torch.optim:Adamax", "torch"),
    ("optax:adamax", "optax"),
    ("tf_keras.optimizers.legacy:Adamax", "keras"),
])
def test_peer_passes_its_own_profile(spec: str, profile: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _need(spec.split(".")[0].split(":")[0])
    report = tmp_path / "r.json"
    code, out, _ = run_cli(capsys, spec, "--profile", profile, "--examples", "3", "--report", str(report))
    data = json.loads(report.read_text())
    bad = {r["property"]: r["detail"] for r in data["results"] if r["status"] not in ("pass", "not supported")}
    assert code == 0 and not bad, out


def test_keras3_fails_keras_profile_on_sparse_laziness(capsys: pytest.CaptureFixture[str]) -> None:
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3.") or keras.backend.backend() != "tensorflow":
        pytest.skip("needs Keras 3 on the TensorFlow backend")
    code, out, _ = run_cli(capsys, "keras.optimizers:Adamax", "--profile", "keras", "--only", "SP-1",
                           "--examples", "10")
    assert code == 1
    assert "sparse laziness" in out and "keras3" in out


def test_keras3_passes_keras3_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Keras 3 on TensorFlow, fed real tf.IndexedSlices, conforms to the keras3 profile, which
    records its two sparse rules: densified gradients, and ``u`` seeing the sum of ``|values|`` of
    a duplicated row (``Profile.sparse_magnitude``)."""
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3.") or keras.backend.backend() != "tensorflow":
        pytest.skip("needs Keras 3 on the TensorFlow backend")
    report = tmp_path / "k3.json"
    code, out, _ = run_cli(capsys, "keras.optimizers:Adamax", "--profile", "keras3", "--examples", "3",
                           "--report", str(report))
    results = {r["property"]: r for r in json.loads(report.read_text())["results"]}
    bad = {k: r["detail"] for k, r in results.items() if r["status"] not in ("pass", "not supported")}
    assert code == 0 and not bad, out
    assert results["SP-1"]["status"] == "pass"


# ---------------------------------------------------------------------------------------------
# A user's own Adamax


def test_user_function_that_is_right_passes(user: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, f"{user}:good", "--examples", "4")
    assert code == 0, out


@pytest.mark.parametrize("bug,what", [("adam_bias", "step 1"), ("eps_in_max", "epsilon placement")])
def test_user_bug_is_pinpointed(user: str, bug: str, what: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "bug.json"
    code, _, _ = run_cli(capsys, f"{user}:{bug}", "--only", "U-1", "--examples", "10",
                           "--seed", "3", "--report", str(report))
    assert code == 1
    r = json.loads(report.read_text())["results"][0]
    assert r["status"] == "fail" and what in r["detail"]
    failure = r["verdict"]["failures"][0]
    assert {"step", "index", "expected", "actual", "ratio", "ulps"} <= set(failure)
    assert failure["ratio"] > 1 and failure["ulps"] > 0
    # the reproducer is Python (run in test_reproducer_*) and names the seed and the rerun command
    compile(r["reproducer"], "reproducer.py", "exec")
    assert "hypothesis seed 3" in r["reproducer"] and "--only U-1" in r["reproducer"]
    # the error in bound units, or, where the rule leaves no rounding (bound: underflow only), absolutely
    assert (" x bound, " in r["reproducer"] or ", where the rule leaves no rounding" in r["reproducer"])
    assert "ULP" in r["reproducer"]


# ---------------------------------------------------------------------------------------------
# Targets that misbehave (issue #8): a verdict each, the run goes on, the report is kept.


@pytest.mark.parametrize("fn,message", [
    ("raises", "target raised RuntimeError: kernel launch failed"),
    ("hangs", "timed out"),
    ("wrong_shape", "has shape"),
    ("mutates", "modified its gradient"),
])
def test_misbehaving_target_gets_a_verdict(user: str, fn: str, message: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "bad.json"
    only = ["--only", "U-1", "--only", "I-1", "--only", "D-1"]
    code, out, _ = run_cli(capsys, f"{user}:{fn}", *only, "--examples", "2", "--timeout", "0.5",
                           "--report", str(report))
    assert code == 1
    data = json.loads(report.read_text())
    assert [r["property"] for r in data["results"]] == ["U-1", "I-1", "D-1"]
    assert data["complete"] is True
    failed = [r for r in data["results"] if r["status"] == "fail"]
    assert failed and all(message in r["detail"] for r in failed), out


@pytest.mark.parametrize("fn,profile,prop,message", [
    ("no_momentum_scale", "keras", "INV-moments", "invariant"),
    ("nan_to_zero", "keras", "N-1", "expected NaN"),
    ("upcasts", "keras", "D-1", "came back as float64"),
])
def test_new_properties_catch_their_bug(user: str, fn: str, profile: str, prop: str, message: str,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "p.json"
    code, out, _ = run_cli(capsys, f"{user}:{fn}", "--profile", profile, "--only", prop, "--examples", "10",
                           "--report", str(report))
    r = json.loads(report.read_text())["results"][0]
    assert code == 1 and r["status"] == "fail" and message in r["detail"], out


def test_torch_validation_and_groups_catch_their_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """V-args: an Adamax subclass that skips torch's checks; G-1: one that applies the first
    group's lr to every group; S-2: one that sets every parameter's step to the optimizer's."""
    _need("torch")
    (tmp_path / "torch_bugs.py").write_text(textwrap.dedent('''
        import torch

        class NoChecks(torch.optim.Adamax):
            def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None):
                super().__init__(params, lr=abs(lr) if lr == lr else 0.1, betas=(0.9, 0.999), eps=abs(eps))

        class OneLr(torch.optim.Adamax):
            def step(self, closure=None):
                for group in self.param_groups:
                    group["lr"] = self.param_groups[0]["lr"]
                return super().step(closure)

        class GlobalStep(torch.optim.Adamax):
            """A global step counter where torch counts per parameter (S-2)."""
            def step(self, closure=None):
                self.t = getattr(self, "t", 0) + 1
                for state in self.state.values():
                    state["step"].fill_(self.t - 1)  # torch adds 1 before using it
                return super().step(closure)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run_cli(capsys, "torch_bugs:NoChecks", "--profile", "torch", "--only", "V-args")
    assert code == 1 and "was accepted" in out
    code, out, _ = run_cli(capsys, "torch_bugs:OneLr", "--profile", "torch", "--only", "G-1",
                           "--examples", "10")
    assert code == 1 and "parameter group" in out
    code, out, _ = run_cli(capsys, "torch_bugs:GlobalStep", "--profile", "torch", "--only", "S-2",
                           "--examples", "10")
    assert code == 1 and "its step count" in out, out
    code, out, _ = run_cli(capsys, "torch.optim:Adamax", "--profile", "torch", "--only", "V-args",
                           "--only", "G-1", "--only", "S-2", "--examples", "10")
    assert code == 0, out


def test_interrupted_run_keeps_the_properties_already_checked(user: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "partial.json"
    code, out, _ = run_cli(capsys, f"{user}:interrupted", "--examples", "3", "--report", str(report))
    assert code == 1 and "interrupted" in out
    data = json.loads(report.read_text())
    assert data["complete"] is False
    assert [r["property"] for r in data["results"]][:1] == ["U-1"]
    assert data["results"][0]["status"] == "pass"


# ---------------------------------------------------------------------------------------------
# Usage errors, identification, report schema, determinism


@pytest.mark.parametrize("args,word", [
    (["no_such_module_xyz:Adamax"], "cannot load"),
    (["numpy:no_such_attr"], "cannot load"),
    (["not-a-spec"], "module:attr"),
    (["adamax_spec", "--examples", "0"], "--examples"),
    (["adamax_spec", "--only", "NOPE"], "NOPE"),
    (["adamax_spec", "--require", "teleport"], "teleport"),
    (["adamax_spec", "--timeout", "-1"], "--timeout"),
    (["adamax_spec", "--profile", "adam"], "invalid choice"),
    (["adamax_spec", "--report", "out.pdf"], "'.pdf'"),
    ([], "TARGET"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], word: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("adamax-conformance: error")]
    assert len(lines) == 1 and word in lines[0], err


def test_identify_prints_variant_last(user: str, capsys: pytest.CaptureFixture[str]) -> None:
    _need("torch")
    code, out, _ = run_cli(capsys, "torch.optim:Adamax", "--identify")
    assert code == 0 and out.strip().splitlines()[-1] == "variant: torch/optax"
    code, out, _ = run_cli(capsys, f"{user}:good", "--identify")
    assert out.strip().splitlines()[-1] in ("variant: keras", "variant: keras/keras3")
    assert code == 0
    code, out, _ = run_cli(capsys, f"{user}:sgd", "--identify")
    assert out.strip().splitlines()[-1] == "variant: none"
    assert code == 1  # the documented contract: no known variant fits -> exit 1
    code, out, _ = run_cli(capsys, f"{user}:raises", "--identify")
    assert out.strip().splitlines()[-1] == "variant: none" and code == 1


def test_json_report_schema_and_versions(user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "r.md"]
    args = [f"{user}:good", "--only", "U-1", "--only", "SP-1", "--examples", "2"]
    for p in paths:
        args += ["--report", str(p)]
    assert run_cli(capsys, *args)[0] == 0
    data = json.loads(paths[0].read_text())
    assert data["schema"] == "adamax-conformance/1"
    assert {"target", "profile", "examples", "seed", "seconds", "versions", "results"} <= set(data)
    for lib in ("python", "adamax_spec", "numpy", "hypothesis"):
        assert data["versions"].get(lib), lib
    assert {r["status"] for r in data["results"]} == {"pass", "not supported"}
    assert "<testsuite" in paths[1].read_text() and "| `U-1` | pass |" in paths[2].read_text()


def test_runs_are_deterministic_and_write_no_example_database(user: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    def once(name: str) -> list[tuple[str, str, str, str]]:
        p = tmp_path / name
        run_cli(capsys, f"{user}:eps_in_max", "--only", "U-1", "--examples", "4",
                "--seed", "11", "--report", str(p))
        # verdicts, details and reproducers; not the count of runs hypothesis spent shrinking
        return [(r["property"], r["status"], r["detail"], r["reproducer"])
                for r in json.loads(p.read_text())["results"]]

    from hypothesis import configuration

    home = tmp_path / "hypothesis-home"
    saved = configuration.storage_directory(intent_to_write=False).path  # a StorageDirectory: its path
    configuration.set_hypothesis_home_dir(str(home))
    try:
        assert once("a.json") == once("b.json")
    finally:
        configuration.set_hypothesis_home_dir(str(saved))
    # hypothesis may cache constants there; the example database ("examples") must not appear
    assert not (home / "examples").exists()


def test_ci_profile_is_derandomized_without_database() -> None:
    tests = Path(__file__).parents[1]
    code = ("import conftest; from hypothesis import settings; d = settings.default; "
            "print(d.derandomize, d.database is None)")
    env = {**os.environ, "CI": "true"}
    env.pop("HYPOTHESIS_PROFILE", None)
    r = subprocess.run([sys.executable, "-c", code], cwd=tests, env=env, capture_output=True, text=True)
    assert r.stdout.split() == ["True", "True"], r.stderr


# ---------------------------------------------------------------------------------------------
# The front end (issue #20): one table of options, --version, xfails that cannot hide problems,
# constructor arguments for the target


def test_every_option_has_help_text_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    from adamax_spec.conformance.options import OPTIONS

    actions = [a for a in cli.parser()._actions if a.dest != "help"]
    assert {a.dest for a in actions} >= {o.dest for o in OPTIONS}
    assert all(a.help and len(a.help) > 15 for a in actions), [a.dest for a in actions if not a.help]
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())  # argparse wraps lines
    for o in OPTIONS:
        assert o.spelled("--") in text and " ".join(o.help_text().split()) in text, o.name
    assert "(default: keras)" in text and "(default: 0)" in text  # --profile, --seed


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.startswith(f"adamax-conformance {importlib.metadata.version('adamax-spec')} ")
    assert "adamax-conformance/1" in out  # the report schema it writes


def _xfails(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "xfails.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_xfails_file_parsing_drops_comments_and_blanks() -> None:
    from adamax_spec.conformance.xfails import parse

    assert parse("# header\n\nU-1  # epsilon inside\n  D-1\n#C-1\n") == ["U-1", "D-1"]


def test_unknown_xfail_id_is_a_usage_error(user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xf = _xfails(tmp_path, "# known failures", "U-1", "U-dnese  # a typo must not hide anything")
    code, out, err = run_cli(capsys, f"{user}:good", "--only", "U-1", "--examples", "2", "--xfails", xf)
    assert code == 2 and not out
    line = err.strip()
    assert line.count("\n") == 0 and "'U-dnese'" in line and "known:" in line and "D-1" in line, err
    code, _, err = run_cli(capsys, f"{user}:good", "--xfails", str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read --xfails file" in err


def test_xfail_and_xpass_are_reported_and_counted(user: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """eps_in_max fails U-1 (xfailed: XFAIL) and passes D-1 (xfailed: XPASS); C-1 is not
    supported by a raw function and stays so; the run conforms, and says how."""
    xf = _xfails(tmp_path, "U-1", "D-1", "C-1")
    report = tmp_path / "x.json"
    args = [f"{user}:eps_in_max", "--only", "U-1", "--only", "D-1", "--only", "C-1",
            "--examples", "3", "--xfails", xf, "--report", str(report)]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0, out
    statuses = {r["property"]: r["status"] for r in json.loads(report.read_text())["results"]}
    assert statuses == {"U-1": "xfail", "D-1": "xpass", "C-1": "not supported"}
    assert "  XFAIL " in out and "  XPASS " in out and "take it off the list" in out
    assert "CONFORMS to profile keras (0 pass, 0 fail, 1 xfail, 1 xpass, 1 not supported)" in out, out
    assert "--- reproducer" not in out  # an expected failure is not a failure to act on
    # --strict-xfails: the XPASS fails the run
    junit = tmp_path / "x.xml"
    code, out, _ = run_cli(capsys, *args, "--strict-xfails", "--report", str(junit))
    assert code == 1 and "XPASS: D-1" in out and "the run fails" in out, out
    assert "DOES NOT CONFORM to profile keras" in out, out  # the verdict line agrees with the exit code
    assert 'failures="1"' in junit.read_text()  # and so does the JUnit report a CI reads


def test_xfails_never_hide_a_failure_that_is_not_listed(user: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    xf = _xfails(tmp_path, "D-dtype  # a deprecated id names the same property (D-1)")
    code, out, _ = run_cli(capsys, f"{user}:eps_in_max", "--only", "U-1", "--only", "D-1",
                           "--examples", "3", "--xfails", xf)
    assert code == 1 and "DOES NOT CONFORM" in out and "(0 pass, 1 fail, 0 xfail, 1 xpass" in out, out


def test_classification_is_one_rule() -> None:
    from adamax_spec.conformance.xfails import classify

    assert classify("U-1", "fail", {"U-1"}).status == "xfail"
    assert not classify("U-1", "fail", {"U-1"}).fails
    assert (classify("U-1", "pass", {"U-1"}).status, classify("U-1", "pass", {"U-1"}).fails) \
        == ("xpass", False)
    assert classify("U-1", "pass", {"U-1"}, strict=True).fails
    assert classify("U-1", "error", {"U-1"}).fails  # the suite's own error is never expected
    assert classify("U-1", "fail", set()).fails and not classify("U-1", "pass", set()).fails
    assert classify("U-1", "not supported", {"U-1"}) == classify("U-1", "not supported", set())


@pytest.mark.parametrize("text,word", [("lr", "'lr'"), ("=3", "''"), ("l r=3", "'l r'")])
def test_bad_option_syntax_is_a_usage_error_naming_the_key(text: str, word: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "adamax_spec", "--option", text)
    assert code == 2 and "--option" in err and word in err, err


def test_option_values_are_python_literals_else_text() -> None:
    from adamax_spec.conformance.options import parse_option

    assert parse_option("lr=0.01") == ("lr", 0.01)
    assert parse_option("betas=(0.9, 0.99)") == ("betas", (0.9, 0.99))
    assert parse_option("fused=True") == ("fused", True)
    assert parse_option("name=fast") == ("name", "fast")
    assert parse_option("expr=1+") == ("expr", "1+")


def test_option_passes_constructor_arguments_to_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A torch optimizer whose constructor needs an argument the suite does not set: a usage error
    naming it without ``--option``, a conforming run with it."""
    _need("torch")
    (tmp_path / "needs_mode.py").write_text(textwrap.dedent('''
        import torch

        class NeedsMode(torch.optim.Adamax):
            def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, *, mode):
                if mode != "exact":
                    raise ValueError(f"unknown mode {mode!r}")
                super().__init__(params, lr=lr, betas=betas, eps=eps)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["needs_mode:NeedsMode", "--profile", "torch", "--only", "U-1", "--examples", "2"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "'mode'" in err, err
    code, out, _ = run_cli(capsys, *args, "--option", "mode='exact'")
    assert code == 0 and "CONFORMS" in out, out
    code, _, err = run_cli(capsys, *args, "--option", "mode=exact", "--option", "colour=1")
    assert code == 2 and "'colour'" in err, err


def test_plots_writes_the_error_plot_of_one_target(user: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    code, out, _ = run_cli(capsys, f"{user}:eps_in_max", "--only", "U-1", "--examples", "2",
                           "--plots", str(tmp_path / "plots"))
    pngs = list((tmp_path / "plots").glob("*.png"))
    assert code == 1 and len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG", out
    assert f"plot: {pngs[0]}" in out


# ---------------------------------------------------------------------------------------------
# Targets with constructor options, functools.partial, one-line --identify failures, HTML (issue 20)

OPTIONS_MODULE = '''
import functools

import torch


WithDecay = functools.partial(torch.optim.Adamax, weight_decay=0.0)
WithLr = functools.partial(torch.optim.Adamax, lr=0.1)
BadValue = functools.partial(torch.optim.Adamax, weight_decay=-1.0)
Positional = functools.partial(torch.optim.Adamax, [])


class OtherNames(torch.optim.Adamax):
    """A torch optimizer whose constructor spells the hyperparameters its own way."""

    def __init__(self, params, learning_rate=1e-3, b1=0.9, b2=0.999, epsilon=1e-8):
        super().__init__(params, lr=learning_rate, betas=(b1, b2), eps=epsilon)


class Dispatch(torch.optim.Adamax):
    """Fails at its second step inside a torch operator: a ~90-line dispatcher message."""

    def step(self, closure=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2:
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.to_sparse().addcdiv_(p.grad, p.grad)
        return super().step(closure)
'''


@pytest.fixture
def torch_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module of torch targets: partials, other argument names, a dispatcher error."""
    _need("torch")
    name = f"torch_user_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(OPTIONS_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_partial_of_an_optimizer_class_loads_and_runs(torch_user: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """It used to be taken for a raw step function: every property failed with 'Adamax.__init__()
    got an unexpected keyword argument 't''."""
    code, out, _ = run_cli(capsys, f"{torch_user}:WithDecay", "--profile", "torch", "--only", "U-1",
                           "--examples", "2")
    assert code == 0 and "torch.optim.Adamax(weight_decay=0.0): CONFORMS" in out, out
    assert "unexpected keyword" not in out


@pytest.mark.parametrize("attr,words", [
    ("WithLr", ["option 'lr' is set by the suite"]),
    ("BadValue", ["rejected the option weight_decay=-1.0", "Invalid weight_decay"]),
    ("Positional", ["functools.partial with positional arguments"]),
    ("OtherNames", ["class the suite cannot drive", "(params, learning_rate, b1, b2, epsilon)",
                    "(params, lr, betas, eps)"]),
])
def test_targets_the_suite_cannot_construct_are_one_usage_error(torch_user: str, attr: str, words: list[str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, f"{torch_user}:{attr}", "--profile", "torch", "--only", "U-1",
                             "--examples", "2")
    assert code == 2 and len(err.strip().splitlines()) == 1 and not out.strip(), (out, err)
    for word in words:
        assert word in err, err


def test_options_reach_the_optimizer_construction() -> None:
    """``load_target(options=)``: a weight decay the reference does not model makes torch fail its
    own profile, so the option did reach the constructor; names the constructor refuses are load
    errors naming the option."""
    _need("torch")
    from adamax_spec.conformance.adapters.ours import OursTarget
    from adamax_spec.conformance.plots import representative_case
    from adamax_spec.conformance.targets import LoadError, load_target
    from adamax_spec.reference.verdict import judge

    case = representative_case(steps=3)
    plain = load_target("torch.optim:Adamax", options={"weight_decay": 0.0})
    decayed = load_target("torch.optim:Adamax", options={"weight_decay": 0.5})
    assert decayed.name == "torch.optim.Adamax(weight_decay=0.5)"
    assert judge(case, plain.run(case), "torch").ok
    assert not judge(case, decayed.run(case), "torch").ok
    with pytest.raises(LoadError, match=r"does not take option 'colour'.*weight_decay"):
        load_target("torch.optim:Adamax", options={"colour": 1})
    with pytest.raises(LoadError, match="option 'eps' is set by the suite"):
        load_target("torch.optim:Adamax", options={"eps": 1e-3})
    with pytest.raises(LoadError, match="takes no options"):
        load_target("adamax_spec", options={"fast": True})
    assert isinstance(load_target("adamax_spec"), OursTarget)


def test_options_reach_a_step_function(user: str) -> None:
    from adamax_spec.conformance.targets import LoadError, load_target

    with pytest.raises(LoadError, match="does not take option 'scale'"):
        load_target(f"{user}:good", options={"scale": 2.0})
    target = load_target(f"{user}:raises", options={"scale": 2.0})  # it takes **kw: passed on
    assert target.name.endswith("(scale=2.0)")


def test_identify_failure_inside_torch_is_one_line(torch_user: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A torch dispatcher error is ~90 lines; --identify prints its type and first line, and the step."""
    _, out, err = run_cli(capsys, f"{torch_user}:Dispatch", "--identify")
    lines = out.strip().splitlines()
    assert lines[-1] == "variant: none", out
    crash = [ln for ln in lines if "raised" in ln]
    assert len(crash) == 1 and len(lines) <= 4, out
    assert crash[0].startswith("probe-dense: the target raised at step 2 of 4: NotImplementedError: Could not run")
    assert len(crash[0]) < 400 and "Traceback" not in out + err
    from adamax_spec.conformance.identify import identify
    from adamax_spec.conformance.targets import load_target

    _, verbose = identify(load_target(f"{torch_user}:Dispatch"), verbose=True)
    assert any(ln.startswith("Traceback") for ln in verbose)  # the whole story, when asked for


def test_html_report_from_the_cli(user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--report x.html`` writes a page, not JSON under an .html name (as it once did)."""
    import importlib.util
    from html.parser import HTMLParser

    page, data = tmp_path / "run.html", tmp_path / "run.json"
    code, out, _ = run_cli(capsys, f"{user}:adam_bias", "--only", "U-1", "--only", "T-1", "--examples", "3",
                           "--report", str(page), "--report", str(data))
    assert code == 1, out
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    ids: list[str] = []

    class Ids(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            ids.extend(v or "" for k, v in attrs if k == "id")

    Ids().feed(text)
    results = json.loads(data.read_text())["results"]
    failed = [r["property"] for r in results if r["status"] == "fail"]
    assert failed and set(failed) <= set(ids)  # each failure has its section (detail, reproducer)
    assert all(f">{r['property']}<" in text for r in results) and "Reproducer" in text
    if importlib.util.find_spec("matplotlib") is not None:  # the error plots, embedded
        assert '<img src="data:image/png;base64,' in text


def test_unknown_report_suffix_is_a_usage_error(user: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Once written as JSON whatever the suffix; now refused before the run, naming path and formats."""
    code, out, err = run_cli(capsys, f"{user}:good", "--only", "U-1", "--examples", "2",
                             "--report", str(tmp_path / "run.json"), "--report", str(tmp_path / "run.txt"))
    assert code == 2 and len(err.strip().splitlines()) == 1, (out, err)
    assert "run.txt" in err and ".html" in err and ".json" in err, err
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "run.txt").exists()


def test_guide_documents_every_option() -> None:
    from adamax_spec.conformance.options import OPTIONS

    guide = (Path(__file__).parents[2] / "docs" / "guide.md").read_text()
    missing = [o.name for o in OPTIONS if not o.positional and f"`--{o.name}" not in guide]
    assert not missing, f"docs/guide.md does not document {missing}"


# ---------------------------------------------------------------------------------------------
# Failures a user can act on (issue #20): reproducers that run, minimal, one root cause once.


def _replay(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The reproducer in a fresh interpreter, started where the run ran (as a user would)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("fn,profile,prop", [
    ("eps_in_max", "keras", "U-1"),    # judged by the reference
    ("nan_to_zero", "keras", "N-1"),   # properties with a check of their own: the drawn input replayed
    ("mutates", "keras", "I-1"),
    ("adam_bias", "torch", "S-2"),     # under torch: each parameter judged alone, its own step count
    ("upcasts", "keras", "D-1"),
])
def test_reproducer_runs_and_fails_with_the_same_line(user: str, fn: str, profile: str, prop: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``--reproducer FILE`` writes one self-contained script: run in a fresh interpreter, it loads
    the target as the run did, replays the case, prints the run's failure line and exits 1; once
    the target is fixed it exits 0."""
    script, report = tmp_path / "repro.py", tmp_path / "r.json"
    code, out, _ = run_cli(capsys, f"{user}:{fn}", "--profile", profile, "--only", prop, "--examples", "10",
                           "--reproducer", str(script), "--report", str(report))
    assert code == 1 and f"reproducer: {script}" in out, out
    line = json.loads(report.read_text())["results"][0]["detail"].splitlines()[0]
    text = script.read_text()
    assert "replay(" in text and "<your adapter>" not in text
    done = _replay(script, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAIL {prop} " in done.stdout and line in done.stdout, (line, done.stdout)
    # the user fixes the function (torch's rule is eps_in_max's): the same script now passes
    module = tmp_path / f"{user}.py"
    module.write_text(module.read_text() + f"\n\n{fn} = {'eps_in_max' if profile == 'torch' else 'good'}\n")
    done = _replay(script, tmp_path)
    assert done.returncode == 0 and f"PASS {prop}" in done.stdout, done.stdout + done.stderr


def test_reproducer_of_bad_arguments_replays_the_constructor_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """V-args draws a bad-argument rule, not a case: the reproducer replays that rule."""
    _need("torch")
    (tmp_path / "torch_nochecks.py").write_text(textwrap.dedent('''
        import torch

        class NoChecks(torch.optim.Adamax):
            def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None):
                super().__init__(params, lr=abs(lr) if lr == lr else 0.1, betas=(0.9, 0.999), eps=abs(eps))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "repro.py"
    code, out, _ = run_cli(capsys, "torch_nochecks:NoChecks", "--profile", "torch", "--only", "V-args",
                           "--reproducer", str(script))
    assert code == 1, out
    done = _replay(script, tmp_path)
    assert done.returncode == 1 and "FAIL V-args" in done.stdout and "was accepted" in done.stdout, done.stdout


def test_reproducer_of_a_target_that_raises_shows_the_traceback_and_step(user: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "repro.py"
    code, out, _ = run_cli(capsys, f"{user}:raises_at_3", "--only", "U-1", "--examples", "10",
                           "--reproducer", str(script))
    assert code == 1 and "target raised RuntimeError: kernel launch failed" in out, out
    done = _replay(script, tmp_path)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stdout and "RuntimeError: kernel launch failed" in done.stdout
    assert "the target raised at step 3 of 3" in done.stdout, done.stdout  # minimized: cut after step 3


def test_reproducers_of_several_failures_get_one_file_each(user: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, f"{user}:no_momentum_scale", "--only", "U-1", "--only", "INV-moments",
                           "--examples", "10",
                           "--reproducer", str(tmp_path / "repro.py"))
    assert code == 1
    assert sorted(p.name for p in tmp_path.glob("repro*.py")) == ["repro-INV-moments.py", "repro-U-1.py"], out


def test_counter_reproducer_is_a_few_dozen_lines(user: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """T-1 needs more than 2,048 steps: minimized, they are one or two repeated gradients, written
    as ``[step] * n`` (the case hypothesis drew printed its ~2,050 steps one a line)."""
    script = tmp_path / "repro.py"
    code, out, _ = run_cli(capsys, f"{user}:counter_stuck", "--only", "T-1", "--examples", "25",
                           "--reproducer", str(script))
    assert code == 1, out
    text = script.read_text()
    assert len(text.splitlines()) < 60 and "] * " in text, text
    assert len(out.splitlines()) < 80, out  # the run's own output: the failing step, not the trajectory
    done = _replay(script, tmp_path)
    assert done.returncode == 1 and "FAIL T-1" in done.stdout and "step 20" in done.stdout, done.stdout


def test_a_wrong_dtype_fails_once_under_d1(user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Weights returned in float64 fail every property that runs the target; the root cause is
    reported once, by D-1, and the others are skipped, pointing there (not counted as failures)."""
    report = tmp_path / "r.json"
    code, out, _ = run_cli(capsys, f"{user}:upcasts", "--examples", "5", "--report", str(report))
    assert code == 1
    status = {r["property"]: r for r in json.loads(report.read_text())["results"]}
    assert [k for k, r in status.items() if r["status"] == "fail"] == ["D-1"], out
    skipped = [k for k, r in status.items() if r["status"] == "skipped"]
    assert {"U-1", "U-2", "I-1"} <= set(skipped)
    assert all(status[k]["detail"].startswith("same root cause as D-1 (see there)") and not status[k]["reproducer"]
               for k in skipped)
    assert f"(0 pass, 1 fail, {len(skipped)} skipped (same root cause)," in out, out
    assert out.count("--- reproducer for") == 1
    # D-1 not in the run: the first property that meets the fault reports it
    code, out, _ = run_cli(capsys, f"{user}:upcasts", "--only", "U-1", "--only", "U-2", "--examples", "5")
    assert code == 1 and "FAIL           U-1" in out and "same root cause as U-1 (see there)" in out, out


def test_a_wrong_state_is_named_before_the_weights(user: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """u never decayed: w goes wrong at the same step, computed from u; the failure names u."""
    report = tmp_path / "r.json"
    code, _, _ = run_cli(capsys, f"{user}:no_decay", "--only", "U-1", "--examples", "10", "--report", str(report))
    r = json.loads(report.read_text())["results"][0]
    assert code == 1 and ", u: expected" in r["detail"].splitlines()[0], r["detail"]
    failures = r["verdict"]["failures"]  # by step, then m and u before the w computed from them
    same_step = [f["quantity"] for f in failures if f["step"] == failures[0]["step"]]
    assert same_step[0] == "u" and "w" in same_step, failures


def test_the_guides_failing_run_is_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """docs/guide.md, "Reading a report", prints a run and its reproducer: the same command prints
    the same lines (but the time taken), and the reproducer, pasted, prints the same failure."""
    import re
    import shlex

    guide = (Path(__file__).parents[2] / "docs" / "guide.md").read_text()
    block = re.search(r"```console\n(\$ adamax-conformance mymodule:my_step .*?)```", guide, re.S)
    assert block is not None
    text = block.group(1)
    command, rest = text.split("\n", 1)
    shown, replayed = rest.split('$ python repro.py; echo "exit $?"\n')
    (tmp_path / "mymodule.py").write_text(textwrap.dedent('''
        import numpy as np

        def my_step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
            m = beta_1 * m + (1 - beta_1) * g
            u = np.maximum(beta_2 * u, np.abs(g) + epsilon)
            return w - (lr / (1 - beta_1 ** t)) * m / u, m, u
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, *shlex.split(command)[2:])

    def untimed(s: str) -> str:
        return re.sub(r" in [0-9.]+ s\n", " in T s\n", s).strip()

    assert code == 1 and untimed(out) == untimed(shown), out
    pasted = shown.split("--- reproducer for U-1 ---\n")[1].split("\n\n\nmymodule:my_step:")[0]
    (tmp_path / "pasted.py").write_text(pasted + "\n")
    done = _replay(tmp_path / "pasted.py", tmp_path)
    assert f"{done.stdout}exit {done.returncode}\n" == replayed
