"""The guide's raw step functions (docs/guide.md, section 2), run exactly as printed, pass exactly
the profiles the guide says they pass; and what makes the epsilon-inside one pass ``torch``: a
step function's ``t`` counts as the profile's optimizer counts steps (clause S-2)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from adamax_spec.conformance.adapters.function import FunctionTarget
from adamax_spec.conformance.case import Case
from adamax_spec.conformance.cli import main
from adamax_spec.conformance.engine import run_property
from adamax_spec.conformance.properties import by_id
from adamax_spec.conformance.targets import load_target

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
#: "`adamax-conformance mymodule:my_step --profile P` passes", "`--profile P` fails"
_CLAIM = re.compile(r"`(?:adamax-conformance mymodule:my_step )?--profile (\w+)`,? (passes|fails)")


def guide_step_functions() -> list[tuple[str, dict[str, str]]]:
    """Each ```python block of the guide that defines ``my_step``, with what the prose after it
    (up to the next code block) says each profile does: ``{profile: "passes" | "fails"}``."""
    text = GUIDE.read_text()
    parts = re.split(r"```python\n(.*?)```", text, flags=re.S)
    out = []
    for i in range(1, len(parts), 2):
        code, prose = parts[i], parts[i + 1].split("```")[0]
        if "def my_step(" in code:
            out.append((code, {p: verdict for p, verdict in _CLAIM.findall(prose)}))
    return out


EXAMPLES = guide_step_functions()


def test_the_guide_prints_step_functions_and_says_what_they_pass() -> None:
    """The parse finds what the guide claims (else the test below would check nothing)."""
    assert len(EXAMPLES) == 2, EXAMPLES
    assert EXAMPLES[0][1] == {"keras": "passes"}
    assert EXAMPLES[1][1] == {"torch": "passes", "keras": "fails"}


@pytest.mark.parametrize("index,profile", [(i, p) for i, (_, claims) in enumerate(EXAMPLES) for p in claims])
def test_guide_step_function_passes_the_profiles_the_guide_says(index: int, profile: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``adamax-conformance mymodule:my_step --profile P`` (a default run) on the block as printed."""
    code, claims = EXAMPLES[index]
    (tmp_path / "mymodule.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymodule", raising=False)
    status = main(["mymodule:my_step", "--profile", profile])
    out = capsys.readouterr().out
    assert status == (0 if claims[profile] == "passes" else 1), out


def _inside(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):  # type: ignore[no-untyped-def]
    m = beta_1 * m + (1 - beta_1) * g
    u = np.maximum(beta_2 * u, np.abs(g) + epsilon)
    return w - (lr / (1 - beta_1 ** t)) * m / u, m, u


def test_step_function_t_counts_per_parameter_under_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """params[0] has a gradient at steps 1 and 3, params[1] at steps 1, 2, 3: under ``torch`` (one
    counter per parameter) params[0] is called with t = 1, 2; under ``keras`` (one per optimizer)
    with t = 1, 3."""
    (tmp_path / "recording.py").write_text(
        "CALLS = []\n"
        "def step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):\n"
        "    CALLS.append((w.shape, t))\n"
        "    return w, m, u\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "recording", raising=False)
    one, two = np.zeros(1), np.zeros(2)
    case = Case([one, two], [[one, two], [None, two], [one, two]],
                {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7})
    seen = {}
    for profile in ("torch", "keras"):
        target = load_target("recording:step", profile=profile)
        calls = sys.modules["recording"].CALLS
        calls.clear()
        target.run(case)
        seen[profile] = [t for shape, t in calls if shape == (1,)], [t for shape, t in calls if shape == (2,)]
    assert seen["torch"] == ([1, 2], [1, 2, 3])
    assert seen["keras"] == ([1, 3], [1, 2, 3])


def test_optimizer_wide_t_under_torch_fails_s2_and_the_diagnosis_names_the_counter() -> None:
    """The epsilon-inside function given the optimizer's ``t`` (the adapter before clause S-2 was
    honoured for step functions) fails S-2 under ``torch``; it fits ``optax`` (one counter), and
    the diagnosis says so once, naming the step counter rather than repeating the shared rule."""
    wrong = FunctionTarget(_inside, step_counter="optimizer")
    r = run_property(by_id("S-2"), wrong, "torch", examples=25, seed=0)
    assert r.status == "fail", r.detail
    words = "epsilon inside the max (u = max(b2*u, |g|+eps))"
    assert "fits variant optax, not torch" in r.diagnosis, r.diagnosis
    assert r.diagnosis.count(words) == 1, r.diagnosis
    assert "step counter (per parameter under torch, per optimizer under optax)" in r.diagnosis
    right = FunctionTarget(_inside, step_counter="parameter")
    assert run_property(by_id("S-2"), right, "torch", examples=25, seed=0).status == "pass"
