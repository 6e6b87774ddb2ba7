"""Adapter for adamax_spec's own Adamax on any array-API backend."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ..case import Case, SparseGrad, Trajectory, Unsupported
from . import _common

__all__ = ["BACKENDS", "OursTarget"]

#: backend name -> (module to import, dtype lookup, how to make an array from NumPy)
BACKENDS = ("numpy", "torch", "jax", "array_api_strict", "cupy", "dask")


def _namespace(backend: str) -> Any:
    if backend == "numpy":
        return importlib.import_module("numpy")
    if backend == "torch":
        importlib.import_module("torch")
        return importlib.import_module("array_api_compat.torch")
    if backend == "jax":
        jax = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", True)
        return importlib.import_module("jax.numpy")
    if backend == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if backend == "cupy":
        return importlib.import_module("array_api_compat.cupy")
    if backend == "dask":
        return importlib.import_module("array_api_compat.dask.array")
    raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")


def _values(g: Any) -> Any:
    """The array a gradient holds (an ``IndexedSlices``' values)."""
    from adamax_spec import IndexedSlices

    return g.values if isinstance(g, IndexedSlices) else g


class OursTarget:
    """``adamax_spec.Adamax`` under a profile, run on one backend."""

    def __init__(self, backend: str = "numpy", profile: str = "keras", cls: Any = None,
                 fast: bool | None = None) -> None:
        """``fast``: ``None`` steps with ``Adamax.apply`` as a user would (fast paths on);
        ``True``/``False`` sets ``Adamax.fast`` and, on a backend with mutable arrays, steps
        with ``apply_gradients`` (in place), where the NumPy, torch and CuPy fast paths live."""
        import adamax_spec

        self.backend = backend
        self.xp = _namespace(backend)
        self.profile = profile
        self.cls = cls or adamax_spec.Adamax
        self.fast = fast
        self.in_place = fast is not None and backend in ("numpy", "torch", "cupy")
        self.name = f"adamax_spec[{backend}]" + ("" if fast is None else ",fast" if fast else ",generic")
        caps = {"dense", "sparse", "clipvalue", "clipnorm", "global_clipnorm", "schedule",
                "callable_lr", "decay", "state", "checkpoint", "float16", "float64", "validation", "inputs"}
        if backend in ("torch", "jax"):
            caps.add("bfloat16")
        if backend == "dask":
            caps.discard("sparse")
        if backend == "array_api_strict":
            caps.discard("float16")  # the standard has no float16
        rules = adamax_spec.get_profile(profile)
        # One step counter per optimizer: a per-parameter counter (S-2, torch) is not
        # implemented, so missing gradients are "not supported" there rather than wrong.
        if rules.step_counter == "optimizer":
            caps.add("none_grad")
        if rules.clipping == "keras2":  # keras3 allows one clip argument at a time (C-4)
            caps.add("clip_combination")
        self.capabilities = frozenset(caps)

    def _dtype(self, name: str) -> Any:
        xp = self.xp
        if name == "bfloat16":
            if self.backend == "torch":
                return importlib.import_module("torch").bfloat16
            if self.backend == "jax":
                return importlib.import_module("jax.numpy").bfloat16
            raise Unsupported("bfloat16", f"{self.backend} has no bfloat16")
        if name == "float16" and self.backend == "dask":  # not in the standard's namespace; a NumPy dtype
            return np.float16
        return getattr(xp, name)

    def _arr(self, a: np.ndarray, dtype: Any) -> Any:
        xp = self.xp
        if self.backend == "torch":
            torch = importlib.import_module("torch")
            return torch.from_numpy(np.array(a, dtype=np.float64)).to(dtype)
        if self.backend == "jax":
            # converted on the host (exact: the case's values are representable in the dtype), so
            # that JAX compiles no conversion for each new shape (a transfer is compiled already)
            return xp.asarray(np.asarray(a, dtype=np.float64).astype(dtype))
        return xp.astype(xp.asarray(np.asarray(a, dtype=np.float64)), dtype)

    def _dtype_name(self, x: Any) -> str:
        for name in ("float16", "bfloat16", "float32", "float64"):
            try:
                if x.dtype == self._dtype(name):
                    return name
            except (Unsupported, AttributeError):
                continue
        return str(x.dtype)

    def _device(self, x: Any) -> str:
        from array_api_compat import device

        return str(device(x))

    def _idx(self, a: np.ndarray) -> Any:
        return self.xp.asarray(_common.index_array(a))

    def _host(self, x: Any) -> np.ndarray:
        if self.backend == "torch":
            # a copy: float64 tensors convert to themselves, and in-place steps would rewrite history
            return np.array(x.detach().to(dtype=importlib.import_module("torch").float64).cpu().numpy())
        if self.backend == "array_api_strict":
            x = self.xp.astype(x, self.xp.float64) if x.dtype != self.xp.float64 else x
            return np.asarray(x._array)
        if self.backend == "dask" and hasattr(x, "compute"):
            x = x.compute()
        return np.asarray(x).astype(np.float64)

    def _hosts(self, xs: list[Any]) -> list[np.ndarray]:
        """``_host`` of each of ``xs``; dask computes them in one call, on the synchronous
        scheduler (reading results back: a graph's numbers do not depend on its scheduler)."""
        if self.backend == "dask" and xs:
            xs = list(importlib.import_module("dask").compute(*xs, scheduler="synchronous"))
        return [self._host(x) for x in xs]

    def _restart_graph(self, opt: Any, params: list[Any], values: list[np.ndarray]) -> list[Any]:
        """Dask: this step's params and state, already computed (``values``: params, then m, then
        u, in float64), become the inputs of the next step as fresh arrays with the same chunks
        and dtype, so that each step's graph is one step long (docs/backends.md: persist every step)."""
        da = importlib.import_module("dask.array")
        st, n = opt.state, len(params)

        def fresh(x: Any, v: np.ndarray) -> Any:
            return da.from_array(v.astype(x.dtype), chunks=x.chunks)

        m = [fresh(x, v) for x, v in zip(st.m, values[n:2 * n], strict=True)]
        u = [fresh(x, v) for x, v in zip(st.u, values[2 * n:], strict=True)]
        opt.load_state_dict({"iterations": st.iterations, "m": m, "u": u})
        return [fresh(x, v) for x, v in zip(params, values[:n], strict=True)]

    def make(self, hyper: dict[str, Any]) -> Any:
        import adamax_spec

        h = dict(hyper)
        lr = _common.learning_rate_arg(h.pop("learning_rate"))
        if isinstance(lr, dict):
            lr = adamax_spec.schedules.deserialize(lr)
        kw = {k: v for k, v in h.items() if v is not None}
        opt = self.cls(lr, profile=self.profile, **kw)
        if self.fast is not None:
            opt.fast = self.fast
        return opt

    def run(self, case: Case) -> Trajectory:
        need = case.needs() - self.capabilities
        if need:
            raise Unsupported(sorted(need)[0], f"{self.name} lacks it")
        dt = self._dtype(case.dtype)
        params = [self._arr(p, dt) for p in case.params]
        lr = _common.learning_rate_arg(case.hyper["learning_rate"])
        opt = self.make({**case.hyper, "learning_rate": lr})
        traj = Trajectory(devices_in=[self._device(p) for p in params])
        for k, step in enumerate(case.grads):
            _common.set_step(lr, k)
            if case.checkpoint_at is not None and k == case.checkpoint_at:
                saved = opt.state_dict()
                # a callable learning rate is saved as its current value (as Keras does): give it back
                again = {"learning_rate": lr} if isinstance(lr, _common.StepwiseLearningRate) else {}
                opt = self.cls.from_config({**saved["config"], **again})
                opt.load_state_dict(saved)
                if self.fast is not None:
                    opt.fast = self.fast
            grads: list[Any] = []
            for g in step:
                if g is None:
                    grads.append(None)
                elif isinstance(g, SparseGrad):
                    import adamax_spec

                    values = self._arr(g.values, dt)
                    grads.append(adamax_spec.IndexedSlices(values, self._idx(g.indices), g.dense_shape))
                else:
                    grads.append(self._arr(g, dt))
            named = [i for i, g in enumerate(grads) if g is not None]
            given = self._hosts([_values(grads[i]) for i in named] + ([] if self.in_place else params))
            before = dict(zip(named, given, strict=False))
            if self.in_place:
                opt.apply_gradients(list(zip(grads, params, strict=True)))
                old: list[Any] = []
            else:
                old, params = params, opt.apply(params, grads)
            st = opt.state
            n = len(params)
            after = self._hosts([*params, *st.m, *st.u, *old, *(_values(grads[i]) for i in named)])
            new_w, new_m, new_u = after[:n], after[n:2 * n], after[2 * n:3 * n]
            old_now, grads_now = after[3 * n:3 * n + len(old)], after[3 * n + len(old):]
            changed = [i for i, (a, b) in enumerate(zip(given[len(named):], old_now, strict=True))
                       if not np.array_equal(a, b, equal_nan=True)]
            if changed:
                traj.faults.append(f"step {k + 1}: apply() modified the params it was given: {changed}")
            for i, b in zip(named, grads_now, strict=True):
                if not np.array_equal(before[i], b, equal_nan=True):
                    traj.faults.append(f"step {k + 1}: the gradient of params[{i}] was modified")
            if self.backend == "dask":  # one graph per step, not the whole history
                params = self._restart_graph(opt, params, after[:3 * n])
            traj.params.append(new_w)
            traj.m.append(new_m)
            traj.u.append(new_u)
            names = {self._dtype_name(p) for p in params}
            traj.dtypes.append(names.pop() if len(names) == 1 else f"mixed {sorted(names)}")
        traj.devices = [self._device(p) for p in params]
        return traj
