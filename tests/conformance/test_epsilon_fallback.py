"""H-1: what a keras-profile target must do with ``epsilon=None`` or ``epsilon=0`` (Keras 2.9:
``epsilon or backend.epsilon()``, 1e-7): step with 1e-7, or refuse the value naming epsilon.
Checked on one raw keras step function behind constructors that treat None/0 each way."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from adamax_spec.conformance.adapters.function import FunctionTarget
from adamax_spec.conformance.adapters.ours import OursTarget
from adamax_spec.conformance.case import Case, Trajectory, Unsupported
from adamax_spec.conformance.engine import run_property
from adamax_spec.conformance.properties import by_id


def keras_step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):  # type: ignore[no-untyped-def]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = beta_1 * m + (1 - beta_1) * g
        u = np.maximum(beta_2 * u, np.abs(g))
        return w - (lr / (1 - beta_1 ** t)) * m / (u + epsilon), m, u


class Shell:
    """A constructor around :func:`keras_step`; what it does with epsilon None or 0 (``mode``):
    "fallback" (1e-7, as Keras 2.9), "zero" (steps with 0), "refuse naming" (ValueError naming
    epsilon), "refuse silently" (ValueError that does not say which argument)."""

    capabilities = frozenset({"dense", "state", "validation", "float16", "float64"})

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.name = f"shell[{mode}]"

    def make(self, hyper: dict[str, Any]) -> dict[str, Any]:
        if not hyper["epsilon"] and self.mode == "refuse naming":
            raise ValueError(f"epsilon must be > 0, got {hyper['epsilon']!r}")
        if not hyper["epsilon"] and self.mode == "refuse silently":
            raise ValueError("bad value")
        return hyper

    def run(self, case: Case) -> Trajectory:
        self.make(case.hyper)
        eps = case.hyper["epsilon"]
        eps = (eps or 1e-7) if self.mode == "fallback" else (eps or 0.0)
        return FunctionTarget(keras_step).run(dataclasses.replace(case, hyper={**case.hyper, "epsilon": eps}))


@pytest.mark.parametrize("mode,status", [("fallback", "pass"), ("refuse naming", "pass"),
                                         ("zero", "fail"), ("refuse silently", "fail")])
def test_epsilon_none_or_zero_under_keras(mode: str, status: str) -> None:
    r = run_property(by_id("H-1"), Shell(mode), "keras", examples=25, seed=0)
    assert r.status == status, r.detail


def test_epsilon_none_or_zero_means_nothing_without_a_fallback() -> None:
    """Under ``optax`` (no fallback) None and 0 are not passed: a target that steps with 0 is judged
    on the subnormal and huge epsilons only (it passes them under ``keras``)."""
    prop = by_id("H-1")
    case = Case([np.array([0.5, -1.0])], [[np.array([0.0, 1e-7])]],
                {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 0})
    target = Shell("zero")
    assert prop.check is not None
    with pytest.raises(Unsupported, match="epsilon_fallback"):
        prop.check(target, case, "optax", target.run)
    assert prop.check(target, case, "keras", target.run) is not None
    r = run_property(prop, FunctionTarget(keras_step), "keras", examples=25, seed=0)
    assert r.status == "pass", r.detail  # None/0 not supported (no constructor), the rest judged


def test_ours_refuses_zero_and_takes_none_as_the_default() -> None:
    ours = OursTarget("numpy", "keras")
    hyper = {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.999}
    with pytest.raises(ValueError, match="epsilon"):
        ours.make({**hyper, "epsilon": 0})
    assert ours.make({**hyper, "epsilon": None}).get_config()["epsilon"] == 1e-7
    assert run_property(by_id("H-1"), ours, "keras", examples=25, seed=0).status == "pass"
