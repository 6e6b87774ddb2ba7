"""Judging a trajectory with the reference: the check of every property without a rule of its own.

A case is judged whole, or split per parameter for parameter groups (G-1, each with its own
hyperparameters) and, under a per-parameter step counter, for missing gradients (S-2, each
parameter with its own step count).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adamax_spec.reference.verdict import judge

from ..case import Case, Target, Trajectory
from ..property import Finding, profile_rules
from .learning_rates import check_decay_applies
from .missing_gradients import unchanged_failure

__all__ = ["check_reference", "reference_check"]


def _sub(case: Case, traj: Trajectory, i: int, ks: list[int]) -> tuple[Case, Trajectory]:
    hyper = dict(case.hyper)
    if case.group_hyper is not None:
        hyper.update(case.group_hyper[i])
    if isinstance(hyper["learning_rate"], list | tuple):  # per-step values: those of the steps kept
        hyper["learning_rate"] = tuple(hyper["learning_rate"][k] for k in ks)
    c = Case([case.params[i]], [[case.grads[k][i]] for k in ks], hyper, case.dtype, label=case.label)
    t = Trajectory(params=[[traj.params[k][i]] for k in ks])
    t.m = [None if k >= len(traj.m) or traj.m[k] is None else [traj.m[k][i]] for k in ks]  # type: ignore[index]
    t.u = [None if k >= len(traj.u) or traj.u[k] is None else [traj.u[k][i]] for k in ks]  # type: ignore[index]
    return c, t


def check_reference(case: Case, traj: Trajectory, variant: str) -> Finding | None:
    """The reference's verdict; a case is split per parameter for parameter groups and,
    under a per-parameter step counter, for missing gradients."""
    rules = profile_rules(variant)
    per_param = rules is not None and rules.step_counter == "parameter" and "none_grad" in case.needs()
    if case.group_hyper is None and not per_param:
        v = judge(case, traj, variant)
        return None if v.ok else Finding(v.failures[0].describe(), case, v)
    for i in range(len(case.params)):
        ks = list(range(case.steps))
        if per_param:
            for k in range(case.steps):
                if case.grads[k][i] is None:
                    bad = unchanged_failure(case, traj, i, k)
                    if bad:
                        return Finding(bad, case)
            ks = [k for k in ks if case.grads[k][i] is not None]
        if not ks:
            continue
        c, t = _sub(case, traj, i, ks)
        v = judge(c, t, variant)
        if not v.ok:
            f = v.failures[0]
            where = f"step {ks[f.step - 1] + 1}, params[{i}]{list(f.index)}"
            msg = f.describe().replace(f"step {f.step}, params[0]{list(f.index)}", where)
            note = f" (parameter {i} alone, its step count {f.step})" if per_param else f" (parameter group {i})"
            return Finding(msg + note, case, v)
    return None


def reference_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    """The check of a property whose ``check`` is ``None``: run the target, judge with the reference
    (a case with a ``decay`` is not supported under a profile whose framework has none)."""
    check_decay_applies(case, variant)
    return check_reference(case, run(case), variant)
