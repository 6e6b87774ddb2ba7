"""Keras 2.9 learning-rate schedules, in pure Python double precision.

The six schedules of ``tf.keras.optimizers.schedules`` (Keras 2.9):
:class:`ExponentialDecay`, :class:`PiecewiseConstantDecay`, :class:`PolynomialDecay`,
:class:`InverseTimeDecay`, :class:`CosineDecay` and :class:`CosineDecayRestarts`, with the same
constructor arguments (names, order, defaults), the same formulas, the same ``get_config`` keys
and the Keras 2.9 ``serialize``/``deserialize`` format ``{"class_name": ..., "config": {...}}``.

A schedule is called with ``step``, the number of optimizer steps already applied (0 on the
first step, as Keras passes ``iterations`` before incrementing it), and returns a Python float.

Differences from Keras 2.9, all deliberate:

- Keras computes in the dtype of ``initial_learning_rate`` (float32 for a Python float); we
  compute in Python float (IEEE double).
- Keras validates almost nothing (``decay_steps=0`` gives NaN); here every bad argument raises
  ``TypeError`` (not a number, not a bool, not a str) or ``ValueError`` (out of range), with a
  message naming the argument and its value.  A bad ``step`` is rejected the same way.
- :class:`CosineDecayRestarts` picks the restart index exactly (Keras's float32
  ``floor(log(.)/log(t_mul))`` can land one cycle early at an exact restart, e.g. at step 8191
  with ``first_decay_steps=1, t_mul=2``), and with ``t_mul < 1`` it raises instead of
  returning NaN once ``step`` reaches the finite total length of its infinitely many cycles.

This module imports only the standard library.
"""

# No ``from __future__ import annotations``: with string annotations ``dataclass`` looks the
# module up in ``sys.modules``, where a copy loaded from its file alone (as a test does) is not.
import abc
import bisect
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "get",
    "serialize",
]


# -- validation helpers --------------------------------------------------------------------------

def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _real(name: str, value: object) -> float:
    """``value`` as a float, or ``TypeError`` naming ``name`` if it is not a real number."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number (not a bool), got {name}={value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a double
        raise ValueError(f"{name} must be a finite number, got {name}={value!r}") from None


def _number(name: str, value: object, rule: str) -> float:
    """A finite real number obeying ``rule`` (``"> 0"``, ``">= 0"`` or ``"in [0, 1]"``)."""
    v = _real(name, value)
    ok = {
        "> 0": v > 0.0,
        ">= 0": v >= 0.0,
        "in [0, 1]": 0.0 <= v <= 1.0,
    }[rule]
    if not (math.isfinite(v) and ok):
        raise ValueError(f"{name} must be a finite number {rule}, got {name}={value!r}")
    return v


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {name}={value!r}")
    return value


def _optional_str(name: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{name} must be None or a str, got {name}={value!r}")


def _sequence(name: str, value: object) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise TypeError(f"{name} must be a list or tuple of numbers, got {name}={value!r}")
    return value


def _reals(name: str, value: object, kind: str) -> list[float]:
    """A list or tuple of finite real numbers, ``"increasing"`` strictly or ``"each >= 0"``."""
    value = _sequence(name, value)
    floats: list[float] = []
    for i, item in enumerate(value):
        at = f"{name}[{i}]={item!r} in {name}={value!r}"
        if not _is_real(item):
            raise TypeError(f"{name} must hold real numbers (not bools), got {at}")
        try:
            v = float(item)
        except OverflowError:  # an int too large for a double
            v = math.inf
        nonnegative = kind == "each >= 0"
        if not math.isfinite(v) or (nonnegative and v < 0.0):
            raise ValueError(f"{name} must hold finite numbers{' >= 0' * nonnegative}, got {at}")
        if kind == "increasing" and floats and not v > floats[-1]:
            raise ValueError(
                f"{name} must be strictly increasing, got {name}[{i - 1}]={value[i - 1]!r} >= {at}"
            )
        floats.append(v)
    return floats


_NUMBERS = ("> 0", ">= 0", "in [0, 1]")
_KINDS = (*_NUMBERS, "bool", "None or str", "increasing", "each >= 0")


def _check(kind: str, name: str, value: object) -> Any:
    """The argument ``name=value`` checked as ``kind`` (one of ``_KINDS``): a float for a number,
    a list of floats for a sequence; ``TypeError``/``ValueError`` naming it if it is bad."""
    if kind in _NUMBERS:
        return _number(name, value, kind)
    if kind == "bool":
        return _boolean(name, value)
    if kind == "None or str":
        return _optional_str(name, value)
    return _reals(name, value, kind)


def _step(step: object) -> float:
    """The step as a float: a real number (or a 0-d real array), finite and >= 0."""
    value = step
    shape = getattr(step, "shape", None)
    if shape is not None and tuple(shape) == () and not _is_real(step):
        # a 0-d array (numpy, torch, JAX, ...) of an integer or real floating dtype
        dtype = str(getattr(step, "dtype", ""))
        if "int" in dtype or "float" in dtype:
            value = float(step)  # type: ignore[arg-type]
    if not _is_real(value):
        raise TypeError(f"step must be a real number (not a bool), got step={step!r}")
    try:
        v = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a double
        v = math.inf
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"step must be a finite number >= 0, got step={step!r}")
    return v


# -- IEEE-style arithmetic (Python's float ops raise where IEEE returns inf) ---------------------

def _pow(base: float, exponent: float) -> float:
    """``base ** exponent`` for ``base >= 0``, with overflow giving ``inf`` as IEEE (and TF) do."""
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf


def _floor(x: float) -> float:
    return x if math.isinf(x) else float(math.floor(x))


def _ceil(x: float) -> float:
    return x if math.isinf(x) else float(math.ceil(x))


# -- the schedules -------------------------------------------------------------------------------

class LearningRateSchedule(abc.ABC):
    """A learning rate as a function of the optimizer step.

    Subclasses implement ``__call__(step) -> float`` (``step`` = steps already applied, 0 on
    the first step) and ``get_config() -> dict`` whose keys are the constructor's arguments,
    so that ``from_config(get_config())`` rebuilds an equal schedule.
    """

    @abc.abstractmethod
    def __call__(self, step: float) -> float:
        """The learning rate after ``step`` applied steps."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as a new dict (JSON-compatible for Python-number args)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """``cls(**config)``; ``config`` is not modified."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _arg(kind: str, slot: str | None = None, *, default: Any = MISSING) -> Any:
    """A constructor argument, checked as ``kind`` (one of ``_KINDS``) by :class:`_Declared`.

    The attribute of the argument's name keeps the value as given (a list or tuple as a new
    list), for ``get_config``; the checked value (a float, or a list of floats) goes to the
    private attribute ``slot``, if any, which is what ``__call__`` reads.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got kind={kind!r}")
    return field(default=default, metadata={"kind": kind, "slot": slot})


class _Declared(LearningRateSchedule):
    """A schedule whose constructor arguments are declared once, as :func:`_arg` fields: their
    order and defaults make the signature, their kinds the checks (in order, on construction)
    and their names the ``get_config`` keys (in order)."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.init:
                value = getattr(self, f.name)
                checked = _check(f.metadata["kind"], f.name, value)
                if f.metadata["slot"] is not None:
                    setattr(self, f.metadata["slot"], checked)
                if isinstance(checked, list):  # a copy, safe from the caller's changes
                    setattr(self, f.name, list(value))

    def get_config(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), list) else v
            for f in fields(self)
            if f.init
        }


_S = TypeVar("_S", bound=_Declared)


@dataclass_transform(eq_default=False, field_specifiers=(_arg, field))
def _schedule(cls: type[_S]) -> type[_S]:
    """The schedule ``cls`` as a dataclass: its ``__init__`` takes the fields declared with
    :func:`_arg`, in order, with their defaults (``field(init=False)`` declares a slot)."""
    schedule = dataclass(eq=False, repr=False)(cls)
    slots = {f.name for f in fields(schedule) if not f.init}
    filled = {f.metadata["slot"] for f in fields(schedule) if f.init} - {None}
    if filled != slots:
        raise TypeError(f"{cls.__name__}: slots not both declared and filled: {sorted(slots ^ filled)}")
    return schedule


@_schedule
class ExponentialDecay(_Declared):
    r"""Exponential decay.

    .. math::

        p = s / \mathrm{decay\_steps}, \quad p \leftarrow \lfloor p \rfloor
        \text{ if staircase}, \qquad
        \mathrm{lr}(s) = \mathrm{initial\_learning\_rate} \cdot \mathrm{decay\_rate}^{p}

    (``0 ** 0 == 1``; ``decay_rate > 1`` grows, and overflow gives ``inf``.)
    """

    initial_learning_rate: float = _arg(">= 0", "_lr0")
    decay_steps: float = _arg("> 0", "_decay_steps")
    decay_rate: float = _arg(">= 0", "_decay_rate")
    staircase: bool = _arg("bool", default=False)
    name: str | None = _arg("None or str", default=None)
    _lr0: float = field(init=False)
    _decay_steps: float = field(init=False)
    _decay_rate: float = field(init=False)

    def __call__(self, step: float) -> float:
        p = _step(step) / self._decay_steps
        if self.staircase:
            p = _floor(p)
        return self._lr0 * _pow(self._decay_rate, p)


@_schedule
class PiecewiseConstantDecay(_Declared):
    r"""Piecewise constant: with boundaries :math:`b_0 < \dots < b_{n-1}` and values
    :math:`v_0, \dots, v_n`,

    .. math::

        \mathrm{lr}(s) = \begin{cases}
            v_0 & s \le b_0 \\
            v_i & b_{i-1} < s \le b_i \\
            v_n & s > b_{n-1}
        \end{cases}

    so a boundary step still gets the value on its left. ``len(values) == len(boundaries) + 1``.
    (Keras 2.9 casts the boundaries to the step's dtype and returns the values' dtype; here
    both are compared and returned as Python floats.)
    """

    boundaries: Sequence[float] = _arg("increasing", "_bounds")
    values: Sequence[float] = _arg("each >= 0", "_values")
    name: str | None = _arg("None or str", default=None)
    _bounds: list[float] = field(init=False)
    _values: list[float] = field(init=False)

    def __post_init__(self) -> None:
        # first both types, then the lengths (with Keras's message), then each argument
        boundaries = _sequence("boundaries", self.boundaries)
        values = _sequence("values", self.values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of "
                f"values. Received: boundaries={boundaries} of length "
                f"{len(boundaries)}, and values={values} "
                f"of length {len(values)}."
            )
        if len(boundaries) == 0:
            raise ValueError(
                f"boundaries must hold at least one number, got boundaries={boundaries!r}"
            )
        super().__post_init__()

    def __call__(self, step: float) -> float:
        # bisect_left: the first i with s <= b[i], i.e. b[i-1] < s <= b[i]
        return self._values[bisect.bisect_left(self._bounds, _step(step))]


@_schedule
class PolynomialDecay(_Declared):
    r"""Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate``.

    With :math:`d` = ``decay_steps``, :math:`\eta_0` = ``initial_learning_rate`` and
    :math:`\eta_e` = ``end_learning_rate``:

    - ``cycle=False``: :math:`s \leftarrow \min(s, d)`;
    - ``cycle=True``: :math:`d \leftarrow d \cdot (1 \text{ if } s = 0 \text{ else }
      \lceil s/d \rceil)`, so at an exact multiple :math:`s = k d` (``k >= 1``) the rate is
      :math:`\eta_e` (the end of cycle ``k``, not a restart);

    .. math::

        \mathrm{lr}(s) = (\eta_0 - \eta_e)\,(1 - s/d)^{\mathrm{power}} + \eta_e

    (``0 ** 0 == 1``: with ``power=0`` the rate stays :math:`\eta_0`; ``end_learning_rate``
    may exceed ``initial_learning_rate``, giving a polynomial increase.)
    """

    initial_learning_rate: float = _arg(">= 0", "_lr0")
    decay_steps: float = _arg("> 0", "_decay_steps")
    end_learning_rate: float = _arg(">= 0", "_end", default=0.0001)
    power: float = _arg(">= 0", "_power", default=1.0)
    cycle: bool = _arg("bool", default=False)
    name: str | None = _arg("None or str", default=None)
    _lr0: float = field(init=False)
    _decay_steps: float = field(init=False)
    _end: float = field(init=False)
    _power: float = field(init=False)

    def __call__(self, step: float) -> float:
        s = _step(step)
        d = self._decay_steps
        if self.cycle:
            d = d * (1.0 if s == 0.0 else _ceil(s / d))
        else:
            s = min(s, d)
        # Rounding can leave s/d a hair above 1 when cycling with non-integer steps; clamp
        # so that a fractional power never sees a negative base.
        base = max(0.0, 1.0 - s / d)
        return (self._lr0 - self._end) * _pow(base, self._power) + self._end


@_schedule
class InverseTimeDecay(_Declared):
    r"""Inverse-time decay.

    .. math::

        p = s / \mathrm{decay\_steps}, \quad p \leftarrow \lfloor p \rfloor
        \text{ if staircase}, \qquad
        \mathrm{lr}(s) = \frac{\mathrm{initial\_learning\_rate}}{1 + \mathrm{decay\_rate}\cdot p}
    """

    initial_learning_rate: float = _arg(">= 0", "_lr0")
    decay_steps: float = _arg("> 0", "_decay_steps")
    decay_rate: float = _arg(">= 0", "_decay_rate")
    staircase: bool = _arg("bool", default=False)
    name: str | None = _arg("None or str", default=None)
    _lr0: float = field(init=False)
    _decay_steps: float = field(init=False)
    _decay_rate: float = field(init=False)

    def __call__(self, step: float) -> float:
        p = _step(step) / self._decay_steps
        if self.staircase:
            p = _floor(p)
        return self._lr0 / (1.0 + self._decay_rate * p)


@_schedule
class CosineDecay(_Declared):
    r"""Cosine decay (SGDR without restarts; Loshchilov & Hutter, arXiv:1608.03983).

    .. math::

        s \leftarrow \min(s, \mathrm{decay\_steps}), \quad
        c = \tfrac12\bigl(1 + \cos(\pi s / \mathrm{decay\_steps})\bigr), \quad
        \mathrm{lr}(s) = \mathrm{initial\_learning\_rate}\,\bigl((1 - \alpha)\,c + \alpha\bigr)

    so the rate falls from ``initial_learning_rate`` to ``alpha * initial_learning_rate`` and
    stays there. Keras 2.9 has no warmup (``warmup_target``/``warmup_steps`` came in 2.13).
    """

    initial_learning_rate: float = _arg(">= 0", "_lr0")
    decay_steps: float = _arg("> 0", "_decay_steps")
    alpha: float = _arg("in [0, 1]", "_alpha", default=0.0)
    name: str | None = _arg("None or str", default=None)
    _lr0: float = field(init=False)
    _decay_steps: float = field(init=False)
    _alpha: float = field(init=False)

    def __call__(self, step: float) -> float:
        s = min(_step(step), self._decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * (s / self._decay_steps)))
        return self._lr0 * ((1.0 - self._alpha) * cosine + self._alpha)


@_schedule
class CosineDecayRestarts(_Declared):
    r"""Cosine decay with warm restarts (SGDR; Loshchilov & Hutter, arXiv:1608.03983).

    Cycle :math:`i = 0, 1, \dots` lasts :math:`d\,t^i` steps (:math:`d` =
    ``first_decay_steps``, :math:`t` = ``t_mul``) and starts at
    :math:`\eta_0 m^i` (:math:`m` = ``m_mul``). With :math:`F = s/d`:

    - :math:`t = 1`: :math:`i = \lfloor F \rfloor`, :math:`f = F - i`;
    - :math:`t \ne 1`: :math:`i = \lfloor \log(1 - F(1-t)) / \log t \rfloor`,
      :math:`f = \bigl(F - \frac{1 - t^i}{1 - t}\bigr) / t^i`;

    .. math::

        \mathrm{lr}(s) = \eta_0\Bigl((1-\alpha)\,\tfrac12\,m^i\,\bigl(1 + \cos(\pi f)\bigr)
        + \alpha\Bigr)

    A restart step (:math:`F = (1 - t^k)/(1 - t)`) starts cycle :math:`k` (:math:`f = 0`).
    Here :math:`i` is the exact index, :math:`\frac{1-t^i}{1-t} \le F < \frac{1-t^{i+1}}{1-t}`
    in double arithmetic (the log formula, then corrected by at most a few steps).
    With :math:`t < 1` all cycles together last :math:`d/(1-t)` steps; a step at or beyond that
    raises ``ValueError`` (Keras returns NaN).
    """

    initial_learning_rate: float = _arg(">= 0", "_lr0")
    first_decay_steps: float = _arg("> 0", "_first_decay_steps")
    t_mul: float = _arg("> 0", "_t", default=2.0)
    m_mul: float = _arg(">= 0", "_m", default=1.0)
    alpha: float = _arg("in [0, 1]", "_alpha", default=0.0)
    name: str | None = _arg("None or str", default=None)
    _lr0: float = field(init=False)
    _first_decay_steps: float = field(init=False)
    _t: float = field(init=False)
    _m: float = field(init=False)
    _alpha: float = field(init=False)

    def _cycle(self, step: object, fraction: float) -> tuple[float, float]:
        """``(i, f)``: the cycle index and the completed fraction of that cycle."""
        t = self._t
        if math.isinf(fraction):
            return math.inf, 0.0
        if t == 1.0:
            i = _floor(fraction)
            return i, fraction - i
        x = fraction * (t - 1.0)  # 1 - F (1 - t) = 1 + x
        if x <= -1.0:
            limit = self._first_decay_steps / (1.0 - t)
            raise ValueError(
                f"CosineDecayRestarts with t_mul={self.t_mul!r} < 1 is defined only for "
                f"step < first_decay_steps / (1 - t_mul) = {limit!r} (Keras returns NaN), "
                f"got step={step!r}"
            )

        def start(k: int) -> float:  # (1 - t**k) / (1 - t): where cycle k starts, in F units
            return (_pow(t, k) - 1.0) / (t - 1.0)

        k = max(0, math.floor(math.log1p(x) / math.log(t)))
        for _ in range(4):  # the log formula is off by at most one; correct it
            if start(k + 1) <= fraction:
                k += 1
            elif k > 0 and start(k) > fraction:
                k -= 1
            else:
                break
        scale = _pow(t, k)
        f = (fraction - start(k)) / scale if scale > 0.0 else 0.0
        f = min(max(f, 0.0), 1.0) if math.isfinite(f) else 0.0
        return float(k), f

    def __call__(self, step: float) -> float:
        s = _step(step)
        i, f = self._cycle(step, s / self._first_decay_steps)
        cosine = 0.5 * _pow(self._m, i) * (1.0 + math.cos(math.pi * f))
        return self._lr0 * ((1.0 - self._alpha) * cosine + self._alpha)


# -- (de)serialization ---------------------------------------------------------------------------

_SCHEDULES: dict[str, type[LearningRateSchedule]] = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": <class name>, "config": schedule.get_config()}`` (the Keras 2.9 form)."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            f"schedule must be a LearningRateSchedule, got schedule={schedule!r}"
        )
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(
    config: Mapping[str, Any],
    custom_objects: Mapping[str, type[LearningRateSchedule]] | None = None,
) -> LearningRateSchedule:
    """The schedule a :func:`serialize` dict describes (``config`` is not modified).

    ``class_name`` is case-sensitive and must be one of the six schedules or a key of
    ``custom_objects``. The extra keys ``module`` and ``registered_name`` that tf_keras adds
    are ignored.
    """
    if not isinstance(config, Mapping):
        raise TypeError(
            f"config must be a dict {{'class_name': ..., 'config': {{...}}}}, got config={config!r}"
        )
    if "class_name" not in config or "config" not in config:
        raise ValueError(
            f"config must have the keys 'class_name' and 'config', got config={config!r}"
        )
    class_name = config["class_name"]
    known = {**_SCHEDULES, **(custom_objects or {})}
    cls = known.get(class_name) if isinstance(class_name, str) else None
    if cls is None:
        raise ValueError(
            f"Unknown decay: {class_name!r}. Known schedules: {', '.join(sorted(known))} "
            "(names are case-sensitive; pass other classes in custom_objects)."
        )
    inner = config["config"]
    if not isinstance(inner, Mapping):
        raise TypeError(f"config['config'] must be a dict, got config['config']={inner!r}")
    return cls.from_config(inner)


def get(identifier: LearningRateSchedule | Mapping[str, Any]) -> LearningRateSchedule:
    """A schedule from a schedule (returned as is) or a :func:`serialize` dict."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    raise TypeError(
        "identifier must be a LearningRateSchedule or a serialized schedule dict, "
        f"got identifier={identifier!r}"
    )
