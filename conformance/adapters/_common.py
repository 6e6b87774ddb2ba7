"""Plumbing shared by the peer adapters.

Nothing here imports a third-party library: each adapter imports its own
framework lazily, so importing an adapter module costs nothing and a framework
that is not installed only matters when its adapter is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from ..case import Case, SparseGrad, Trajectory, Unsupported

CLIP_KEYS = ("clipvalue", "clipnorm", "global_clipnorm")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_REQUIRED = ("learning_rate", "beta_1", "beta_2", "epsilon")
_KNOWN = frozenset(_REQUIRED + CLIP_KEYS)


def loaded(module: str) -> ModuleType | None:
    """The module if something already imported it, else ``None`` (imports nothing)."""
    return sys.modules.get(module)


def quiet_tensorflow() -> None:
    """Ask TensorFlow's C++ logging to stay quiet; call before ``import tensorflow``.

    A value the user already set is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def check_case(case: Case) -> dict[str, Any]:
    """Validate the shape of a case (not its values) and return its ``hyper``.

    Only the structure is checked: hyperparameter *values* go to the target
    unchanged, so that a target's own validation is what the suite observes.
    """
    if case.dtype not in FLOAT_DTYPES:
        raise ValueError(f"unknown case dtype {case.dtype!r}; expected one of {FLOAT_DTYPES}")
    hyper = dict(case.hyper)
    unknown = sorted(set(hyper) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown hyperparameters {unknown}; known: {sorted(_KNOWN)}")
    missing = [k for k in _REQUIRED if k not in hyper]
    if missing:
        raise ValueError(f"missing hyperparameters {missing}")
    n = len(case.params)
    for k, step in enumerate(case.grads):
        if len(step) != n:
            raise ValueError(f"step {k + 1} has {len(step)} gradients for {n} parameters")
    if case.checkpoint_at is not None and not 0 <= case.checkpoint_at <= case.steps:
        raise ValueError(f"checkpoint_at={case.checkpoint_at} outside 0..{case.steps}")
    return hyper


def clip_settings(hyper: dict[str, Any]) -> dict[str, Any]:
    """The clipping arguments the case sets (a ``None`` value means unset)."""
    return {k: hyper[k] for k in CLIP_KEYS if hyper.get(k) is not None}


def reject_clipping(hyper: dict[str, Any], target: str) -> None:
    """For a target without built-in clipping: refuse rather than emulate."""
    for key in clip_settings(hyper):
        raise Unsupported(key, f"{target} has no built-in {key}")


def learning_rate_kind(lr: Any) -> str:
    """``"schedule"`` (a Keras-style config dict), ``"callable"`` or ``"value"``."""
    if isinstance(lr, dict):
        return "schedule"
    if callable(lr):
        return "callable"
    return "value"


def schedule_config(lr: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a ``{"class_name": ..., "config": {...}}`` dict (a deep copy of the config)."""
    import copy

    if set(lr) - {"class_name", "config", "module", "registered_name"} or "class_name" not in lr:
        raise ValueError(f"not a Keras schedule config: {lr!r}")
    return str(lr["class_name"]), copy.deepcopy(dict(lr.get("config") or {}))


def to_float64(x: Any) -> np.ndarray:
    """An exact float64 NumPy copy of a float16/bfloat16/float32/float64 array."""
    return np.array(np.asarray(x), dtype=np.float64, copy=True)


def check_exact(what: str, wanted: np.ndarray, got: Any) -> None:
    """Raise if converting ``wanted`` into the target's dtype changed any value.

    Case arrays already hold values representable in the case dtype, so any
    change means the adapter (or the case) is wrong, never the target.
    """
    a = np.asarray(wanted, dtype=np.float64)
    b = to_float64(got)
    if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
        raise ValueError(f"{what}: converting to the case dtype changed its values")


def probe_case(dtype: str) -> Case:
    """One tiny dense step in ``dtype``: used to detect dtype support by running it."""
    p = np.array([0.5, -1.0], dtype=np.float64 if dtype == "float64" else np.float32)
    g = np.array([0.25, -0.5], dtype=p.dtype)
    if dtype == "float16":
        p, g = p.astype(np.float16), g.astype(np.float16)
    hyper = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    return Case(params=[p], grads=[[g]], hyper=hyper, dtype=dtype, label=f"probe-{dtype}")


def probe_dtypes(run: Callable[[Case], Trajectory], dtypes: Sequence[str]) -> set[str]:
    """The dtypes among ``dtypes`` in which ``run`` completes one step, keeps the weights
    in that dtype and leaves them finite."""
    ok = set()
    for dtype in dtypes:
        try:
            traj = run(probe_case(dtype))
        except Unsupported:
            continue
        finite = all(np.all(np.isfinite(w)) for w in traj.params[-1])
        if finite and traj.dtypes == [dtype]:
            ok.add(dtype)
    return ok


def is_sparse(g: Any) -> bool:
    return isinstance(g, SparseGrad)


def has_sparse(case: Case) -> bool:
    return any(isinstance(g, SparseGrad) for step in case.grads for g in step)


def has_missing(case: Case) -> bool:
    return any(g is None for step in case.grads for g in step)


def checkpoint_points(case: Case) -> tuple[int | None, bool]:
    """(step index before which to checkpoint, whether to checkpoint after the last step)."""
    n = case.checkpoint_at
    if n is None:
        return None, False
    if n == case.steps:
        return None, True
    return n, False
