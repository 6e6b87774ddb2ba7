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
_KNOWN = frozenset((*_REQUIRED, *CLIP_KEYS, "decay"))


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


def reject_decay(hyper: dict[str, Any], target: str) -> None:
    """For a target without Keras 2.9's legacy ``decay`` argument: refuse rather than emulate."""
    if hyper.get("decay"):
        raise Unsupported("decay", f"{target} has no legacy decay argument")


def learning_rate_kind(lr: Any) -> str:
    """``"schedule"`` (a Keras-style config dict), ``"callable"`` (a callable, or a case's tuple of
    per-step values, which :class:`StepwiseLearningRate` turns into one) or ``"value"``."""
    if isinstance(lr, dict):
        return "schedule"
    if callable(lr) or isinstance(lr, list | tuple):
        return "callable"
    return "value"


class StepwiseLearningRate:
    """A case's per-step learning rates as the zero-argument callable a user passes: it returns
    ``values[step]``, where the adapter sets ``step`` (the number of steps applied) before each
    step; the target may call it any number of times per step."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = tuple(float(v) for v in values)
        self.step = 0

    def __call__(self) -> float:
        return self.values[self.step]

    def __repr__(self) -> str:
        return f"StepwiseLearningRate({self.values!r})"


def learning_rate_arg(lr: Any) -> Any:
    """What a target is given for a case's ``learning_rate``: a tuple of per-step values becomes
    a :class:`StepwiseLearningRate` (set its ``step`` before each step); anything else as is."""
    return StepwiseLearningRate(lr) if isinstance(lr, list | tuple) else lr


def set_step(lr: Any, step: int) -> None:
    """Before a step: a :class:`StepwiseLearningRate` returns the value of step ``step + 1``."""
    if isinstance(lr, StepwiseLearningRate):
        lr.step = step


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


def index_array(indices: Any) -> np.ndarray:
    """A sparse gradient's indices as NumPy, in their own dtype where it is int32 or int64 (the two
    an ``IndexedSlices`` takes), else int64."""
    a = np.asarray(indices)
    return a if a.dtype in (np.int32, np.int64) else a.astype(np.int64)


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


# -- constructor options (``load_target(..., options=)``, the CLI's ``--option KEY=VALUE``) -------


class OptionError(TypeError):
    """An option for a target's constructor or factory is one it does not take, one the suite
    sets for every case, or one the constructor rejects; the message names it."""


#: hyperparameters a trial construction uses to check options (Keras' defaults)
TRIAL_HYPER = {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}


def describe_options(options: dict[str, Any]) -> str:
    """``k=v, ...`` as a call would spell them (for names and messages)."""
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


def constructor_options(fn: Any, options: Any, *, suite: Sequence[str], what: str,
                        required: bool = True) -> dict[str, Any]:
    """``options`` (a mapping or ``None``) checked against ``fn``'s signature, as a dict.

    An :class:`OptionError` names the option that ``fn`` does not take (unless it takes
    ``**kwargs``), one the suite sets for every case (``suite``: those are what is under test),
    or (``required``) an argument without default that neither the suite nor the options give."""
    import inspect

    opts = dict(options or {})
    set_by_suite = [k for k in opts if k in suite]
    if set_by_suite:
        raise OptionError(f"{what}: option {set_by_suite[0]!r} is set by the suite for every case (it is "
                          f"what the suite checks: {', '.join(suite)}); options are the constructor's other "
                          "arguments")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to check: the constructor will say
        return opts
    kinds = inspect.Parameter
    takes_any = any(p.kind is kinds.VAR_KEYWORD for p in params.values())
    names = [n for n, p in params.items() if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    unknown = [k for k in opts if k not in names and not takes_any]
    if unknown:
        others = [n for n in names if n not in suite]
        raise OptionError(f"{what} does not take option {unknown[0]!r}; its other arguments: "
                          f"{', '.join(others) or 'none'}")
    missing = [n for n in names if params[n].default is kinds.empty and n not in suite and n not in opts]
    if required and missing:
        raise OptionError(f"{what} requires argument {missing[0]!r}, which the suite does not set: "
                          f"give it as an option ({missing[0]}=VALUE)")
    return opts


def try_options(make: Callable[[dict[str, Any]], Any], options: dict[str, Any], what: str) -> None:
    """Construct once with :data:`TRIAL_HYPER` and ``options`` (through ``make``), so that a
    constructor that rejects an option (a bad value, a name its ``**kwargs`` refuses) is an
    :class:`OptionError` naming the options at load time, not a failure of every property."""
    if not options:
        return
    try:
        make(dict(TRIAL_HYPER))
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise OptionError(f"{what} rejected the option{'s' if len(options) > 1 else ''} "
                          f"{describe_options(options)}: {type(e).__name__}" + (f": {first}" if first else "")) \
            from None
