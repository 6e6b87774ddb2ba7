"""Adapter for ``torch.optim.Adamax`` and torch optimizers with the same constructor.

The optimizer is driven the way a user drives it: gradients are assigned to
``p.grad`` (``None`` for a parameter without one) and ``opt.step()`` is called.
Moments are read from ``opt.state[p]["exp_avg"]`` (m) and ``["exp_inf"]`` (u).

torch.optim has no gradient clipping, no Keras-style schedules and no sparse
Adamax, so cases needing those are refused with :class:`Unsupported` rather
than emulated: the adapter never changes the maths.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..case import Case, SparseGrad, Trajectory, Unsupported
from . import _common

__all__ = ["TorchOptimAdapter", "adapter_for"]

_DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64"}
_CONSTRUCTOR = ("params", "lr", "betas", "eps")


def _torch() -> Any:
    import torch

    return torch


class TorchOptimAdapter:
    """Runs a :class:`~adamax_spec.conformance.case.Case` through a torch optimizer.

    ``optimizer_cls`` defaults to ``torch.optim.Adamax``; any class taking
    ``(params, lr=, betas=, eps=)`` works.  ``foreach`` (``None`` = torch's own
    default) is passed on only when set, and only to a class that accepts it.
    ``options``: the constructor's other keyword arguments (``weight_decay=``, a
    required argument of a custom class), passed to every construction; one the
    constructor does not take or rejects is an :class:`~._common.OptionError`.
    """

    def __init__(
        self,
        optimizer_cls: type | None = None,
        *,
        foreach: bool | None = None,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        torch = _torch()
        cls = torch.optim.Adamax if optimizer_cls is None else optimizer_cls
        parameters = inspect.signature(cls).parameters
        missing = [p for p in _CONSTRUCTOR if p not in parameters]
        if missing:
            raise TypeError(f"{cls!r} does not take {missing}: not a torch.optim.Adamax-like class")
        if foreach is not None and "foreach" not in parameters:
            raise TypeError(f"{cls.__qualname__} does not accept foreach=")
        self.optimizer_cls = cls
        self.foreach = foreach
        if name is None:
            name = "torch.optim.Adamax" if cls is torch.optim.Adamax else (
                f"{cls.__module__}.{cls.__qualname__}"
            )
            if foreach is not None:
                name += f"[foreach={foreach}]"
            if options:
                name += f"({_common.describe_options(dict(options))})"
        self.name = name
        suite = _CONSTRUCTOR + (("foreach",) if foreach is not None else ())
        self.options = _common.constructor_options(cls, options, suite=suite, what=name)
        _common.try_options(self.make, self.options, name)
        self._capabilities: frozenset[str] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Dtypes found by a one-step probe.  ``validation``: the constructor can be called with
        bad arguments (property V-args judges what it does with them)."""
        if self._capabilities is None:
            caps = {"dense", "state", "checkpoint", "none_grad", "groups", "inputs", "validation"}
            caps |= _common.probe_dtypes(self._run, ("float16", "bfloat16", "float64"))
            self._capabilities = frozenset(caps)
        return self._capabilities

    def make(self, hyper: dict[str, Any]) -> Any:
        """The optimizer on one dummy parameter, from the suite's argument names (property V-args).

        Keys other than learning_rate, beta_1, beta_2, epsilon are passed through as keywords,
        so the constructor's own handling of an unknown argument is what is observed."""
        torch = _torch()
        h = dict(hyper)
        kwargs = {**self.options, "lr": h.pop("learning_rate"), "betas": (h.pop("beta_1"), h.pop("beta_2")),
                  "eps": h.pop("epsilon"), **h}
        return self.optimizer_cls([torch.zeros(2, requires_grad=True)], **kwargs)

    # -- running ---------------------------------------------------------------------------

    def run(self, case: Case) -> Trajectory:
        hyper = _common.check_case(case)
        kind = _common.learning_rate_kind(hyper["learning_rate"])
        if kind == "schedule":
            raise Unsupported("schedule", "torch LR schedulers have other semantics; not emulated")
        if kind == "callable":
            raise Unsupported("callable_lr", "torch.optim takes a float or tensor lr")
        _common.reject_clipping(hyper, "torch.optim")
        _common.reject_decay(hyper, "torch.optim (its weight_decay is another thing)")
        return self._run(case)

    def _kwargs(self, hyper: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            **self.options,
            "lr": hyper["learning_rate"],
            "betas": (hyper["beta_1"], hyper["beta_2"]),
            "eps": hyper["epsilon"],
        }
        if self.foreach is not None:
            kwargs["foreach"] = self.foreach
        return kwargs

    def _run(self, case: Case) -> Trajectory:
        torch = _torch()
        dtype = getattr(torch, _DTYPES[case.dtype])
        params = []
        for i, p in enumerate(case.params):
            t = _tensor(torch, p, dtype)
            _common.check_exact(f"param {i}", p, _numpy(torch, t))
            params.append(t.requires_grad_(True))
        kwargs = self._kwargs(case.hyper)
        groups: Any = params
        if case.group_hyper is not None:
            # One parameter group per parameter, each with its own lr, betas, eps (G-1).
            groups = []
            for p, gh in zip(params, case.group_hyper, strict=True):
                own = self._kwargs({**case.hyper, **gh})
                own.pop("foreach", None)
                for key in self.options:  # the options apply to the optimizer, not per group
                    own.pop(key, None)
                groups.append({"params": [p], **own})
        opt = self.optimizer_cls(groups, **kwargs)
        before, after_last = _common.checkpoint_points(case)
        traj = Trajectory()
        for k, step in enumerate(case.grads):
            if k == before:
                opt = self._restore(opt, groups, kwargs)
            given = []
            for p, g in zip(params, step, strict=True):
                p.grad = None if g is None else _grad(torch, g, p)
                given.append(None if p.grad is None or p.grad.is_sparse else p.grad.detach().clone())
            try:
                opt.step()
            except RuntimeError as e:
                _reraise_unsupported(e, case)
                raise
            for i, (p, kept) in enumerate(zip(params, given, strict=True)):
                if kept is not None and (p.grad is None or not torch.equal(p.grad, kept)) and not (
                        p.grad is not None and bool(torch.isnan(kept).any())
                        and torch.allclose(p.grad, kept, rtol=0, atol=0, equal_nan=True)):
                    traj.faults.append(f"step {k + 1}: opt.step() modified (or dropped) the .grad of "
                                       f"params[{i}] (I-1)")
            traj.params.append([_numpy(torch, p) for p in params])
            m, u = [], []
            for p in params:
                state = opt.state.get(p) or {}
                zeros = np.zeros(tuple(p.shape))
                m.append(_numpy(torch, state["exp_avg"]) if "exp_avg" in state else zeros)
                u.append(_numpy(torch, state["exp_inf"]) if "exp_inf" in state else zeros.copy())
            traj.m.append(m)
            traj.u.append(u)
        if after_last:
            opt = self._restore(opt, groups, kwargs)
        traj.dtypes = [str(p.dtype).removeprefix("torch.") for p in params]
        return traj

    def _restore(self, opt: Any, params: Any, kwargs: dict[str, Any]) -> Any:
        """torch's own mechanism: ``state_dict()``, a fresh optimizer, ``load_state_dict``."""
        saved = copy.deepcopy(opt.state_dict())
        fresh = self.optimizer_cls(params, **kwargs)
        fresh.load_state_dict(saved)
        return fresh


def _tensor(torch: Any, a: np.ndarray, dtype: Any) -> Any:
    # bfloat16 cases arrive as float32 arrays holding bf16 values: exact conversion.
    return torch.from_numpy(np.array(a, copy=True)).to(dtype)


def _grad(torch: Any, g: Any, p: Any) -> Any:
    if isinstance(g, SparseGrad):
        # A real sparse COO gradient: the optimizer decides whether it copes.
        indices = torch.from_numpy(np.asarray(g.indices, dtype=np.int64)).reshape(1, -1)
        values = _tensor(torch, g.values, p.dtype)
        return torch.sparse_coo_tensor(
            indices, values, tuple(g.dense_shape), dtype=p.dtype, check_invariants=True
        )
    t = _tensor(torch, g, p.dtype)
    _common.check_exact("gradient", g, _numpy(torch, t))
    return t


def _numpy(torch: Any, t: Any) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _reraise_unsupported(e: RuntimeError, case: Case) -> None:
    msg = str(e)
    if "sparse" in msg.lower() and _common.has_sparse(case):
        raise Unsupported("sparse", msg) from e
    if "not implemented for" in msg and case.dtype in ("float16", "bfloat16", "float64"):
        raise Unsupported(case.dtype, msg) from e


def adapter_for(obj: Any, options: Mapping[str, Any] | None = None) -> TorchOptimAdapter | None:
    """A :class:`TorchOptimAdapter` if ``obj`` is a torch optimizer class shaped like Adamax
    (``options``: its constructor's other keyword arguments).

    Looks at ``sys.modules`` only: if torch was never imported, ``obj`` cannot
    be a torch optimizer and nothing is imported.
    """
    torch = _common.loaded("torch")
    if torch is None or not isinstance(obj, type):
        return None
    try:
        if not issubclass(obj, torch.optim.Optimizer):
            return None
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError, AttributeError):
        return None
    if not all(p in parameters for p in _CONSTRUCTOR):
        return None
    return TorchOptimAdapter(obj, options=options)
