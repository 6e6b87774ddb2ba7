"""What the suite hands a target, and what it gets back.

A :class:`Case` is a whole trajectory's inputs, generated on the host with
NumPy: initial weights, one gradient list per step, and hyperparameters
exactly as a user would pass them.  A target adapter runs it and returns a
:class:`Trajectory`: the weights after every step and, where the target
exposes them, its moment buffers, mapped to the paper's symbols ``m`` and ``u``.

Names (see ``docs/spec.md``): a *backend* is an array library our code runs
on; a *target* is an Adamax implementation under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["CAPABILITIES", "Case", "SparseGrad", "Target", "Trajectory", "Unsupported"]

#: What a case may need from a target.  A target lacking one reports it as
#: "not supported" (unless the user ``--require``s it).
CAPABILITIES = (
    "dense",            # dense gradients (every target)
    "sparse",           # IndexedSlices-like row gradients
    "clipvalue",        # built-in clipvalue
    "clipnorm",         # built-in per-tensor clipnorm
    "global_clipnorm",  # built-in global clipnorm
    "schedule",         # learning rate given as a Keras-style schedule config
    "callable_lr",      # learning rate given as a zero-argument callable (its value at each step)
    "decay",            # Keras 2.9's legacy ``decay`` argument: lr / (1 + decay * iterations)
    "state",            # moment buffers m and u readable after each step
    "checkpoint",       # save state, restore into a fresh instance, continue
    "float16",
    "bfloat16",
    "float64",
    "validation",       # a constructor the suite can call with bad arguments (adapter ``make(hyper)``)
    "none_grad",        # a parameter may have no gradient (``None``) in a step
    "clip_combination", # two clip arguments set together (Keras 2.9 allows it, Keras 3 does not)
    "groups",           # per-parameter hyperparameters (torch parameter groups)
    "inputs",           # the adapter observes whether the target modifies its gradient inputs
)


class Unsupported(Exception):
    """Raised by an adapter for a case that needs a capability the target lacks."""

    def __init__(self, capability: str, detail: str = "") -> None:
        super().__init__(f"{capability}: {detail}" if detail else capability)
        self.capability = capability


@dataclass(frozen=True)
class SparseGrad:
    """Rows of a gradient: ``values[j]`` belongs to row ``indices[j]`` (duplicates sum)."""

    indices: np.ndarray  # 1-d int32 or int64 (the two an IndexedSlices takes)
    values: np.ndarray   # (len(indices), *param.shape[1:]), the case dtype
    dense_shape: tuple[int, ...]

    def dense(self) -> np.ndarray:
        out = np.zeros(self.dense_shape, dtype=np.float64)
        np.add.at(out, self.indices, self.values.astype(np.float64))
        return out


@dataclass(frozen=True)
class Case:
    """One trajectory's inputs.

    ``dtype`` is the weight dtype name (``"float32"``, ``"float64"``, ``"float16"``,
    ``"bfloat16"``); every array in ``params`` and ``grads`` already holds values
    representable in it (bfloat16 values are stored as float32 arrays).
    ``grads[k][i]`` is the gradient of parameter ``i`` at step ``k+1``: an array,
    a :class:`SparseGrad`, or ``None`` (no gradient for that parameter).
    ``hyper`` holds ``learning_rate`` (float, a schedule config dict
    ``{"class_name": ..., "config": {...}}``, or a tuple of per-step floats: a zero-argument
    callable whose value at step ``k+1`` is ``learning_rate[k]``, which the adapter builds and
    re-evaluates every step; extra values are ignored), ``beta_1``, ``beta_2``, ``epsilon``
    (``None`` or ``0`` under a profile with an epsilon fallback: clause H-1) and optionally
    ``clipvalue``, ``clipnorm``, ``global_clipnorm`` and ``decay`` (Keras 2.9's legacy
    argument, ``lr / (1 + decay * iterations)``; ``0`` or absent: none).
    ``checkpoint_at``: if set, the target saves after that many steps, restores
    into a fresh instance and continues (capability ``checkpoint``).
    """

    params: list[np.ndarray]
    grads: list[list[Any]]
    hyper: dict[str, Any]
    dtype: str = "float32"
    checkpoint_at: int | None = None
    label: str = ""
    #: Per-parameter hyperparameter overrides (parameter groups), or ``None``.
    group_hyper: tuple[dict[str, Any], ...] | None = None

    @property
    def steps(self) -> int:
        return len(self.grads)

    def needs(self) -> set[str]:
        """Capabilities this case requires."""
        need = {"dense"}
        if any(isinstance(g, SparseGrad) for step in self.grads for g in step):
            need.add("sparse")
        if any(g is None for step in self.grads for g in step):
            need.add("none_grad")
        clips = [k for k in ("clipvalue", "clipnorm", "global_clipnorm") if self.hyper.get(k) is not None]
        need.update(clips)
        if len(clips) > 1:
            need.add("clip_combination")
        if self.group_hyper is not None:
            need.add("groups")
        lr = self.hyper.get("learning_rate")
        if isinstance(lr, dict):
            need.add("schedule")
        elif isinstance(lr, list | tuple):
            need.add("callable_lr")
        if self.hyper.get("decay"):
            need.add("decay")
        if self.dtype in ("float16", "bfloat16", "float64"):
            need.add(self.dtype)
        if self.checkpoint_at is not None:
            need.add("checkpoint")
        return need


@dataclass
class Trajectory:
    """What a target did: ``params[k]`` are the weights after step ``k+1``.

    ``m[k]`` / ``u[k]`` are the first moment and infinity norm after step
    ``k+1`` in the paper's convention (torch ``exp_avg``/``exp_inf``, optax
    ``mu``/``nu``, Keras ``m``/``v``), or ``None`` when the target hides them.
    Arrays are NumPy float64 copies of the target's values (exact: every
    float16/bfloat16/float32 value is a float64 value).
    """

    params: list[list[np.ndarray]] = field(default_factory=list)
    m: list[list[np.ndarray] | None] = field(default_factory=list)
    u: list[list[np.ndarray] | None] = field(default_factory=list)
    dtypes: list[str] = field(default_factory=list)  # the dtype the target's weights ended in
    #: Misbehaviour the adapter observed, e.g. "step 2: the gradient of params[0] was modified".
    faults: list[str] = field(default_factory=list)
    #: Device of each parameter after the run, where the adapter can tell (array-API targets).
    devices: list[str] = field(default_factory=list)
    #: Device each parameter was created on, to compare with ``devices``.
    devices_in: list[str] = field(default_factory=list)


class Target(Protocol):
    """An Adamax implementation under test, wrapped by an adapter."""

    name: str
    capabilities: frozenset[str]

    def run(self, case: Case) -> Trajectory:
        """Run the case from fresh state; raise :class:`Unsupported` if it cannot."""
        ...


# Optional adapter method, used by property ``V-args`` (capability ``validation``):
#   make(hyper: dict) -> optimizer
# builds the target from the suite's argument names (learning_rate, beta_1, beta_2,
# epsilon, clip*, or any other key passed through as a keyword) and lets the target's
# own constructor raise.
