"""Hypothesis strategies for cases: generated on the host with NumPy, handed to any target.

Values are drawn to stress the places where variants and bugs differ:
gradients near epsilon (epsilon placement), zeros and signed zeros, sign
flips, exact ties ``|g| == b2*u`` (which side of the max wins), huge and tiny
magnitudes (near the dtype's overflow and underflow), ``b1`` in
{0, 0.5, 0.9, 0.999} (bias correction conditioning), odd shapes (0-d, empty,
1, 7), float16 with an epsilon that rounds to zero or a subnormal, missing
(``None``) gradients, non-finite gradients, and step counts past 2048 (where a
float16 step counter stops counting: 2049 is not a float16 number).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from adamax_spec.reference.formats import round_to

from .case import Case, SparseGrad

__all__ = [
    "checkpoint_cases",
    "clip_cases",
    "counter_cases",
    "dense_cases",
    "epsilon_cases",
    "group_cases",
    "hyperparameters",
    "input_cases",
    "invariant_cases",
    "learning_rate_cases",
    "none_grad_cases",
    "nonfinite_cases",
    "schedule_cases",
    "sparse_cases",
    "sparse_clip_cases",
]

#: Largest finite value per dtype (bfloat16 shares float32's exponent range).
_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38, "float32": 3.4028234663852886e38,
        "float64": 1.7976931348623157e308}
#: Smallest normal value per dtype.
_TINY = {"float16": 2.0 ** -14, "bfloat16": 2.0 ** -126, "float32": 2.0 ** -126, "float64": 2.0 ** -1022}

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
def _grad(draw: Any, shape: tuple[int, ...], eps: float, dtype: str, rng: np.random.Generator,
          u_prev: np.ndarray | None = None, b2: float = 0.999, huge: bool = True) -> np.ndarray:
    kinds = ["normal", "near_eps", "zeros", "mixed", "huge_tiny", "flip"]
    if u_prev is not None:
        kinds.append("tie")
    if huge:
        kinds.append("extreme")
    kind = draw(st.sampled_from(kinds))
    n = int(np.prod(shape)) if shape else 1
    if kind == "tie":
        # |g| == b2*u exactly (u as a float64 simulation of the keras rule; b2*u rounded to
        # the dtype first, so the tie is exact for a target computing b2*u in the dtype).
        t = round_to(round_to(b2, dtype) * np.asarray(u_prev, dtype=np.float64).reshape(-1), dtype)
        g = t * rng.choice([-1.0, 1.0], n)
        return round_to(g, dtype).reshape(shape)
    if kind == "extreme":
        # Magnitudes within a factor 2**-12 of the dtype's overflow threshold, and tiny ones just
        # above its smallest normal number (subnormal inputs are flushed to zero by some
        # frameworks' conversions, e.g. TensorFlow's, so none are fed); no product g*g is
        # formed by an unclipped Adamax step.
        big = _MAX[dtype] * 2.0 ** -12
        tiny = _TINY[dtype]
        g = np.where(rng.random(n) < 0.5, big * rng.uniform(0.5, 1.0, n), tiny * rng.uniform(1.0, 16.0, n))
        return round_to(g * rng.choice([-1.0, 1.0], n), dtype).reshape(shape)
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
                profile_defaults: dict[str, float] | None = None, huge: bool = True,
                min_steps: int = 1,
                epsilons: Callable[[str], st.SearchStrategy[float | None]] | None = None) -> Case:
    """``epsilons``: ``dtype -> strategy`` of the epsilon to pass (``None`` and ``0`` are
    given as drawn; gradients near epsilon are then drawn near Keras's fallback, 1e-7)."""
    rng = _rng(draw)
    dtype = draw(st.sampled_from(dtypes))
    hyper = draw(hyperparameters(profile_defaults))
    if epsilons is not None:
        hyper["epsilon"] = draw(epsilons(dtype))
    elif dtype == "float16":
        # 1e-3, 1e-4: normal in float16; the drawn one may be 1e-7 (a float16 subnormal) or 1e-8
        # (rounds to zero in float16: epsilon underflows).
        hyper["epsilon"] = draw(st.sampled_from([1e-3, 1e-4, hyper["epsilon"]]))
    near = hyper["epsilon"] or 1e-7  # the scale of "near epsilon" gradients
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    steps = draw(st.integers(min_steps, max_steps))
    params = [round_to(rng.standard_normal(s) * draw(st.sampled_from([0.0, 1e-3, 1.0, 100.0])),
                       dtype).reshape(s) for s in shapes]
    u = [np.zeros(int(np.prod(s)) if s else 1) for s in shapes]
    grads = []
    for _ in range(steps):
        step = []
        for i, s in enumerate(shapes):
            g = draw(_grad(s, near, dtype, rng, u_prev=u[i], b2=hyper["beta_2"], huge=huge))
            u[i] = np.maximum(hyper["beta_2"] * u[i], np.abs(g.reshape(-1)))
            step.append(g)
        grads.append(step)
    return Case(params, grads, hyper, dtype, label="dense")


#: a sparse table's shape after its rows: rank 1, 2 or 3
_ROW_SHAPES = ((), (1,), (2,), (4,), (2, 3))


@st.composite
def sparse_cases(draw: Any, max_steps: int = 6) -> Case:
    """A float32 table of rank 1 to 3 (1 to 12 rows) with sparse gradients: random rows,
    duplicates and empty gradients included, int32 or int64 indices (the two an
    ``IndexedSlices`` takes); one case in three has a dense parameter next to the table (two
    kinds of gradient in one step)."""
    rng = _rng(draw)
    hyper = draw(hyperparameters())
    # six row counts, not twelve: a jitted target (JAX) compiles a sparse step per table shape
    rows = draw(st.sampled_from([1, 2, 3, 5, 8, 12]))
    # chosen by rng: hypothesis favours the first choices of a sampled_from in a run of 25 examples
    tail = _ROW_SHAPES[int(rng.integers(len(_ROW_SHAPES)))]
    shape = (rows, *tail)
    index_dtype = np.int32 if rng.random() < 0.5 else np.int64
    dense_shape = (3,) if rng.random() < 1 / 3 else None
    params = [round_to(rng.standard_normal(shape), "float32")]
    if dense_shape is not None:
        params.append(round_to(rng.standard_normal(dense_shape), "float32"))
    steps = draw(st.integers(1, max_steps))
    grads = []
    for _ in range(steps):
        k = draw(st.integers(0, 2 * rows))
        idx = rng.integers(0, rows, k)
        vals = draw(_grad((k, *tail), hyper["epsilon"], "float32", rng))
        step: list[Any] = [SparseGrad(idx.astype(index_dtype), vals, shape)]
        if dense_shape is not None:
            step.append(draw(_grad(dense_shape, hyper["epsilon"], "float32", rng)))
        grads.append(step)
    return Case(params, grads, hyper, "float32", label="sparse")


#: the clip arguments a case sets: each alone, and clipvalue with either norm (never clipnorm with
#: global_clipnorm, C-4)
_CLIPS = (("clipvalue",), ("clipnorm",), ("global_clipnorm",), ("clipvalue", "clipnorm"),
          ("clipvalue", "global_clipnorm"))


def _clip_arguments(rng: np.random.Generator) -> dict[str, float]:
    """One or two clip arguments and their values, chosen uniformly (hypothesis would favour
    the first choices of a ``sampled_from`` in a run of 25 examples)."""
    return {k: float(rng.choice([0.1, 0.5, 1.0, 3.0])) for k in _CLIPS[int(rng.integers(len(_CLIPS)))]}


@st.composite
def clip_cases(draw: Any) -> Case:
    """Dense cases (seven in ten) or sparse ones (:func:`sparse_clip_cases`) with clipping."""
    rng = _rng(draw)
    if rng.random() < 0.3:
        return draw(sparse_clip_cases())
    # No near-overflow gradients: a norm's g*g would overflow (Keras 2.9 then clips to 0).
    case = draw(dense_cases(max_steps=6, huge=False))
    clips = _clip_arguments(rng)
    return Case(case.params, case.grads, {**case.hyper, **clips}, case.dtype, label="clip:" + "+".join(clips))


def _crossing(draw: Any, rng: np.random.Generator, clip: str, c: float, rows: int, cols: int,
              other_norm: float) -> SparseGrad:
    """A sparse gradient whose slices of one row cross the clip threshold ``c`` only once summed
    (C-1: clipping acts on the values as given, before duplicates are summed), or the other way
    round (slices of opposite sign whose norm is above ``c``, their sum far below it).

    ``clipvalue``: ``j`` slices of one sign, each ``|v| < c``, summing past ``c``.  ``clipnorm``,
    ``global_clipnorm``: ``j`` copies of ``v`` with ``|v| = x c``, so the values' norm
    ``sqrt(j) x c`` is below ``c`` and the summed row's ``j x c`` above it, for ``1/j < x < 1/sqrt(j)``
    (drawn with a margin: ``other_norm``, the norm of the other gradients under global_clipnorm, is
    at most ``c/20``, which moves the thresholds by under 0.2%); "over": ``v`` and ``-0.8 v`` with
    ``|v| = 0.9 c``, values' norm ``1.15 c`` (clipped), summed ``0.18 c`` (not)."""
    row = int(rng.integers(0, rows))
    j = draw(st.integers(2, 3))
    sign = rng.choice([-1.0, 1.0], cols)
    if clip == "clipvalue":
        vals = sign * c * rng.uniform(0.55, 0.95, (j, cols))
        return SparseGrad(np.full(j, row, dtype=np.int64), round_to(vals, "float32"), (rows, cols))
    direction = rng.standard_normal(cols)
    direction /= np.linalg.norm(direction) or 1.0
    if draw(st.booleans()):  # under as given, over once summed
        x = rng.uniform(1.1 / j, 0.95 / np.sqrt(j))
        vals = np.tile(direction * x * c, (j, 1))
    else:  # over as given, far under once summed
        vals = np.stack([direction * 0.9 * c, -0.8 * direction * 0.9 * c])
    assert other_norm <= c / 20
    return SparseGrad(np.full(len(vals), row, dtype=np.int64), round_to(vals, "float32"), (rows, cols))


@st.composite
def sparse_clip_cases(draw: Any, max_steps: int = 4) -> Case:
    """A float32 table (1 to 8 rows, 1 to 3 columns) with sparse gradients, sometimes next to a
    dense parameter (global_clipnorm takes the norm over both), under clipping (C-1).

    A step is random rows (duplicates and empty slices included, :func:`_grad` values), or rows
    whose slices cross the clip threshold only once summed (:func:`_crossing`): a target that sums
    duplicates before clipping, or clips the summed rows, moves them differently."""
    rng = _rng(draw)
    hyper = {**draw(hyperparameters()), **_clip_arguments(rng)}
    rows, cols = draw(st.integers(1, 8)), draw(st.integers(1, 3))
    params = [round_to(rng.standard_normal((rows, cols)), "float32")]
    dense_shape = draw(st.sampled_from([None, (), (3,), (2, 2)]))
    if dense_shape is not None:
        params.append(round_to(rng.standard_normal(dense_shape), "float32").reshape(dense_shape))
    grads = []
    for _ in range(draw(st.integers(1, max_steps))):
        step: list[Any] = []
        small = 0.0
        if draw(st.booleans()):
            clip = draw(st.sampled_from([k for k in ("clipvalue", "clipnorm", "global_clipnorm") if k in hyper]))
            if dense_shape is not None:  # small next to the crossing row (norm c/40 at most)
                d = rng.standard_normal(dense_shape)
                n = float(np.linalg.norm(d)) or 1.0
                d = round_to(d * hyper[clip] / (40.0 * n * max(1.0, float(np.sqrt(d.size)))), "float32")
                small = float(np.linalg.norm(d))
            step.append(_crossing(draw, rng, clip, hyper[clip], rows, cols, small))
            if dense_shape is not None:
                step.append(d.reshape(dense_shape))
        else:
            k = draw(st.integers(0, 2 * rows))
            idx = rng.integers(0, rows, k).astype(np.int64)
            vals = draw(_grad((k, cols), hyper["epsilon"], "float32", rng, huge=False))
            step.append(SparseGrad(idx, vals, (rows, cols)))
            if dense_shape is not None:
                step.append(draw(_grad(dense_shape, hyper["epsilon"], "float32", rng, huge=False)))
        grads.append(step)
    label = "clip:" + "+".join(k for k in ("clipvalue", "clipnorm", "global_clipnorm") if k in hyper) + ",sparse"
    return Case(params, grads, hyper, "float32", label=label)


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


#: schedules whose value changes at every one of the first 12 steps
_EVERY_STEP = st.one_of(
    st.builds(lambda r: {"class_name": "PiecewiseConstantDecay", "config": {
        "boundaries": list(range(12)), "values": [0.1 * r**i for i in range(13)]}},
        st.sampled_from([0.5, 0.8, 0.9])),
    st.builds(lambda ds: {"class_name": "PolynomialDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": ds, "end_learning_rate": 0.001, "power": 2.0}},
        st.integers(12, 40)),
    st.builds(lambda ds: {"class_name": "CosineDecay", "config": {
        "initial_learning_rate": 0.1, "decay_steps": ds, "alpha": 0.0}}, st.integers(12, 40)),
)


@st.composite
def schedule_cases(draw: Any) -> Case:
    case = draw(dense_cases(max_steps=12))
    hyper = dict(case.hyper, learning_rate=draw(_SCHEDULES | _EVERY_STEP))
    return Case(case.params, case.grads, hyper, case.dtype, label="schedule")


@st.composite
def learning_rate_cases(draw: Any) -> Case:
    """How each step's learning rate is given (LR-1, LR-3, LR-4): a schedule, a zero-argument
    callable whose value changes at every step (the case holds its value per step), or a
    constant; with Keras 2.9's legacy ``decay`` (``lr / (1 + decay * iterations)``) on any of
    them or not (the property passes it only under a profile that has it); dense or sparse."""
    rng = _rng(draw)
    # one case in five is sparse (lazy rows under a schedule: the rate of the step, not of the
    # row), of at most 4 steps (a jitted target compiles a sparse step per number of slices)
    case = draw(sparse_cases(max_steps=4)) if rng.random() < 0.2 else draw(dense_cases(max_steps=12))
    # chosen by rng: hypothesis favours the first choices of a sampled_from in a run of 25 examples
    kind = str(rng.choice(["schedule", "callable", "constant"], p=[0.35, 0.35, 0.3]))
    hyper = dict(case.hyper)
    if kind == "schedule":
        hyper["learning_rate"] = draw(_SCHEDULES | _EVERY_STEP)
    elif kind == "callable":
        lr0 = draw(st.sampled_from([1e-3, 0.01, 0.1]))
        hyper["learning_rate"] = tuple(draw(st.lists(st.floats(lr0 / 10, lr0), min_size=case.steps,
                                                     max_size=case.steps)))
    decay = float(rng.choice([1e-3, 0.05, 0.5, 3.0])) if kind == "constant" or rng.random() < 0.3 else 0.0
    if decay:
        hyper["decay"] = decay
    return Case(case.params, case.grads, hyper, case.dtype,
                label=kind + (f"+decay={decay}" if decay else ""))


def _epsilons(dtype: str) -> st.SearchStrategy[float | None]:
    """Epsilons for H-1: ``None`` and ``0`` (Keras 2.9's fallback to 1e-7), subnormal ones
    (below the dtype's smallest normal number), huge ones (up to 1e30; 1e3 in float16)."""
    subnormal = {"float16": [1e-7, 6e-8], "float32": [1e-40, 1e-45], "float64": [1e-310, 5e-324]}[dtype]
    huge = [1.0, 1e3] if dtype == "float16" else [1.0, 1e3, 1e30]
    kinds: list[list[float | None]] = [[None, 0, 0.0], list(subnormal), list(huge)]

    def pick(n: int) -> float | None:
        # one of the three kinds, uniformly: through a generator seeded with the drawn number
        # (hypothesis favours the first choices of a sampled_from, and small numbers)
        rng = np.random.default_rng(n)
        kind = kinds[int(rng.integers(3))]
        return kind[int(rng.integers(len(kind)))]

    return st.integers(0, 2**32 - 1).map(pick)


@st.composite
def epsilon_cases(draw: Any) -> Case:
    """Short dense cases whose epsilon is ``None``, ``0``, subnormal or huge (H-1).

    With ``None`` or ``0``, the first step's gradient holds a 0 and a value near 1e-7, where
    epsilon 0 and the fallback 1e-7 step differently (``0/0`` against 0; ``g/|g|`` against
    ``g/(|g| + 1e-7)``, half as much)."""
    case = draw(dense_cases(dtypes=("float32", "float64", "float16"), max_steps=4, huge=False,
                            epsilons=_epsilons))
    params, grads = list(case.params), [list(step) for step in case.grads]
    if not case.hyper["epsilon"]:
        i = next((j for j, p in enumerate(params) if p.size >= 2), None)
        if i is None:
            i = len(params)
            params.append(round_to(np.array([0.5, -1.0]), case.dtype))
            for step in grads:
                step.append(np.zeros(2))
        g = np.array(grads[0][i], dtype=np.float64).reshape(-1)
        g[0], g[1] = 0.0, float(round_to(1e-7 * draw(st.sampled_from([1.0, -0.5, 2.0])), case.dtype))
        grads[0][i] = g.reshape(np.shape(params[i]))
    return Case(params, grads, case.hyper, case.dtype, label=f"epsilon={case.hyper['epsilon']!r}")


@st.composite
def checkpoint_cases(draw: Any) -> Case:
    case = draw(dense_cases(max_steps=8))
    at = draw(st.integers(0, case.steps))
    return Case(case.params, case.grads, case.hyper, case.dtype, checkpoint_at=at, label="checkpoint")


@st.composite
def none_grad_cases(draw: Any) -> Case:
    """Dense cases (two or more parameters) in which some parameters have no gradient in some steps.

    Every step keeps at least one gradient (a step with none is refused by Keras)."""
    case = draw(dense_cases(max_steps=8, huge=False))
    params, grads = list(case.params), [list(s) for s in case.grads]
    if len(params) == 1:
        params.append(round_to(np.linspace(-1, 1, 5), case.dtype))
        for s in grads:
            s.append(np.zeros(5))
    for s in grads:
        drop = draw(st.lists(st.booleans(), min_size=len(s), max_size=len(s)))
        if all(drop):
            drop[draw(st.integers(0, len(s) - 1))] = False
        if not any(drop) and draw(st.booleans()):
            drop[draw(st.integers(0, len(s) - 1))] = len(s) > 1
        for i, d in enumerate(drop):
            if d:
                s[i] = None
    return Case(params, grads, case.hyper, case.dtype, label="none_grad")


@st.composite
def nonfinite_cases(draw: Any) -> tuple[Case, list[tuple[int, int, int, float]]]:
    """A float32 dense case with NaN or +-inf put into a few gradient elements.

    Returns ``(case, where)``, ``where`` a list of ``(step index, param, flat index, value)``."""
    case = draw(dense_cases(max_steps=5, huge=False, min_steps=2))
    params = list(case.params)
    grads = [[np.array(g, dtype=np.float64, copy=True) for g in s] for s in case.grads]
    if all(p.size == 0 for p in params):  # only empty parameters: add one with elements
        params.append(round_to(np.array([0.5, -1.0]), case.dtype))
        for s in grads:
            s.append(round_to(np.array([0.25, 1e-3]), case.dtype))
    sizes = [int(p.size) for p in params]
    candidates = [i for i, n in enumerate(sizes) if n > 0]
    hits: dict[tuple[int, int, int], float] = {}
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(grads) - 1))
        i = draw(st.sampled_from(candidates))
        j = draw(st.integers(0, sizes[i] - 1))
        val = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        flat = grads[k][i].reshape(-1)
        flat[j] = val
        grads[k][i] = flat.reshape(np.shape(params[i]))
        hits[(k, i, j)] = val  # a later draw at the same place overwrites the value
    where = [(k, i, j, v) for (k, i, j), v in sorted(hits.items())]
    return Case(params, grads, case.hyper, case.dtype, label="nonfinite"), where


@st.composite
def group_cases(draw: Any) -> Case:
    """Two or three parameters, each in its own group with its own lr, betas and epsilon."""
    case = draw(dense_cases(max_steps=6, huge=False))
    n = len(case.params)
    params, grads = list(case.params), [list(s) for s in case.grads]
    if n == 1:
        params.append(round_to(np.linspace(-1, 1, 4), case.dtype))
        for s in grads:
            s.append(round_to(np.linspace(0.5, -0.25, 4), case.dtype))
        n = 2
    groups = tuple(draw(hyperparameters()) for _ in range(n))
    return Case(params, grads, case.hyper, case.dtype, label="groups", group_hyper=groups)


@st.composite
def input_cases(draw: Any) -> Case:
    """Dense cases, sometimes with missing gradients, to check the inputs a caller keeps."""
    if draw(st.booleans()):
        return draw(none_grad_cases())
    return draw(dense_cases(max_steps=4))


@st.composite
def counter_cases(draw: Any) -> Case:
    """Runs past step 2048 with a large ``b1`` (the bias correction still depends on t there).

    A float16 step counter saturates at 2048 (2049 rounds to 2048), an int8/int16 one wraps
    earlier; with ``b1 = 0.999`` a counter stuck at 2048 for 50 steps shifts the bias
    correction by ``50 * ln(1/b1) * b1**t / (1 - b1**t)``, about 1e-2 relative: far above the
    bound in float32 and float16.
    """
    rng = _rng(draw)
    dtype = draw(st.sampled_from(["float32", "float16"]))
    steps = draw(st.integers(2049, 2100))
    b1 = draw(st.sampled_from([0.999, 0.9995]))
    hyper = {"learning_rate": 0.01, "beta_1": b1, "beta_2": 0.9999, "epsilon": 1e-3}
    n = draw(st.integers(1, 3))
    params = [round_to(rng.standard_normal(n), dtype)]
    gs = round_to(rng.standard_normal((steps, n)), dtype)
    return Case(params, [[g] for g in gs], hyper, dtype, label="counter")


@st.composite
def invariant_cases(draw: Any) -> Case:
    """Long float32/float16 runs (up to 400 steps) for state invariants checked without the reference."""
    case = draw(dense_cases(dtypes=("float32", "float16"), max_steps=400, huge=False))
    return Case(case.params, case.grads, case.hyper, case.dtype, label="invariant")
