"""docs/spec.md, "Inputs, dtype and device": I-1 (inputs left unmodified), D-1 (dtype and device kept).

Both rules are checked on every run of every property, by the engine's run wrapper
(:func:`snapshot` and :func:`same` before and after the target's run, :func:`structure` on the
trajectory it returns); the properties I-1 and D-1 draw cases that exercise them and need the
adapter to observe them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import strategies as S
from ..case import Case, SparseGrad, Target, Trajectory, Unsupported
from ..property import Finding, Property

__all__ = ["D_1", "I_1", "same", "snapshot", "structure"]


def snapshot(case: Case) -> list[Any]:
    """A deep copy of the case's inputs (initial weights and gradients), to compare after a run."""
    return copy.deepcopy([case.params, case.grads])


def same(a: Any, b: Any) -> bool:
    """Bit-identical (NaN equal to NaN), through lists, tuples and sparse gradients."""
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, SparseGrad):
        return same([a.indices, a.values], [b.indices, b.values])
    if a is None or b is None:
        return a is b
    x, y = np.asarray(a), np.asarray(b)
    return x.shape == y.shape and bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))


def structure(case: Case, traj: Trajectory) -> str | None:
    """What is wrong with the shape of a trajectory, or ``None``."""
    if len(traj.params) != case.steps:
        return f"target returned {len(traj.params)} steps, expected {case.steps}"
    for k, ps in enumerate(traj.params):
        if len(ps) != len(case.params):
            return f"step {k + 1}: target returned {len(ps)} parameters, expected {len(case.params)}"
        for i, p in enumerate(ps):
            if np.shape(p) != np.shape(case.params[i]):
                return f"step {k + 1}: params[{i}] has shape {np.shape(p)}, expected {np.shape(case.params[i])}"
    if traj.faults:
        return traj.faults[0]
    if traj.dtypes and any(d != case.dtype for d in traj.dtypes):
        bad = next(d for d in traj.dtypes if d != case.dtype)
        return f"the weights came back as {bad}, the case's dtype is {case.dtype} (D-1)"
    if traj.devices and traj.devices_in and traj.devices != traj.devices_in:
        return f"the weights moved from device {traj.devices_in} to {traj.devices} (D-1)"
    return None


def _dtype_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    traj = run(case)  # structure() already compared dtypes and devices
    if not traj.dtypes and not traj.devices:
        raise Unsupported("dtype report", f"the {target.name} adapter does not report dtypes")
    return None


def _inputs_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    run(case)  # the snapshot comparison and the adapter's own faults are in run()
    return None


I_1 = Property("I-1", "gradients and the caller's inputs are left unmodified",
               frozenset({"inputs"}), lambda: S.input_cases(), check=_inputs_check)
D_1 = Property("D-1", "weights keep their dtype (and device) through every step",
               frozenset({"dense"}), lambda: S.dense_cases(dtypes=("float16", "bfloat16", "float32", "float64"),
                                                            max_steps=3), check=_dtype_check)
