"""Interpretations: the hyperparameter values a correct target may actually compute with.

A test case gives ``learning_rate``, ``beta_1``, ``beta_2`` and ``epsilon`` as Python
doubles.  A correct target may use them as passed (torch, in Python doubles), rounded
to its dtype (optax), or rounded to float32 first (Keras, which also rounds the step
count to the dtype), or mix these per hyperparameter (Keras 3's float32 learning-rate
variable, torch's "opmath" compute type).  Each such choice is an *interpretation*:
a dict of the values used (``learning_rate`` absent when it is a schedule, a tuple of
per-step values when the case gives one per step: each rounded as a constant one is) plus the
flags the judge reads:

``_round_t``
    the step count ``t`` is rounded to the dtype before ``beta_1 ** t``;
``_b1_bias``
    the ``beta_1`` of the bias correction ``1 - beta_1 ** t``, where it differs from the
    ``beta_1`` of the moment update.

A target conforms if one interpretation keeps every comparison within bound
(:func:`adamax_spec.reference.verdict.judge` tries them in this order).
:func:`effective` drops those that give the same numbers as an earlier one on a case.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adamax_spec.reference.formats import round_to

__all__ = ["effective", "interpretations"]


def interpretations(hyper: dict[str, Any], dtype: str) -> dict[str, dict[str, Any]]:
    """The hyperparameter values a correct target may actually use, deduplicated."""
    keys = ("beta_1", "beta_2", "epsilon")
    lr = hyper["learning_rate"]
    base: dict[str, Any] = {k: float(hyper[k]) for k in keys}
    if isinstance(lr, list | tuple):  # one value per step (a callable's value at each step)
        base["learning_rate"] = tuple(float(x) for x in lr)
    elif not isinstance(lr, dict):
        base["learning_rate"] = float(lr)

    def rounded(d: str, via32: bool) -> dict[str, Any]:
        out = {}
        for k, v in base.items():
            out[k] = _each(v, lambda x, k=k: float(round_to(
                float(round_to(x, "float32")) if via32 and k != "epsilon" else x, d)))
        return out

    cands = {
        "as passed": dict(base),
        "rounded to dtype": rounded(dtype, False),
        "float32 hyperparameters, step in dtype": {**rounded(dtype, True), "_round_t": True},
    }
    # Keras 3: a float32 learning-rate variable and beta_1 ** t from a float32 beta_1, while the
    # moment updates use the Python values cast to the dtype (keras/src/optimizers/adamax.py).
    keras3 = rounded(dtype, False)
    if "learning_rate" in base:
        keras3["learning_rate"] = _each(base["learning_rate"],
                                        lambda x: float(round_to(float(round_to(x, "float32")), dtype)))
    b1_bias = float(round_to(float(round_to(base["beta_1"], "float32")), dtype))
    if b1_bias != keras3["beta_1"]:
        keras3["_b1_bias"] = b1_bias
    cands["float32 learning rate and bias-correction beta_1, rest in dtype"] = keras3
    # Keras 3 on TensorFlow as it runs: the moment weight is the Python double (1 - beta_1) cast
    # to the dtype, within half an ULP of 1 - beta_1 as passed, while beta_1 ** t still comes from
    # beta_1 cast to the dtype. In bfloat16 a beta_1 of 0.998 or more is 1.0 there, so
    # 1 - beta_1**t = 0 and the step is +-inf where m is not 0 (measured: w = inf after one step);
    # "rest in dtype" above rounds beta_1 itself, which gives m = 0 and NaN instead.
    cands["float32 learning rate and bias-correction beta_1, 1 - beta_1 from the double, rest in dtype"] = {
        **keras3, "beta_1": base["beta_1"], **({"_b1_bias": b1_bias} if b1_bias != base["beta_1"] else {})}
    # Keras 3 on the torch and JAX backends: ops.cast(beta_1, dtype) keeps the double, so only
    # the float32 learning-rate variable is rounded (measured: w after one float64 step).
    cands["float32 learning rate, rest in dtype"] = {k: v for k, v in keras3.items() if k != "_b1_bias"}
    # torch.optim.Adamax: beta_2 and epsilon become scalars of the op's compute type (the dtype;
    # float32 for float16/bfloat16 tensors on CPU, "opmath"), the lerp weight is (1 - beta_1)
    # rounded once, and lr / (1 - beta_1**t) is formed from Python doubles.
    opmath = "float32" if dtype in ("float16", "bfloat16") else dtype
    cands["beta_2 and epsilon in the compute type, rest as passed"] = {
        **base, "beta_2": float(round_to(base["beta_2"], opmath)), "epsilon": float(round_to(base["epsilon"], opmath))}
    # optax on JAX: Python floats are weakly typed, so beta_2 and epsilon take the array's dtype
    # (float16/bfloat16 included), while the step size is formed apart (from beta_1 as passed).
    cands["beta_2 and epsilon in dtype, rest as passed"] = {
        **base, "beta_2": float(round_to(base["beta_2"], dtype)), "epsilon": float(round_to(base["epsilon"], dtype))}
    if dtype == "bfloat16":
        # torch on CPU, bfloat16: exp_inf.mul_(beta_2) multiplies in float32, but grad.abs().add_(eps)
        # adds eps rounded to bfloat16 (measured: |g| = 0.00105 plus 1e-3 gives 0.0020446..., as
        # with bfloat16(1e-3) = 0.00099945, where float32 eps gives 0.0020599...).
        cands["beta_2 in float32, epsilon in bfloat16, rest as passed"] = {
            **base, "beta_2": float(round_to(base["beta_2"], "float32")),
            "epsilon": float(round_to(base["epsilon"], "bfloat16"))}
    seen: dict[str, dict[str, Any]] = {}
    for name, c in cands.items():
        if c not in seen.values():
            seen[name] = c
    return seen


def _each(v: Any, fn: Any) -> Any:
    """``fn`` of a number, or of each of a tuple of per-step numbers."""
    return tuple(fn(x) for x in v) if isinstance(v, tuple) else fn(v)


def effective(case: Any, interps: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``interps`` (:func:`interpretations` of ``case``), less those that give the same numbers as an
    earlier one on this case (rounding the step count to the dtype changes nothing while every ``t``
    is exact)."""
    out: dict[str, dict[str, Any]] = {}
    seen = []
    ts = np.arange(1, case.steps + 1, dtype=np.float64)
    for name, interp in interps.items():
        c = dict(interp)
        if c.pop("_round_t", False) and np.any(round_to(ts, case.dtype) != ts):
            c["_round_t"] = True
        if c not in seen:
            seen.append(c)
            out[name] = c
    return out
