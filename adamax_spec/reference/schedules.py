"""The learning rate of each step: constants, per-step values, the six Keras 2.9 schedules
(evaluated at 256 bits) and the legacy ``decay``, each with an error allowance.

Independent of :mod:`adamax_spec.schedules` (the implementation under test).
Keras evaluates schedules in float32; the allowance covers that: 16 float32
roundings of ``initial_learning_rate`` (absolute: cosine terms near zero lose
their relative accuracy) plus the conditioning of a power ``rate**p`` (relative
error ``|p ln rate|`` ULPs).

:func:`learning_rate_at` is what the judge reads: a case's ``learning_rate`` is a number, a
schedule config dict, or a sequence of per-step values (a zero-argument callable's value at
each step: ``values[k]`` at step ``k + 1``); a ``decay`` > 0 divides it by
``1 + decay * iterations`` (Keras 2.9's legacy argument, ``iterations = k``).
"""

from __future__ import annotations

import math
from typing import Any

from . import exact

__all__ = ["DECAY_ROUNDINGS", "learning_rate_at", "schedule_value"]

_U32 = 2.0**-24


def _floor(x: Any) -> Any:
    return exact.num(math.floor(float(x))) if abs(float(x)) < 2**52 else x


def schedule_value(spec: dict[str, Any], step: int) -> tuple[float, float]:
    """``(lr, allowance)`` of a serialized schedule at ``step`` (steps already applied)."""
    name, c = spec["class_name"], spec["config"]
    s = exact.num(step)
    one = exact.num(1)
    cond = 0.0
    if name in ("ExponentialDecay", "InverseTimeDecay"):
        lr0, ds, rate = exact.num(c["initial_learning_rate"]), exact.num(c["decay_steps"]), exact.num(c["decay_rate"])
        p = s / ds
        if c.get("staircase"):
            p = _floor(p)
        if name == "ExponentialDecay":
            lr = lr0 * exact.pow_(rate, p) if float(rate) > 0 else (lr0 if float(p) == 0 else 0 * lr0)
            cond = abs(float(p) * math.log(float(rate))) if float(rate) > 0 else 0.0
        else:
            lr = lr0 / (one + rate * p)
    elif name == "PiecewiseConstantDecay":
        b, vals = list(c["boundaries"]), list(c["values"])
        i = sum(1 for x in b if step > x)
        lr0 = exact.num(max(abs(float(x)) for x in vals))
        lr = exact.num(vals[i])
    elif name == "PolynomialDecay":
        lr0, end = exact.num(c["initial_learning_rate"]), exact.num(c.get("end_learning_rate", 0.0001))
        ds, power = exact.num(c["decay_steps"]), exact.num(c.get("power", 1.0))
        if c.get("cycle"):
            mult = one if step == 0 else exact.num(math.ceil(step / float(c["decay_steps"])))
            ds = ds * mult
            ss = s
        else:
            ss = s if float(s) < float(ds) else ds
        frac = one - ss / ds
        lr = (lr0 - end) * (exact.pow_(frac, power) if float(frac) > 0 else 0 * frac) + end
        lr0 = exact.num(max(abs(float(lr0)), abs(float(end))))
        cond = float(power)
    elif name == "CosineDecay":
        lr0, ds = exact.num(c["initial_learning_rate"]), exact.num(c["decay_steps"])
        alpha = exact.num(c.get("alpha", 0.0))
        ss = s if float(s) < float(ds) else ds
        cos = exact.num(0.5) * (one + exact.cos(exact.pi() * ss / ds))
        lr = lr0 * ((one - alpha) * cos + alpha)
    elif name == "CosineDecayRestarts":
        lr0, fds = exact.num(c["initial_learning_rate"]), exact.num(c["first_decay_steps"])
        t_mul, m_mul = exact.num(c.get("t_mul", 2.0)), exact.num(c.get("m_mul", 1.0))
        alpha = exact.num(c.get("alpha", 0.0))
        frac = s / fds
        if float(t_mul) == 1.0:
            i = _floor(frac)
            frac = frac - i
        else:
            i = _floor(exact.log(one - frac * (one - t_mul)) / exact.log(t_mul))
            sum_r = (one - exact.pow_(t_mul, i)) / (one - t_mul)
            frac = (frac - sum_r) / exact.pow_(t_mul, i)
        mm = exact.pow_(m_mul, i)
        lr = lr0 * ((one - alpha) * exact.num(0.5) * mm * (one + exact.cos(exact.pi() * frac)) + alpha)
        cond = float(i) + 2.0
    else:
        raise ValueError(f"unknown schedule class_name={name!r}")
    value = float(lr)
    allowance = _U32 * (16 * abs(float(lr0)) + abs(value) * (4 + cond))
    return value, allowance


#: Relative error allowed for the legacy decay division ``lr / (1 + decay * k)``, in units of
#: the dtype's roundoff ``e`` (plus two float32 roundings, ``2**-23``): ``decay`` rounded to the
#: dtype, the product, the sum and the quotient (Keras 2.9 forms it in the weight dtype), the
#: decayed value rounded to float32 and to the dtype (a target that divides in doubles and rounds
#: after, as ours does), and the base learning rate rounded before rather than after the division
#: (the interpretations round the base value).  A first-order bound, as every bound of the
#: reference; ``model.SAFETY`` covers the second-order terms.
DECAY_ROUNDINGS = 6


def learning_rate_at(hyper: dict[str, Any], lr: Any, k: int, unit: float) -> tuple[float, float]:
    """``(lr, allowance)`` of step ``k + 1`` (``k`` steps already applied): ``lr`` the
    interpretation's learning rate (a number, or a sequence of per-step numbers, ``None`` for a
    schedule, which is read from ``hyper``), divided by ``1 + decay * k`` where ``hyper`` sets a
    ``decay`` > 0; ``allowance`` is absolute, ``unit`` the dtype's unit roundoff."""
    spec = hyper["learning_rate"]
    if isinstance(spec, dict):
        value, err = schedule_value(spec, k)
    elif isinstance(lr, list | tuple):
        if k >= len(lr):
            raise ValueError(f"learning_rate has {len(lr)} per-step values; step {k + 1} has none")
        value, err = float(lr[k]), 0.0
    else:
        value, err = float(lr), 0.0
    decay = float(hyper.get("decay") or 0.0)
    if decay > 0 and k > 0:
        exact_value = exact.num(value) / (exact.num(1) + exact.num(decay) * exact.num(k))
        divisor = 1.0 + decay * k
        value = float(exact_value)
        # the decayed value as a float64 (one rounding of 2**-53), the division's roundings
        err = err / divisor + abs(value) * (DECAY_ROUNDINGS * unit + 2 * _U32 + 2.0**-52)
    return value, err
