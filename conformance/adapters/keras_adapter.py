"""Adapters for Keras Adamax: Keras 3 ``keras.optimizers.Adamax`` and tf_keras legacy.

* :class:`Keras3Adapter` drives a Keras 3 optimizer on whatever backend Keras
  was imported with (``KERAS_BACKEND``; default tensorflow).  Sparse gradients
  are fed as real ``tf.IndexedSlices`` and so only work on the tensorflow
  backend.  Moments are ``opt._m`` / ``opt._u`` (``adamax.py`` ``build``).
* :class:`TfKerasLegacyAdapter` drives ``tf_keras.optimizers.legacy.Adamax``,
  the Keras 2.9 ``optimizer_v2`` code kept in tf_keras.  Moments are the slots
  ``get_slot(var, "m")`` / ``get_slot(var, "v")``.

Both take the case's hyperparameters unchanged, use the framework's own
clipping arguments and its own schedule classes, and feed only the
``(gradient, variable)`` pairs whose gradient is not ``None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..case import Case, SparseGrad, Trajectory, Unsupported
from . import _common

__all__ = ["Keras3Adapter", "TfKerasLegacyAdapter", "adapter_for"]

_SIGNATURE = ("learning_rate", "beta_1", "beta_2", "epsilon")
#: constructor arguments the suite sets for every case (an option may not)
_SUITE_SETS = (*_SIGNATURE, *_common.CLIP_KEYS)
_LOW_AND_DOUBLE = ("float16", "bfloat16", "float64")


def _tf() -> Any:
    _common.quiet_tensorflow()
    import tensorflow as tf

    return tf


def _keras3() -> Any:
    _common.quiet_tensorflow()
    import keras

    if not keras.__version__.startswith("3."):
        raise ImportError(f"Keras 3 needed, found keras {keras.__version__}")
    return keras


def _tf_keras() -> Any:
    _common.quiet_tensorflow()
    import tf_keras

    return tf_keras


def _in_dtype(x: Any, dtype: Any) -> np.ndarray:
    """``x`` (float64 values representable in ``dtype``) as a NumPy array of ``dtype`` (a name,
    or a ``tf.DType``), converted by NumPy, whose casts keep subnormal numbers: TensorFlow's
    ``tf.cast`` on CPU flushes them to zero, and the inputs would no longer be the case's."""
    name = str(getattr(dtype, "name", dtype))
    if name == "bfloat16":
        import ml_dtypes

        return np.asarray(x, dtype=np.float64).astype(ml_dtypes.bfloat16)
    return np.asarray(x, dtype=np.float64).astype(np.dtype(name))


def _indexed_slices(tf: Any, g: SparseGrad, dtype: Any) -> Any:
    values = tf.constant(_in_dtype(g.values, dtype))
    _common.check_exact("sparse gradient values", g.values, values.numpy())
    return tf.IndexedSlices(
        values=values,
        indices=tf.constant(_common.index_array(g.indices)),
        dense_shape=tf.constant(np.asarray(g.dense_shape, dtype=np.int64)),
    )


def _is_kernel_error(tf: Any, e: Exception) -> bool:
    """A TensorFlow 'no kernel for this dtype' error (e.g. dense bfloat16 ResourceApplyAdaMax)."""
    if tf is None or not isinstance(e, tf.errors.NotFoundError | tf.errors.InvalidArgumentError):
        return False
    return "OpKernel" in str(e) or "No registered" in str(e)


def _apply(opt: Any, pairs: list[tuple[Any, Any]], case: Case, tf: Any) -> None:
    if not pairs:
        raise Unsupported("none_grad", "Keras refuses a step in which every gradient is None")
    try:
        opt.apply_gradients(pairs)
    except Exception as e:
        if _is_kernel_error(tf, e) and case.dtype in _LOW_AND_DOUBLE:
            raise Unsupported(case.dtype, str(e).strip().splitlines()[0]) from e
        raise


class Keras3Adapter:
    """Runs a :class:`~adamax_spec.conformance.case.Case` through a Keras 3 optimizer.

    ``optimizer_cls`` defaults to ``keras.optimizers.Adamax``; any Keras 3
    optimizer class taking ``learning_rate, beta_1, beta_2, epsilon`` and the
    base clip arguments works, provided it keeps its moments in ``_m``/``_u``
    (otherwise the state is reported as unreadable).  ``options``: the constructor's other
    keyword arguments, passed to every construction (see :func:`_common.constructor_options`).
    """

    def __init__(self, optimizer_cls: type | None = None, *, name: str | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        keras = _keras3()
        self.optimizer_cls = keras.optimizers.Adamax if optimizer_cls is None else optimizer_cls
        self.backend = keras.backend.backend()
        if name is None:
            cls = self.optimizer_cls
            base = (
                "keras.optimizers.Adamax"
                if cls is keras.optimizers.Adamax
                else f"{cls.__module__}.{cls.__qualname__}"
            )
            name = f"{base}[{self.backend}]" + (f"({_common.describe_options(dict(options))})" if options else "")
        self.name = name
        self.options = _common.constructor_options(self.optimizer_cls, options, suite=_SUITE_SETS, what=name)
        _common.try_options(self._make, self.options, name)
        self._capabilities: frozenset[str] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Static features plus dtypes found by a one-step probe.

        ``validation``: Keras 3 rejects unknown arguments and more than one clip
        argument, but checks no value of learning_rate, beta_1, beta_2, epsilon
        or a clip argument (0 or negative means "off").  No ``clip_combination``.
        """
        if self._capabilities is None:
            caps = {"dense", "clipvalue", "clipnorm", "global_clipnorm", "schedule",
                    "callable_lr", "state", "checkpoint", "none_grad", "validation"}
            if self.backend == "tensorflow":
                caps.add("sparse")
            caps |= _common.probe_dtypes(self._run, _LOW_AND_DOUBLE)
            self._capabilities = frozenset(caps)
        return self._capabilities

    def run(self, case: Case) -> Trajectory:
        _common.check_case(case)
        # Keras 3 takes decay= only to warn that it ignores it
        _common.reject_decay(case.hyper, "Keras 3 (it ignores decay=)")
        if _common.has_sparse(case) and self.backend != "tensorflow":
            raise Unsupported("sparse", f"tf.IndexedSlices need the tensorflow backend, "
                              f"not {self.backend}")
        return self._run(case)

    def _learning_rate(self, lr: Any) -> Any:
        if _common.learning_rate_kind(lr) != "schedule":
            return lr
        keras = _keras3()
        class_name, config = _common.schedule_config(lr)
        # Keras 2.9 configs carry "name": None, which Keras 3 schedules cannot take
        # (``ops.name_scope(None)`` raises when called); the name has no effect on
        # the maths, so an unset name falls back to the Keras 3 class default.
        if config.get("name", "") is None:
            del config["name"]
        return keras.optimizers.schedules.deserialize(
            {"class_name": class_name, "config": config}
        )

    def _make(self, hyper: dict[str, Any]) -> Any:
        clips = _common.clip_settings(hyper)
        try:
            return self.optimizer_cls(
                learning_rate=self._learning_rate(hyper["learning_rate"]),
                beta_1=hyper["beta_1"],
                beta_2=hyper["beta_2"],
                epsilon=hyper["epsilon"],
                **clips,
                **self.options,
            )
        except ValueError as e:
            if len(clips) > 1:
                raise Unsupported("clip_combination", str(e)) from e
            raise

    def make(self, hyper: dict[str, Any]) -> Any:
        """The optimizer from the suite's argument names, every key passed on (property V-args)."""
        h = {**self.options, **hyper}
        return self.optimizer_cls(learning_rate=self._learning_rate(h.pop("learning_rate")), **h)

    def _run(self, case: Case) -> Trajectory:
        if self.backend != "jax":
            return self._run_in_mode(case)
        import jax

        # As in the optax adapter: JAX's float64 only inside a scoped enable_x64.
        with jax.enable_x64(case.dtype == "float64"):
            return self._run_in_mode(case)

    def _run_in_mode(self, case: Case) -> Trajectory:
        keras = _keras3()
        tf = _tf() if self.backend == "tensorflow" else None
        dtype = case.dtype
        lr = _common.learning_rate_arg(case.hyper["learning_rate"])
        hyper = {**case.hyper, "learning_rate": lr}
        opt = self._make(hyper)
        variables = []
        for i, p in enumerate(case.params):
            with warnings.catch_warnings():
                # JAX without x64 warns and truncates float64; detected just below.
                warnings.filterwarnings("ignore", "Explicitly requested dtype", UserWarning)
                v = keras.Variable(_in_dtype(p, dtype), dtype=dtype, trainable=True, name=f"w{i}")
            if str(v.dtype) != dtype:
                raise Unsupported(dtype, f"keras[{self.backend}] made a {v.dtype} variable")
            _common.check_exact(f"param {i}", p, _numpy(v))
            variables.append(v)
        opt.build(variables)
        before, after_last = _common.checkpoint_points(case)
        traj = Trajectory()
        for k, grads in enumerate(case.grads):
            _common.set_step(lr, k)
            if k == before:
                opt = self._restore(opt, variables, hyper)
            pairs = []
            for g, v in zip(grads, variables, strict=True):
                if g is None:
                    continue
                if isinstance(g, SparseGrad):
                    pairs.append((_indexed_slices(tf, g, v.dtype), v))
                else:
                    t = keras.ops.convert_to_tensor(_in_dtype(g, dtype), dtype=dtype)
                    _common.check_exact("gradient", g, _numpy(t))
                    pairs.append((t, v))
            _apply(opt, pairs, case, tf)
            traj.params.append([_numpy(v) for v in variables])
            m, u = _keras3_moments(opt, len(variables))
            traj.m.append(m)
            traj.u.append(u)
        if after_last:
            opt = self._restore(opt, variables, hyper)
        traj.dtypes = [str(v.dtype) for v in variables]
        return traj

    def _restore(self, opt: Any, variables: list[Any], hyper: dict[str, Any]) -> Any:
        """Keras 3's own mechanism: values of ``opt.variables``, a fresh optimizer built
        on the same variables, ``set_weights``."""
        saved = [np.array(v.numpy(), copy=True) for v in opt.variables]
        fresh = self._make(hyper)
        fresh.build(variables)
        if len(fresh.variables) != len(saved):
            raise RuntimeError("fresh optimizer has a different number of variables")
        fresh.set_weights(saved)
        return fresh


def _keras3_moments(opt: Any, n: int) -> tuple[list[np.ndarray] | None, ...]:
    """``opt._m`` / ``opt._u`` (keras/src/optimizers/adamax.py ``build``), or ``None``s."""
    m, u = getattr(opt, "_m", None), getattr(opt, "_u", None)
    if m is None or u is None or not len(m) == len(u) == n or any(x is None for x in [*m, *u]):
        return None, None
    return [_numpy(x) for x in m], [_numpy(x) for x in u]


class TfKerasLegacyAdapter:
    """Runs a case through ``tf_keras.optimizers.legacy.Adamax`` (Keras 2.9 semantics).

    ``optimizer_cls`` defaults to that class; any ``OptimizerV2`` subclass with
    slots ``"m"``/``"v"`` and the same constructor works.  ``options``: the constructor's other
    keyword arguments, as for :class:`Keras3Adapter`.
    """

    def __init__(self, optimizer_cls: type | None = None, *, name: str | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        tf_keras = _tf_keras()
        legacy = tf_keras.optimizers.legacy
        self.optimizer_cls = legacy.Adamax if optimizer_cls is None else optimizer_cls
        if name is None:
            cls = self.optimizer_cls
            name = (
                "tf_keras.optimizers.legacy.Adamax"
                if cls is legacy.Adamax
                else f"{cls.__module__}.{cls.__qualname__}"
            ) + (f"({_common.describe_options(dict(options))})" if options else "")
        self.name = name
        self.options = _common.constructor_options(self.optimizer_cls, options, suite=_SUITE_SETS, what=name)
        _common.try_options(self._make, self.options, name)
        self._capabilities: frozenset[str] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        """Static features plus dtypes found by a one-step dense probe.

        ``validation``: the constructor rejects unknown kwargs, negative clip
        values, ``lr``/``decay`` < 0 and clipnorm together with global_clipnorm
        (as Keras 2.9 does); it does not check lr, betas or epsilon.
        Dense bfloat16 fails (no ``ResourceApplyAdaMax`` kernel), so
        ``bfloat16`` is absent although sparse bfloat16 steps run.
        """
        if self._capabilities is None:
            caps = {"dense", "sparse", "clipvalue", "clipnorm", "global_clipnorm", "schedule",
                    "callable_lr", "decay", "state", "checkpoint", "validation", "none_grad", "clip_combination"}
            caps |= _common.probe_dtypes(self._run, _LOW_AND_DOUBLE)
            self._capabilities = frozenset(caps)
        return self._capabilities

    def run(self, case: Case) -> Trajectory:
        _common.check_case(case)
        return self._run(case)

    def _learning_rate(self, lr: Any) -> Any:
        if _common.learning_rate_kind(lr) != "schedule":
            return lr
        tf_keras = _tf_keras()
        class_name, config = _common.schedule_config(lr)
        schedule = tf_keras.optimizers.schedules.deserialize(
            {"class_name": class_name, "config": config}
        )
        if not isinstance(schedule, tf_keras.optimizers.schedules.LearningRateSchedule):
            # tf_keras returns the bare string for an unknown class name.
            raise ValueError(f"unknown learning rate schedule {class_name!r}")
        return schedule

    def make(self, hyper: dict[str, Any]) -> Any:
        """The optimizer from the suite's argument names, every key passed on (property V-args)."""
        h = {**self.options, **hyper}
        return self.optimizer_cls(learning_rate=self._learning_rate(h.pop("learning_rate")), **h)

    def _make(self, hyper: dict[str, Any]) -> Any:
        decay = {"decay": hyper["decay"]} if hyper.get("decay") else {}
        return self.optimizer_cls(
            learning_rate=self._learning_rate(hyper["learning_rate"]),
            beta_1=hyper["beta_1"],
            beta_2=hyper["beta_2"],
            epsilon=hyper["epsilon"],
            **_common.clip_settings(hyper),
            **decay,
            **self.options,
        )

    def _run(self, case: Case) -> Trajectory:
        tf = _tf()
        dtype = tf.as_dtype(case.dtype)
        lr = _common.learning_rate_arg(case.hyper["learning_rate"])
        hyper = {**case.hyper, "learning_rate": lr}
        opt = self._make(hyper)
        variables = []
        for i, p in enumerate(case.params):
            v = tf.Variable(tf.constant(_in_dtype(p, dtype)), name=f"w{i}")
            _common.check_exact(f"param {i}", p, v.numpy())
            variables.append(v)
        before, after_last = _common.checkpoint_points(case)
        traj = Trajectory()
        for k, grads in enumerate(case.grads):
            _common.set_step(lr, k)
            if k == before:
                opt = self._restore(opt, variables, hyper)
            pairs = []
            for g, v in zip(grads, variables, strict=True):
                if g is None:
                    continue
                if isinstance(g, SparseGrad):
                    pairs.append((_indexed_slices(tf, g, dtype), v))
                else:
                    t = tf.constant(_in_dtype(g, dtype))
                    _common.check_exact("gradient", g, t.numpy())
                    pairs.append((t, v))
            _apply(opt, pairs, case, tf)
            traj.params.append([_numpy(v) for v in variables])
            traj.m.append([_slot(opt, v, "m") for v in variables])
            traj.u.append([_slot(opt, v, "v") for v in variables])
        if after_last:
            opt = self._restore(opt, variables, hyper)
        traj.dtypes = [v.dtype.name for v in variables]
        return traj

    def _restore(self, opt: Any, variables: list[Any], hyper: dict[str, Any]) -> Any:
        """Save iterations and every slot by value, restore into a fresh optimizer.

        The slots are matched by (variable, slot name), not by position in
        ``get_weights()``: positions follow the order in which slots were created,
        which depends on which variables had gradients at which step.
        """
        iterations = int(opt.iterations.numpy())
        names = list(opt.get_slot_names())  # empty until the first apply creates slots
        with_slots = [v for v in variables if names and _has_slot(opt, v, names[0])]
        saved = {(id(v), s): np.array(opt.get_slot(v, s).numpy(), copy=True)
                 for v in with_slots for s in names}
        fresh = self._make(hyper)
        # What tf_keras itself does before loading optimizer weights from HDF5
        # (tf_keras/src/saving/legacy/hdf5_format.py): create iterations, hypers, slots.
        fresh._create_all_weights(with_slots)
        if sorted(fresh.get_slot_names()) != sorted(names):
            raise RuntimeError("fresh optimizer created other slots")
        fresh.iterations.assign(iterations)
        for v in with_slots:
            for s in names:
                fresh.get_slot(v, s).assign(saved[(id(v), s)])
        return fresh


def _has_slot(opt: Any, v: Any, slot: str) -> bool:
    try:
        opt.get_slot(v, slot)
    except KeyError:
        return False
    return True


def _slot(opt: Any, v: Any, slot: str) -> np.ndarray:
    """A slot's value; zeros (its initial value) if the variable never had a gradient."""
    if not _has_slot(opt, v, slot):
        return np.zeros(tuple(v.shape))
    return _numpy(opt.get_slot(v, slot))


def _numpy(x: Any) -> np.ndarray:
    """Exact float64 copy of a tf/keras variable or tensor, on any Keras backend."""
    value = getattr(x, "value", x)  # keras.Variable -> the backend's variable or array
    if callable(value):  # tf.Variable.value is a method, not a keras.Variable property
        value = x
    if hasattr(value, "detach"):  # torch: may require grad, bfloat16 has no .numpy()
        return value.detach().double().cpu().numpy().copy()
    if hasattr(value, "numpy"):  # tensorflow
        return _common.to_float64(value.numpy())
    return _common.to_float64(value)  # jax, numpy


def adapter_for(obj: Any, options: Mapping[str, Any] | None = None) -> Keras3Adapter | TfKerasLegacyAdapter | None:
    """An adapter if ``obj`` is a Keras 3 or tf_keras legacy optimizer class shaped like Adamax
    (``options``: its constructor's other keyword arguments).

    Only modules already in ``sys.modules`` are consulted; nothing is imported.
    tf_keras's *new* optimizers (``tf_keras.optimizers.Adamax``) are not
    recognized.
    """
    if not isinstance(obj, type):
        return None
    try:
        import inspect

        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return None
    if not all(p in parameters for p in _SIGNATURE):
        return None
    tf_keras = _common.loaded("tf_keras")
    if tf_keras is not None:
        if issubclass(obj, tf_keras.optimizers.legacy.Optimizer):
            return TfKerasLegacyAdapter(obj, options=options)
    keras = _common.loaded("keras")
    if keras is not None and str(getattr(keras, "__version__", "")).startswith("3."):
        if issubclass(obj, keras.optimizers.Optimizer):
            return Keras3Adapter(obj, options=options)
    return None
