"""The six Keras 2.9 learning-rate schedules, evaluated at 256 bits, with an error allowance.

Independent of :mod:`adamax_spec.schedules` (the implementation under test).
Keras evaluates schedules in float32; the allowance covers that: 16 float32
roundings of ``initial_learning_rate`` (absolute: cosine terms near zero lose
their relative accuracy) plus the conditioning of a power ``rate**p`` (relative
error ``|p ln rate|`` ULPs).
"""

from __future__ import annotations

import math
from typing import Any

from . import exact

__all__ = ["schedule_value"]

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
