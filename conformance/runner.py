"""Run properties against a target and collect results (the CLI and pytest plugin share this).

A property draws cases from a strategy, runs the target, and asks the
reference for a verdict.  Hypothesis shrinks a failure to a small case, which
the report prints as a reproducer.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from ..reference.verdict import Verdict, judge
from . import strategies as S
from .case import Case, Target, Unsupported

__all__ = ["PROPERTIES", "Property", "Result", "run_all", "run_property"]


@dataclass(frozen=True)
class Property:
    """One checked clause of ``docs/spec.md``: ``id`` is the clause id."""

    id: str
    title: str
    needs: frozenset[str]
    strategy: Callable[[], st.SearchStrategy[Case]]


PROPERTIES: list[Property] = [
    Property("U-dense", "dense steps match the reference within the error bound",
             frozenset({"dense"}), lambda: S.dense_cases()),
    Property("U-dtypes", "float16 and float64 weights follow the same rule in their dtype",
             frozenset({"dense"}), lambda: S.dense_cases(dtypes=("float16", "float64"))),
    Property("U-long", "long runs (up to 150 steps) stay within the per-step bound",
             frozenset({"dense"}), lambda: S.dense_cases(max_steps=150)),
    Property("SP-sparse", "sparse gradients: duplicates summed, rows per the profile's rule",
             frozenset({"sparse"}), lambda: S.sparse_cases()),
    Property("C-clip", "clipvalue, clipnorm and global_clipnorm in Keras order",
             frozenset(), lambda: S.clip_cases()),
    Property("LR-schedule", "Keras 2.9 schedules receive the steps already applied",
             frozenset({"schedule"}), lambda: S.schedule_cases()),
    Property("CK-checkpoint", "save, restore into a fresh instance, continue",
             frozenset({"checkpoint"}), lambda: S.checkpoint_cases()),
]


@dataclass
class Result:
    property: str
    title: str
    status: str  # "pass" | "fail" | "not supported" | "error" | "xfail"
    examples: int = 0
    seconds: float = 0.0
    detail: str = ""
    reproducer: str = ""
    verdict: dict[str, Any] = field(default_factory=dict)


class _Failed(AssertionError):
    pass


def run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                 require: frozenset[str] = frozenset()) -> Result:
    """Run one property; never raises for a target's misbehaviour."""
    missing = prop.needs - target.capabilities
    if missing and not (missing & require):
        return Result(prop.id, prop.title, "not supported",
                      detail=f"{target.name} lacks {', '.join(sorted(missing))}")
    state: dict[str, Any] = {"ran": 0, "unsupported": None, "case": None, "verdict": None, "error": None}

    @hypothesis_seed(seed)
    @settings(max_examples=examples, derandomize=False, database=None, deadline=None,
              print_blob=False, suppress_health_check=list(HealthCheck))
    @given(prop.strategy())
    def check(case: Case) -> None:
        try:
            traj = target.run(case)
        except Unsupported as e:
            if e.capability in require:
                state["error"] = f"required capability {e.capability} unsupported: {e}"
                state["case"] = case
                raise _Failed(str(e)) from None
            state["unsupported"] = str(e)
            return
        except Exception as e:  # the target crashed: that is a finding, not our crash
            state["case"], state["error"] = case, "".join(traceback.format_exception_only(e)).strip()
            raise _Failed(state["error"]) from None
        state["ran"] += 1
        if len(traj.params) != case.steps:
            state["case"], state["error"] = case, f"target returned {len(traj.params)} steps, expected {case.steps}"
            raise _Failed(state["error"])
        for k, ps in enumerate(traj.params):
            for i, p in enumerate(ps):
                if np.shape(p) != np.shape(case.params[i]):
                    state["case"] = case
                    state["error"] = (f"step {k + 1}: params[{i}] has shape {np.shape(p)}, "
                                      f"expected {np.shape(case.params[i])}")
                    raise _Failed(state["error"])
        v = judge(case, traj, variant)
        if not v.ok:
            state["case"], state["verdict"], state["error"] = case, v, None
            raise _Failed(v.failures[0].describe())

    t0 = time.perf_counter()
    try:
        check()
        status = "pass" if state["ran"] else "not supported"
        detail = "" if state["ran"] else f"every example was unsupported: {state['unsupported']}"
    except _Failed:
        status, detail = "fail", state["error"] or state["verdict"].failures[0].describe()
    except Unsatisfiable as e:
        status, detail = "error", str(e)
    r = Result(prop.id, prop.title, status, state["ran"], time.perf_counter() - t0, detail)
    if status == "fail" and state["case"] is not None:
        r.reproducer = reproducer(state["case"], variant, state["verdict"])
        if state["verdict"] is not None:
            r.verdict = verdict_dict(state["verdict"])
    return r


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {
        "ok": v.ok, "variant": v.variant, "interpretation": v.interpretation,
        "compared": v.compared, "max_ratio": v.max_ratio,
        "failures": [c.__dict__ for c in v.failures],
    }


def reproducer(case: Case, variant: str, verdict: Verdict | None) -> str:
    """A copy-pasteable script that rebuilds the failing case and judges a target on it."""
    def arr(a: Any) -> str:
        return f"np.array({np.asarray(a, dtype=np.float64).tolist()!r})"

    def grad(g: Any) -> str:
        if g is None:
            return "None"
        if hasattr(g, "indices"):
            return f"SparseGrad(np.array({g.indices.tolist()!r}), {arr(g.values)}, {tuple(g.dense_shape)!r})"
        return arr(g)

    lines = [
        "import numpy as np",
        "from adamax_spec.conformance.case import Case, SparseGrad",
        "from adamax_spec.reference.verdict import judge",
        f"case = Case(params=[{', '.join(arr(p) for p in case.params)}],",
        "            grads=[" + ",\n                   ".join(
            "[" + ", ".join(grad(g) for g in step) + "]" for step in case.grads) + "],",
        f"            hyper={case.hyper!r}, dtype={case.dtype!r}, checkpoint_at={case.checkpoint_at!r})",
        "# traj = <your adapter>.run(case)",
        f"# print(judge(case, traj, {variant!r}))",
    ]
    if verdict is not None:
        lines.append("# expected failure:")
        lines += [f"#   {c.describe()}" for c in verdict.failures[:3]]
    return "\n".join(lines)


def run_all(target: Target, variant: str, *, examples: int = 25, seed: int = 0,
            only: list[str] | None = None, require: frozenset[str] = frozenset(),
            xfails: set[str] | None = None,
            progress: Callable[[Result], None] | None = None) -> list[Result]:
    results = []
    for prop in PROPERTIES:
        if only and prop.id not in only:
            continue
        n = examples if prop.id != "U-long" else max(2, examples // 10)
        r = run_property(prop, target, variant, examples=n, seed=seed, require=require)
        if xfails and prop.id in xfails and r.status == "fail":
            r.status = "xfail"
        results.append(r)
        if progress:
            progress(r)
    return results
