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
    code, out, _ = run_cli(capsys, "torch.optim:Adamax", "--profile", "keras", "--only", "U-dense",
                           "--examples", "10")
    assert code == 1
    assert "epsilon placement" in out and "torch" in out.split("diagnosis:")[1]


def test_tf_keras_rejected_under_torch_profile(capsys: pytest.CaptureFixture[str]) -> None:
    _need("tf_keras")
    code, out, _ = run_cli(capsys, "tf_keras.optimizers.legacy:Adamax", "--profile", "torch",
                           "--only", "U-dense", "--only", "V-args", "--examples", "10")
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
    code, out, _ = run_cli(capsys, "keras.optimizers:Adamax", "--profile", "keras", "--only", "SP-sparse",
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
    assert results["SP-sparse"]["status"] == "pass"


# ---------------------------------------------------------------------------------------------
# A user's own Adamax


def test_user_function_that_is_right_passes(user: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, f"{user}:good", "--examples", "4")
    assert code == 0, out


@pytest.mark.parametrize("bug,what", [("adam_bias", "step 1"), ("eps_in_max", "epsilon placement")])
def test_user_bug_is_pinpointed(user: str, bug: str, what: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "bug.json"
    code, _, _ = run_cli(capsys, f"{user}:{bug}", "--only", "U-dense", "--examples", "10",
                           "--seed", "3", "--report", str(report))
    assert code == 1
    r = json.loads(report.read_text())["results"][0]
    assert r["status"] == "fail" and what in r["detail"]
    failure = r["verdict"]["failures"][0]
    assert {"step", "index", "expected", "actual", "ratio", "ulps"} <= set(failure)
    assert failure["ratio"] > 1 and failure["ulps"] > 0
    # the reproducer is runnable Python and names the seed and the rerun command
    ns: dict[str, object] = {}
    exec(r["reproducer"], ns)
    assert "hypothesis seed 3" in r["reproducer"] and "--only U-dense" in r["reproducer"]
    assert " x bound, " in r["reproducer"] and "ULP" in r["reproducer"]


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
    only = ["--only", "U-dense", "--only", "I-inputs", "--only", "D-dtype"]
    code, out, _ = run_cli(capsys, f"{user}:{fn}", *only, "--examples", "2", "--timeout", "0.5",
                           "--report", str(report))
    assert code == 1
    data = json.loads(report.read_text())
    assert [r["property"] for r in data["results"]] == ["U-dense", "I-inputs", "D-dtype"]
    assert data["complete"] is True
    failed = [r for r in data["results"] if r["status"] == "fail"]
    assert failed and all(message in r["detail"] for r in failed), out


@pytest.mark.parametrize("fn,profile,prop,message", [
    ("no_momentum_scale", "keras", "INV-moments", "invariant"),
    ("nan_to_zero", "keras", "N-nonfinite", "expected NaN"),
    ("upcasts", "keras", "D-dtype", "came back as float64"),
    # a global step counter where torch counts per parameter
    ("eps_in_max", "torch", "S-none", "its step count"),
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
    """V-args: an Adamax subclass that skips torch's checks; G-groups: one that applies the first
    group's lr to every group."""
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
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run_cli(capsys, "torch_bugs:NoChecks", "--profile", "torch", "--only", "V-args")
    assert code == 1 and "was accepted" in out
    code, out, _ = run_cli(capsys, "torch_bugs:OneLr", "--profile", "torch", "--only", "G-groups",
                           "--examples", "10")
    assert code == 1 and "parameter group" in out
    code, out, _ = run_cli(capsys, "torch.optim:Adamax", "--profile", "torch", "--only", "V-args",
                           "--only", "G-groups", "--examples", "10")
    assert code == 0, out


def test_interrupted_run_keeps_the_properties_already_checked(user: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "partial.json"
    code, out, _ = run_cli(capsys, f"{user}:interrupted", "--examples", "3", "--report", str(report))
    assert code == 1 and "interrupted" in out
    data = json.loads(report.read_text())
    assert data["complete"] is False
    assert [r["property"] for r in data["results"]][:1] == ["U-dense"]
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
    code, out, _ = run_cli(capsys, f"{user}:sgd", "--identify")
    assert out.strip().splitlines()[-1] == "variant: none"
    code, out, _ = run_cli(capsys, f"{user}:raises", "--identify")
    assert out.strip().splitlines()[-1] == "variant: none"


def test_json_report_schema_and_versions(user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = [tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "r.md"]
    args = [f"{user}:good", "--only", "U-dense", "--only", "SP-sparse", "--examples", "2"]
    for p in paths:
        args += ["--report", str(p)]
    assert run_cli(capsys, *args)[0] == 0
    data = json.loads(paths[0].read_text())
    assert data["schema"] == "adamax-conformance/1"
    assert {"target", "profile", "examples", "seed", "seconds", "versions", "results"} <= set(data)
    for lib in ("python", "adamax_spec", "numpy", "hypothesis"):
        assert data["versions"].get(lib), lib
    assert {r["status"] for r in data["results"]} == {"pass", "not supported"}
    assert "<testsuite" in paths[1].read_text() and "| `U-dense` | pass |" in paths[2].read_text()


def test_runs_are_deterministic_and_write_no_example_database(user: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    def once(name: str) -> list[tuple[str, str, str, str]]:
        p = tmp_path / name
        run_cli(capsys, f"{user}:eps_in_max", "--only", "U-dense", "--examples", "4",
                "--seed", "11", "--report", str(p))
        # verdicts, details and reproducers; not the count of runs hypothesis spent shrinking
        return [(r["property"], r["status"], r["detail"], r["reproducer"])
                for r in json.loads(p.read_text())["results"]]

    from hypothesis import configuration

    home = tmp_path / "hypothesis-home"
    saved = configuration.storage_directory()
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
