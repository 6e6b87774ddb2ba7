"""Adapter for a raw step function, the shape a fused-kernel author has at hand.

The function is called once per parameter per step::

    w, m, u = step(w, g, m, u, t=t, lr=lr, beta_1=b1, beta_2=b2, epsilon=eps)

with NumPy arrays of the case dtype (m and u start at zero, ``t`` counts from 1,
the hyperparameters are the Python floats the user passed) and must return the
new arrays.  It may update ``w``, ``m`` and ``u`` in place; it must not modify
``g`` (reported as a fault, property I-1).  A parameter without gradient
(``None``) is not passed to the function in that step.  ``t`` counts as the profile's
optimizer does (``Profile.step_counter``, clause S-2): every step (one counter per optimizer,
the default), or, under ``"parameter"`` (torch), that parameter's own steps, so a step in
which it had no gradient does not advance its ``t``.  Dense gradients and constant learning
rates only.  Options (``load_target(..., options=)``) are passed to every call as further keywords.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..case import Case, Trajectory, Unsupported
from . import _common

__all__ = ["FunctionTarget"]

StepFn = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
#: the keywords the suite passes to every call (an option may not be one of them)
SUITE_KEYWORDS = ("t", "lr", "beta_1", "beta_2", "epsilon")


def _np_dtype(name: str) -> Any:
    if name == "bfloat16":
        raise Unsupported("bfloat16", "NumPy has no bfloat16")
    return np.dtype(name)


class FunctionTarget:
    """Wraps ``step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon) -> (w, m, u)``."""

    capabilities = frozenset({"dense", "state", "float16", "float64", "none_grad", "inputs"})

    def __init__(self, step: StepFn, name: str | None = None, *, options: Mapping[str, Any] | None = None,
                 step_counter: str = "optimizer") -> None:
        """``step_counter``: ``"optimizer"`` (``t`` counts every step) or ``"parameter"`` (each
        parameter's ``t`` counts the steps that gave it a gradient), as the profile's record says."""
        if step_counter not in ("optimizer", "parameter"):
            raise ValueError(f"step_counter must be 'optimizer' or 'parameter', got step_counter={step_counter!r}")
        self.step = step
        self.step_counter = step_counter
        self.name: str = name or str(getattr(step, "__name__", "function"))
        if options:
            self.name += f"({_common.describe_options(dict(options))})"
        self.options = _common.constructor_options(step, options, suite=SUITE_KEYWORDS, what=self.name,
                                                   required=False)

    def run(self, case: Case) -> Trajectory:
        need = case.needs() - self.capabilities
        if need:
            raise Unsupported(sorted(need)[0], f"{self.name} is a raw dense step function")
        dt = _np_dtype(case.dtype)
        h = case.hyper
        w = [np.array(p, dtype=dt) for p in case.params]
        m = [np.zeros_like(p) for p in w]
        u = [np.zeros_like(p) for p in w]
        traj = Trajectory()
        counts = [0] * len(w)  # each parameter's steps with a gradient so far
        for k, grads in enumerate(case.grads):
            for i, g in enumerate(grads):
                if g is None:
                    continue
                counts[i] += 1
                garr = np.array(g, dtype=dt)
                kept = garr.copy()
                w[i], m[i], u[i] = self.step(
                    w[i], garr, m[i], u[i], t=counts[i] if self.step_counter == "parameter" else k + 1,
                    lr=h["learning_rate"], beta_1=h["beta_1"], beta_2=h["beta_2"],
                    epsilon=h["epsilon"], **self.options,
                )
                if not np.array_equal(garr, kept, equal_nan=True):
                    traj.faults.append(f"step {k + 1}: the step function modified its gradient "
                                       f"argument g of params[{i}] (I-1)")
            # copies: the function may update its arrays in place in later steps
            traj.params.append([np.array(x, dtype=np.float64, copy=True) for x in w])
            traj.m.append([np.array(x, dtype=np.float64, copy=True) for x in m])
            traj.u.append([np.array(x, dtype=np.float64, copy=True) for x in u])
        traj.dtypes = [str(np.asarray(x).dtype) for x in w]
        return traj
