"""Hand cases with derived trajectories for the inputs of issue 15 (sparse gradients under
clipping, the legacy ``decay``, per-step learning rates), shared by
tests/reference/test_reference_inputs.py (the reference accepts the right reading and rejects the
wrong ones) and tests/conformance/test_keras_inputs.py (tf_keras legacy gives the right one)."""

from __future__ import annotations

import numpy as np

from adamax_spec.conformance.case import Case, SparseGrad, Trajectory

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7


def f32(x: float) -> np.ndarray:
    return np.asarray(np.float32(x), dtype=np.float64)


def first_step(g: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One keras step from w = m = u = 0 with gradient ``g`` (the row's summed, clipped value):
    ``m = (1-b1) g``, ``u = |g|``, ``w = -lr/(1-b1) * m/(u+eps)`` in doubles, each rounded once to
    float32 (a float32 target may round each result once; the bound allows more)."""
    m = (1 - B1) * g
    u = abs(g)
    w = -LR / (1 - B1) * m / (u + EPS)
    return f32(w), f32(m), f32(u)


def table_trajectory(g_row0: float, extra: list[float] | None = None) -> Trajectory:
    """A 2x1 table whose sparse gradient names row 0 only (row 1 stays 0), and where given a dense
    parameter of one element with gradient ``extra[0]``."""
    w, m, u = first_step(g_row0)
    zero = np.zeros(())
    ws, ms, us = [np.stack([w, zero]).reshape(2, 1)], [np.stack([m, zero]).reshape(2, 1)], \
        [np.stack([u, zero]).reshape(2, 1)]
    if extra is not None:
        w2, m2, u2 = first_step(extra[0])
        ws.append(w2.reshape(1))
        ms.append(m2.reshape(1))
        us.append(u2.reshape(1))
    return Trajectory(params=[ws], m=[ms], u=[us])


def sparse_case(values: list[float], clip: dict[str, float], dense: float | None = None) -> Case:
    params = [np.zeros((2, 1))] + ([np.zeros(1)] if dense is not None else [])
    grads: list[object] = [SparseGrad(np.zeros(len(values), dtype=np.int64), np.array(values).reshape(-1, 1), (2, 1))]
    if dense is not None:
        grads.append(np.array([dense]))
    hyper = {"learning_rate": LR, "beta_1": B1, "beta_2": B2, "epsilon": EPS, **clip}
    return Case(params, [grads], hyper, "float32")


# (values at row 0, clip argument, dense gradient, row 0's gradient clipped then summed (correct),
#  summed then clipped (wrong), the dense gradient's clipped value (correct, wrong))
CLIP_CASES = {
    # slices 3 and 4 each within 3.5: 3 + 3.5 = 6.5; summed first: 7 clipped to 3.5
    "clipvalue": ([3.0, 4.0], {"clipvalue": 3.5}, None, 6.5, 3.5, None),
    # the values' norm sqrt(9 + 16) = 5 does not exceed 5: nothing clipped, 3 + 4 = 7; summed
    # first: |7| > 5 scales it to 5
    "clipnorm": ([3.0, 4.0], {"clipnorm": 5.0}, None, 7.0, 5.0, None),
    # global norm over the slices and the dense gradient: sqrt(9 + 16 + 144) = 13, scale 1.3/13 =
    # 0.1: row 0 gets 0.3 + 0.4 = 0.7, the dense one 1.2; summed first: sqrt(49 + 144) = 13.892...,
    # scale 1.3/13.892 = 0.09358: row 0 gets 0.655, the dense one 1.123
    "global_clipnorm": ([3.0, 4.0], {"global_clipnorm": 1.3}, 12.0, 0.7, 7 * 1.3 / np.sqrt(193),
                        (1.2, 12 * 1.3 / np.sqrt(193))),
}


# -- learning rates --------------------------------------------------------------------------------
#: beta_1 = beta_2 = 0 and g = 1 at every step: m = 1, u = 1, 1 - b1**t = 1, so step k + 1 moves w
#: by exactly lr_k / (1 + eps) with lr_k that step's learning rate (after decay)
PER_STEP = (0.1, 0.05, 0.02)
DECAY = 0.5


def lr_case(lr: object, decay: float | None) -> Case:
    hyper = {"learning_rate": lr, "beta_1": 0.0, "beta_2": 0.0, "epsilon": EPS}
    if decay is not None:
        hyper["decay"] = decay
    return Case([np.zeros(1)], [[np.ones(1)]] * 3, hyper, "float32")


def lr_trajectory(rates: list[float]) -> Trajectory:
    """w after each step: w_k = w_{k-1} - rates[k] / (1 + eps), rounded to float32 each step (the
    judge starts every step from the target's own w: teacher forcing)."""
    w, ws = np.zeros(1), []
    for r in rates:
        w = np.asarray(np.float32(w[0] - r / (1 + EPS)), dtype=np.float64).reshape(1)
        ws.append([w])
    return Trajectory(params=ws, m=[[np.ones(1)]] * 3, u=[[np.ones(1)]] * 3)


# the rates a correct target uses, and wrong readings of the same inputs; iterations = k at step k + 1
LR_READINGS = {
    "decay": (0.1, DECAY, {
        "right": [0.1 / (1 + DECAY * k) for k in range(3)],
        "no decay": [0.1] * 3,
        "decay one step late (iterations + 1)": [0.1 / (1 + DECAY * (k + 1)) for k in range(3)],
    }),
    "per step": (PER_STEP, None, {
        "right": list(PER_STEP),
        "the callable read once": [PER_STEP[0]] * 3,
        "one step late": [PER_STEP[0], PER_STEP[0], PER_STEP[1]],
    }),
    "per step with decay": (PER_STEP, DECAY, {
        "right": [PER_STEP[k] / (1 + DECAY * k) for k in range(3)],
        "no decay": list(PER_STEP),
        "the callable read once": [PER_STEP[0] / (1 + DECAY * k) for k in range(3)],
    }),
}
