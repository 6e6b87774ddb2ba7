"""Run properties against a target and collect results (the CLI and pytest plugin share this).

A property draws cases from a strategy, runs the target, and asks the
reference for a verdict (or, for a few properties, checks a rule that needs no
reference: argument validation, non-finite propagation, state invariants,
untouched inputs, dtypes).  Hypothesis shrinks a failure to a small case,
which the report prints as a reproducer.

The engine never raises for a target's misbehaviour: a target that raises,
hangs (per-example ``timeout``), returns the wrong number of steps or shapes,
changes the dtype, or modifies its inputs gets a ``fail`` with that reason; a
crash of the suite itself (e.g. in the reference) is an ``error`` naming it.
"""

from __future__ import annotations

import hashlib
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

from .case import Case, Target, Trajectory, Unsupported
from .diagnosis import diagnose
from .properties import PROPERTIES
from .properties.inputs_dtype_device import same, snapshot, structure
from .properties.judging import reference_check
from .property import Finding, Property
from .reproducer import reproducer, verdict_dict
from .timeout import TimedOut, call

__all__ = ["Result", "run_all", "run_property"]


class _Failed(AssertionError):
    pass


def _runner(target: Target, timeout: float | None) -> Callable[[Case], Trajectory]:
    """``run(case)``: the target under the time limit, then the checks every property shares."""

    def run(case: Case) -> Trajectory:
        before = snapshot(case)
        try:
            traj = call(lambda: target.run(case), timeout)
        except (Unsupported, TimedOut):
            raise
        except Exception as e:  # the target crashed: that is a finding, not our crash
            msg = "".join(traceback.format_exception_only(e)).strip()
            raise _Failed(f"target raised {msg}") from None
        if not same(before, snapshot(case)):
            raise _Failed("the target modified the case's input arrays (gradients or initial weights) (I-1)")
        problem = structure(case, traj)
        if problem:
            raise _Failed(problem)
        return traj

    return run


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
    diagnosis: str = ""


def run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                 require: frozenset[str] = frozenset(), timeout: float | None = None,
                 rerun: str = "") -> Result:
    """Run one property; never raises for a target's misbehaviour (nor for the suite's own bugs)."""
    t0 = time.perf_counter()
    try:
        return _run_property(prop, target, variant, examples=examples, seed=seed, require=require,
                             timeout=timeout, rerun=rerun, t0=t0)
    except Exception as e:  # an internal error must not lose the other results
        detail = "suite error (not a finding about the target): " + "".join(
            traceback.format_exception_only(e)).strip()
        return Result(prop.id, prop.title, "error", 0, time.perf_counter() - t0, detail)


def _run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                  require: frozenset[str], timeout: float | None, rerun: str, t0: float) -> Result:
    missing = prop.needs - target.capabilities
    if missing and not (missing & require):
        return Result(prop.id, prop.title, "not supported",
                      detail=f"{target.name} lacks {', '.join(sorted(missing))}")
    state: dict[str, Any] = {"ran": 0, "unsupported": None, "finding": None, "shrinks": None}
    failed: dict[bytes, Finding] = {}
    run = _runner(target, timeout)
    checker = prop.check or reference_check

    @hypothesis_seed(seed)
    @settings(max_examples=examples, derandomize=False, database=None, deadline=None,
              print_blob=False, suppress_health_check=list(HealthCheck))
    @given(prop.strategy())
    def check(drawn: Any) -> None:
        if state["finding"] is not None and state["finding"].kind == "timeout":
            raise _Failed(state["finding"].message)  # a hung target: no more waiting while hypothesis shrinks
        case = drawn[0] if isinstance(drawn, tuple) and drawn and isinstance(drawn[0], Case) else drawn
        key = hashlib.sha256(pickle.dumps(drawn)).digest()
        if key in failed:  # hypothesis replays its final (smallest) failing example
            state["finding"] = failed[key]
            raise _Failed(failed[key].message)
        if state["shrinks"] is not None:
            if state["shrinks"] >= prop.shrink:
                return  # shrink budget spent: no more target runs, the smallest failure so far stands
            state["shrinks"] += 1
        try:
            finding = checker(target, drawn, variant, run)
        except Unsupported as e:
            if e.capability in require:
                state["finding"] = Finding(f"required capability {e.capability} unsupported: {e}",
                                           case if isinstance(case, Case) else None)
                raise _Failed(str(e)) from None
            state["unsupported"] = str(e)
            return
        except TimedOut as e:
            state["finding"] = Finding(str(e), case if isinstance(case, Case) else None, kind="timeout")
            raise _Failed(str(e)) from None
        except _Failed as e:
            state["finding"] = Finding(str(e), case if isinstance(case, Case) else None)
            failed[key] = state["finding"]
            state["shrinks"] = state["shrinks"] or 0
            raise
        except Exception as e:  # the suite's own bug: say so, keep going
            msg = "".join(traceback.format_exception_only(e)).strip()
            state["finding"] = Finding(f"suite error (not a finding about the target): {msg}",
                                       case if isinstance(case, Case) else None, kind="error")
            raise _Failed(msg) from None
        state["ran"] += 1
        if finding is not None:
            state["finding"] = finding
            failed[key] = finding
            state["shrinks"] = state["shrinks"] or 0
            raise _Failed(finding.message)

    try:
        check()
        status = "pass" if state["ran"] else "not supported"
        detail = "" if state["ran"] else f"every example was unsupported: {state['unsupported']}"
    except (_Failed, AssertionError, ExceptionGroup):
        status, detail = "fail", ""
    finding: Finding | None = state["finding"]
    if status == "fail" and finding is None:
        status, detail = "error", "suite error: hypothesis reported a failure without a finding"
    r = Result(prop.id, prop.title, status, state["ran"], time.perf_counter() - t0, detail)
    if status == "fail" and finding is not None:
        r.status = "error" if finding.kind == "error" else "fail"
        r.detail = finding.message
        if finding.case is not None:
            if finding.verdict is not None and finding.kind == "fail" and prop.check is None:
                try:
                    traj = call(lambda: target.run(finding.case), timeout)  # type: ignore[arg-type]
                    finding.diagnosis = diagnose(finding.case, traj, variant, finding.verdict,
                                                 run=lambda c: call(lambda: target.run(c), timeout))
                except Exception:  # diagnosis is best effort
                    finding.diagnosis = diagnose(finding.case, None, variant, finding.verdict)
            r.reproducer = reproducer(finding.case, variant, finding.verdict, seed=seed, rerun=rerun,
                                      message=finding.message, diagnosis=finding.diagnosis)
        if finding.verdict is not None:
            r.verdict = verdict_dict(finding.verdict)
        if finding.diagnosis:
            r.diagnosis = finding.diagnosis
            r.detail += f"\ndiagnosis: {finding.diagnosis}"
    return r


def run_all(target: Target, variant: str, *, examples: int = 25, seed: int = 0,
            only: list[str] | None = None, require: frozenset[str] = frozenset(),
            xfails: set[str] | None = None, timeout: float | None = None, rerun: str = "",
            progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every property in order; ``progress`` sees each result as soon as it is known.

    ``only`` and ``xfails`` hold property ids as :data:`~.properties.IDS` spells them (the front
    ends turn deprecated ids into those with :func:`~.properties.resolve`)."""
    results = []
    for prop in PROPERTIES:
        if only and prop.id not in only:
            continue
        n = prop.scale(examples)
        again = f"{rerun} --only {prop.id}" if rerun else ""
        r = run_property(prop, target, variant, examples=n, seed=seed, require=require,
                         timeout=timeout, rerun=again)
        if xfails and prop.id in xfails and r.status == "fail":
            r.status = "xfail"
        results.append(r)
        if progress:
            progress(r)
    return results
