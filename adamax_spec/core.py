"""The Adamax update rule: pure functions on array-API arrays, state made explicit.

For a weight ``w`` with gradient ``g``, first moment ``m`` and exponentially
weighted infinity norm ``u`` (all of the weight's dtype ``D``, on its device),
step ``t = iterations + 1`` applies, under the default ``keras`` profile::

    m   <- m + (g - m) * (1 - b1)          # = b1*m + (1-b1)*g, Keras's kernel form
    u   <- max(b2 * u, |g|)
    w   <- w - lr / (1 - b1**t) * (m / (u + eps))

Other profiles change only the lines named in :mod:`adamax_spec.profiles`.
A sparse gradient (:class:`~adamax_spec.sparse.IndexedSlices`) is coalesced
(duplicate rows summed) and, under a ``lazy`` profile, only its rows of ``w``,
``m`` and ``u`` change; under a ``dense`` profile it is densified first.  Under
a ``sum_of_abs`` profile (Keras 3) ``u`` sees ``sum_j |v_j|`` of a row's slices
in place of ``|sum_j v_j|``.

Every function here is pure: inputs are never modified, new arrays are
returned, so the same code runs on immutable arrays (JAX).  The optimizer
object in :mod:`adamax_spec.optimizer` is a thin shell that may write results
back in place for mutable libraries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._xp import device, namespace, round_to_float32, round_to_format, scalar
from .clipping import clip_gradients
from .profiles import Profile
from .sparse import IndexedSlices, coalesce_rows, densify, take_rows

__all__ = ["AdamaxState", "Hyper", "Step", "StepScalars", "apply_gradients", "apply_step", "begin_step", "init",
           "learning_rate_at", "step_scalars", "update_rows"]


class AdamaxState(NamedTuple):
    """Optimizer state: ``iterations`` steps applied so far, and per-parameter ``m`` and ``u``.

    ``m[i]``/``u[i]`` have parameter ``i``'s shape, dtype and device (Keras ``m``/``v``,
    torch ``exp_avg``/``exp_inf``, optax ``mu``/``nu``).
    """

    iterations: int
    m: tuple[Any, ...]
    u: tuple[Any, ...]


@dataclass(frozen=True)
class Hyper:
    """Validated hyperparameters of one optimizer (see :mod:`adamax_spec.validation`).

    ``learning_rate`` is a float, a 0-d array, a schedule (called with the number
    of steps already applied) or a zero-argument callable.
    """

    profile: Profile
    learning_rate: Any
    beta_1: float
    beta_2: float
    epsilon: float
    decay: float = 0.0
    clipvalue: float | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None


def init(params: Sequence[Any]) -> AdamaxState:
    """Fresh state: zero moments shaped like ``params``, no steps applied."""
    return AdamaxState(0, tuple(_zeros_like(p) for p in params), tuple(_zeros_like(p) for p in params))


def _zeros_like(x: Any) -> Any:
    return namespace(x).zeros(x.shape, dtype=x.dtype, device=device(x))


def learning_rate_at(hyper: Hyper, iterations: int) -> Any:
    """The learning rate for the step after ``iterations`` applied steps (before bias correction).

    Schedules receive ``iterations`` (0 on the first step); callables are called
    with no argument; the legacy ``decay`` divides by ``1 + decay * iterations``.
    """
    lr = hyper.learning_rate
    if callable(lr):
        lr = lr(iterations) if _takes_step(lr) else lr()
    if hyper.decay > 0:
        lr = lr / (1.0 + hyper.decay * iterations)
    return lr


def _takes_step(fn: Callable[..., Any]) -> bool:
    from .schedules import LearningRateSchedule

    return isinstance(fn, LearningRateSchedule)


@dataclass(frozen=True)
class StepScalars:
    """0-d arrays of one (dtype, device) used by one step: ``w -= lr_t * m/(u+eps)``."""

    lr_t: Any           # lr / (1 - b1**t), or lr without bias correction
    beta_1: Any
    one_minus_beta_1: Any
    beta_2: Any
    epsilon: Any


def step_scalars(hyper: Hyper, lr: Any, t: int, like: Any) -> StepScalars:
    """The step's scalars in ``like``'s dtype and device.

    ``float32`` hyper rounding (Keras): lr, b1, b2 are rounded to float32, cast to
    D, and ``1 - b1**t`` is computed in D; ``keras3`` (Keras 3 on TensorFlow): the
    same for lr and the b1 in ``b1**t``, but b2 goes straight to D and the moment
    weight ``1 - b1`` is formed in doubles, then rounded to D; ``dtype`` rounding
    (torch/optax): the bias-corrected rate ``lr / (1 - b1**t)`` is computed in Python
    doubles and rounded once.  epsilon is converted straight to D in all three.

    With a Python ``int`` step, ``b1**t`` (b1 as held in D, t as cast to D) is taken in
    doubles and rounded once to D: the D value nearest the exact power for D narrower than
    float64, and the same bits on every machine (NumPy dispatches float32 ``pow`` to SIMD
    code that is not correctly rounded on some CPUs, e.g. 0.9**4 with AVX512).  A traced
    step (an array, under ``jax.jit``) uses the namespace's ``pow`` in D.
    """
    xp = namespace(like)
    p = hyper.profile
    b1, b2 = hyper.beta_1, hyper.beta_2
    if p.hyper_rounding in ("float32", "keras3"):
        b1 = round_to_float32(b1)
        b2 = round_to_float32(b2) if p.hyper_rounding == "float32" else b2
        if not hasattr(lr, "shape"):
            lr = round_to_float32(float(lr))
    b1_d = scalar(xp, b1, like)
    one = scalar(xp, 1.0, like)
    lr_d = scalar(xp, lr, like)
    if not p.bias_correction:
        lr_t = lr_d
    elif p.hyper_rounding in ("float32", "keras3") or hasattr(lr, "shape"):
        if hasattr(t, "shape"):
            power = xp.pow(b1_d, scalar(xp, t, like))
        else:
            fi = xp.finfo(like.dtype)
            b1_held = round_to_format(b1, float(fi.eps), float(fi.smallest_normal))  # b1_d's value
            power = scalar(xp, b1_held ** _cast_step(xp, t, like), like)
        lr_t = lr_d / (one - power)
    else:
        lr_t = scalar(xp, float(lr) / (1.0 - b1**t), like)
    # Keras 3 multiplies by the Python double (1 - beta_1) cast to D, not by 1 - (beta_1 in D)
    one_minus_b1 = scalar(xp, 1.0 - hyper.beta_1, like) if p.hyper_rounding == "keras3" else one - b1_d
    return StepScalars(lr_t, b1_d, one_minus_b1, scalar(xp, b2, like), scalar(xp, hyper.epsilon, like))


def _cast_step(xp: Any, t: int, like: Any) -> float:
    """``float(t)`` as the cast to ``like``'s dtype rounds it, overflow included (Keras casts t to the
    variable dtype: float16 sees step 65520 and beyond as inf, and ``b1**inf = 0``), without the
    overflow warning a direct cast may emit."""
    fi = xp.finfo(like.dtype)
    big, eps = float(fi.max), float(fi.eps)
    overflow = big + big * eps / (2 * (2 - eps))  # max + ulp(max)/2: the cast rounds this and above to inf
    return math.inf if t >= overflow else float(t)


def update_rows(
    profile: Profile, w: Any, g: Any, m: Any, u: Any, s: StepScalars, *, kernel_form: bool,
    magnitude: Any = None,
) -> tuple[Any, Any, Any]:
    """One Adamax step on matching arrays (whole tensors, or gathered rows).

    ``kernel_form`` selects ``m + (g - m)*(1 - b1)`` (Keras's dense kernel, torch's
    lerp) over ``b1*m + (1 - b1)*g`` (Keras's sparse path); both are the same real
    number and are conformant (clause U-1).  ``magnitude`` is what ``u`` sees in place
    of ``|g|`` (``sum_j |v_j|`` for a ``sum_of_abs`` profile's sparse rows), ``None``: ``|g|``.
    """
    xp = namespace(w, g, m, u)
    if kernel_form:
        m = m + (g - m) * s.one_minus_beta_1
    else:
        m = m * s.beta_1 + g * s.one_minus_beta_1
    decayed = s.beta_2 * u
    mag = xp.abs(g) if magnitude is None else magnitude
    eps = profile.epsilon
    if eps == "inside":
        mag = mag + s.epsilon
    elif eps == "inside_decay":
        decayed = decayed + s.epsilon
    if profile.nan_in_max == "keep_decayed" and kernel_form:
        u = xp.where(decayed < mag, mag, decayed)
    else:
        u = xp.maximum(decayed, mag)
    denom = u + s.epsilon if eps == "outside" else u
    return w - s.lr_t * (m / denom), m, u


@dataclass
class Step:
    """The beginning every implementation of one step shares (clause C-1, L-1, T-1).

    ``grads``: the gradients after clipping (value, then norm, then global norm);
    ``lr``: the learning rate for this step before bias correction (schedule, callable
    and legacy ``decay`` applied); ``t = iterations + 1``.  :meth:`scalars` gives the
    step's 0-d scalars for a parameter's (dtype, device), computed once per pair.

    Made by :func:`begin_step`; the generic path (:func:`apply_step`) and every
    per-library fast path (``adamax_spec.dispatch``) take the step from it, so none of
    them computes clipping, the learning rate, ``t`` or the scalars itself.
    """

    hyper: Hyper
    grads: list[Any]
    lr: Any
    t: int
    _scalars: dict[tuple[str, str], StepScalars] = field(default_factory=dict, repr=False)

    @property
    def profile(self) -> Profile:
        return self.hyper.profile

    def scalars(self, w: Any, like: Any = None) -> StepScalars:
        """:func:`step_scalars` for parameter ``w``'s dtype and device, computed on ``like``
        (an array of that dtype where the kernel wants its scalars, e.g. on the host; default ``w``)."""
        key = (str(w.dtype), str(device(w)))
        found = self._scalars.get(key)
        if found is None:
            found = self._scalars[key] = step_scalars(self.hyper, self.lr, self.t, w if like is None else like)
        return found


def begin_step(grads: Sequence[Any], state: AdamaxState, hyper: Hyper) -> Step:
    """Clip ``grads``, evaluate the learning rate for ``state.iterations`` and count the step."""
    clipped = clip_gradients(grads, clipvalue=hyper.clipvalue, clipnorm=hyper.clipnorm,
                             global_clipnorm=hyper.global_clipnorm)
    return Step(hyper, clipped, learning_rate_at(hyper, state.iterations), state.iterations + 1)


def apply_gradients(
    params: Sequence[Any],
    grads: Sequence[Any],
    state: AdamaxState,
    hyper: Hyper,
    *,
    write_rows: Callable[[Any, Any, Any], Any] | None = None,
) -> tuple[list[Any], AdamaxState]:
    """Apply one step: clip, then update every parameter that has a gradient.

    Returns ``(new_params, new_state)``; parameters whose gradient is ``None``
    (and their moments) are returned unchanged.  ``iterations`` grows by one
    per call, whatever the number of parameters (clause T-1).  Arguments are
    assumed valid (see :func:`adamax_spec.functional.update`, which validates).

    ``write_rows(table, rows_index, new_rows)`` writes a lazy sparse update;
    by default ``array_api_extra.at(table, index).set(rows)``, which copies the
    table on libraries that cannot write in place.
    """
    return apply_step(params, begin_step(grads, state, hyper), state, write_rows=write_rows)


def apply_step(
    params: Sequence[Any],
    step: Step,
    state: AdamaxState,
    *,
    write_rows: Callable[[Any, Any, Any], Any] | None = None,
) -> tuple[list[Any], AdamaxState]:
    """The generic array-API path of a step begun by :func:`begin_step` (see :func:`apply_gradients`)."""
    profile = step.profile
    write = write_rows or _set_rows
    new_w, new_m, new_u = list(params), list(state.m), list(state.u)
    row_writes: list[tuple[int, Any, Any, Any, Any]] = []  # done after every update is computed
    for i, (w, g) in enumerate(zip(params, step.grads, strict=True)):
        if g is None:
            continue
        s = step.scalars(w)
        m, u = state.m[i], state.u[i]
        mags = _sum_of_abs(g) if isinstance(g, IndexedSlices) and _sums_abs(step) else None
        if isinstance(g, IndexedSlices) and profile.sparse == "lazy":
            xp = namespace(w)
            rows, values = coalesce_rows(g.indices, g.values)
            w_rows, m_rows, u_rows = update_rows(
                profile,
                xp.take(w, rows, axis=0),
                values,
                xp.take(m, rows, axis=0),
                xp.take(u, rows, axis=0),
                s,
                kernel_form=False,
                magnitude=None if mags is None else coalesce_rows(mags.indices, mags.values)[1],
            )
            row_writes.append((i, rows, w_rows, m_rows, u_rows))
        else:
            dense = densify(g, w) if isinstance(g, IndexedSlices) else g
            new_w[i], new_m[i], new_u[i] = update_rows(profile, w, dense, m, u, s, kernel_form=True,
                                                       magnitude=None if mags is None else densify(mags, w))
    # In-place row writes (``write_rows``) wait until nothing can fail: a step that raises changes nothing.
    for i, rows, w_rows, m_rows, u_rows in row_writes:
        new_w[i] = write(params[i], rows, w_rows)
        new_m[i] = write(state.m[i], rows, m_rows)
        new_u[i] = write(state.u[i], rows, u_rows)
    return new_w, AdamaxState(step.t, tuple(new_m), tuple(new_u))


def _sums_abs(step: Step) -> bool:
    """Does ``u`` of a repeated sparse row see ``sum_j |v_j|`` in this step (a ``sum_of_abs`` profile,
    unless its ``global_clipnorm`` densified the gradient: ``Profile.global_clipnorm_densifies``)?"""
    p = step.profile
    return p.sparse_magnitude == "sum_of_abs" and not (
        p.global_clipnorm_densifies and step.hyper.global_clipnorm is not None)


def _sum_of_abs(g: IndexedSlices) -> IndexedSlices:
    """The slices' magnitudes ``|v_j|``, still unsummed (a ``sum_of_abs`` profile's ``u`` input)."""
    return IndexedSlices(namespace(g.values).abs(g.values), g.indices, g.dense_shape)


def _set_rows(table: Any, rows: Any, values: Any) -> Any:
    """``table`` with ``table[rows] = values`` (``rows`` sorted and unique), as a new array."""
    from array_api_extra import at

    try:  # copy=True: the default (None) may write into ``table``, which is the caller's input here
        return at(table, rows).set(values, copy=True)
    except IndexError:  # a namespace without integer-array __setitem__ (array-api-strict)
        return take_rows(table, rows, values)
