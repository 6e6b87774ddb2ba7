"""Hypothesis strategies for cases: generated on the host with NumPy, handed to any target.

Values are drawn to stress the places where variants and bugs differ:
gradients near epsilon (epsilon placement), zeros and signed zeros, sign
flips, huge and tiny magnitudes, ``b1`` in {0, 0.5, 0.9, 0.999} (bias
correction conditioning), odd shapes (0-d, empty, 1, 7).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..reference.formats import round_to
from .case import Case, SparseGrad

__all__ = [
    "checkpoint_cases",
    "clip_cases",
    "dense_cases",
    "hyperparameters",
    "schedule_cases",
    "sparse_cases",
]

SHAPES = [(), (0,), (1,), (7,), (3, 5), (64,)]
BETA_1 = [0.0, 0.5, 0.9, 0.999]
BETA_2 = [0.9, 0.99, 0.999]


def hyperparameters(profile_defaults: dict[str, float] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    d = profile_defaults or {}
    return st.fixed_dictionaries({
        "learning_rate": st.sampled_from([1e-3, 0.01, 0.1, 0.5]) | st.floats(1e-4, 1.0),
        "beta_1": st.sampled_from(BETA_1) | st.floats(0.0, 0.9999),
        "beta_2": st.sampled_from(BETA_2) | st.floats(0.5, 0.9999),
        "epsilon": st.sampled_from([d.get("epsilon", 1e-7), 1e-7, 1e-8, 1e-3]),
    })


@st.composite
def _grad(draw: Any, shape: tuple[int, ...], eps: float, dtype: str, rng: np.random.Generator) -> np.ndarray:
    kind = draw(st.sampled_from(["normal", "near_eps", "zeros", "mixed", "huge_tiny", "flip"]))
    n = int(np.prod(shape)) if shape else 1
    if kind == "normal":
        g = rng.standard_normal(n)
    elif kind == "near_eps":
        g = eps * np.exp(rng.uniform(-2.3, 2.3, n)) * rng.choice([-1.0, 1.0], n)
    elif kind == "zeros":
        g = np.where(rng.random(n) < 0.5, 0.0, -0.0)
    elif kind == "mixed":
        g = rng.standard_normal(n) * np.where(rng.random(n) < 0.3, 0.0, 1.0)
        g = np.where(rng.random(n) < 0.3, eps * rng.uniform(0.1, 10, n), g)
    elif kind == "huge_tiny":
        lim = 8.0 if dtype == "float16" else 30.0
        g = rng.standard_normal(n) * np.exp(rng.uniform(-lim, lim / 3, n))
    else:
        g = np.sign(rng.standard_normal(n)) * rng.uniform(0.5, 2.0, n)
    return round_to(g, dtype).reshape(shape)


def _rng(draw: Any) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def dense_cases(draw: Any, dtypes: tuple[str, ...] = ("float32",), max_steps: int = 12,
                profile_defaults: dict[str, float] | None = None) -> Case:
    rng = _rng(draw)
    dtype = draw(st.sampled_from(dtypes))
    hyper = draw(hyperparameters(profile_defaults))
    if dtype == "float16":
        hyper["epsilon"] = draw(st.sampled_from([1e-3, 1e-4, hyper["epsilon"]]))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    steps = draw(st.integers(1, max_steps))
    params = [round_to(rng.standard_normal(s) * draw(st.sampled_from([0.0, 1e-3, 1.0, 100.0])),
                       dtype).reshape(s) for s in shapes]
    grads = [[draw(_grad(s, hyper["epsilon"], dtype, rng)) for s in shapes] for _ in range(steps)]
    return Case(params, grads, hyper, dtype, label="dense")


@st.composite
def sparse_cases(draw: Any, max_steps: int = 6) -> Case:
    rng = _rng(draw)
    hyper = draw(hyperparameters())
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    shape = (rows, cols)
    params = [round_to(rng.standard_normal(shape), "float32")]
    steps = draw(st.integers(1, max_steps))
    grads = []
    for _ in range(steps):
        k = draw(st.integers(0, 2 * rows))
        idx = rng.integers(0, rows, k)
        vals = draw(_grad((k, cols), hyper["epsilon"], "float32", rng))
        grads.append([SparseGrad(idx.astype(np.int64), vals, shape)])
    return Case(params, grads, hyper, "float32", label="sparse")


@st.composite
def clip_cases(draw: Any) -> Case:
    case = draw(dense_cases(max_steps=6))
    which = draw(st.lists(st.sampled_from(["clipvalue", "clipnorm", "global_clipnorm"]),
                          min_size=1, max_size=2, unique=True))
    if "clipnorm" in which and "global_clipnorm" in which:
        which.remove("global_clipnorm")
    hyper = dict(case.hyper)
    for k in which:
        hyper[k] = draw(st.sampled_from([0.1, 0.5, 1.0, 3.0]))
    return Case(case.params, case.grads, hyper, case.dtype, label="clip:" + "+".join(which))


_SCHEDULES = st.one_of(
    st.builds(lambda ds, r, sc: {"class_name": "ExponentialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": ds, "decay_rate": r, "staircase": sc}},
        st.integers(1, 10), st.sampled_from([0.5, 0.9, 0.96]), st.booleans()),
    st.builds(lambda: {"class_name": "PiecewiseConstantDecay", "config": {
        "boundaries": [2, 4], "values": [0.1, 0.05, 0.01]}}),
    st.builds(lambda ds, cyc: {"class_name": "PolynomialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": ds, "end_learning_rate": 0.01,
        "power": 1.0, "cycle": cyc}}, st.integers(1, 10), st.booleans()),
    st.builds(lambda ds: {"class_name": "InverseTimeDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": ds, "decay_rate": 0.5}}, st.integers(1, 10)),
    st.builds(lambda ds, a: {"class_name": "CosineDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": ds, "alpha": a}},
        st.integers(1, 10), st.sampled_from([0.0, 0.1])),
    st.builds(lambda fds: {"class_name": "CosineDecayRestarts", "config": {
        "initial_learning_rate": 0.1, "first_decay_steps": fds, "t_mul": 2.0, "m_mul": 0.5}},
        st.integers(1, 5)),
)


@st.composite
def schedule_cases(draw: Any) -> Case:
    case = draw(dense_cases(max_steps=12))
    hyper = dict(case.hyper, learning_rate=draw(_SCHEDULES))
    return Case(case.params, case.grads, hyper, case.dtype, label="schedule")


@st.composite
def checkpoint_cases(draw: Any) -> Case:
    case = draw(dense_cases(max_steps=8))
    at = draw(st.integers(0, case.steps))
    return Case(case.params, case.grads, case.hyper, case.dtype, checkpoint_at=at, label="checkpoint")
