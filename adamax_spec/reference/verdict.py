"""Judge a target's trajectory against the reference, element by element, step by step.

For every step the reference starts from the *target's own* weights (and
its own ``m``/``u`` when the target exposes them), so errors never accumulate
in the weights and a bug shows at the step where it happens.  Hidden state is
carried exactly by the reference, with its bound carried along (the moment
recurrences contract, so that bound stays small).

Hyperparameters: a correct target may use them as passed (torch, in Python
doubles), rounded to its dtype (optax), or rounded to float32 first (Keras,
which also rounds the step count to the dtype).  Each is an *interpretation*;
a target conforms if one interpretation keeps every comparison within bound.

Speed: teacher forcing makes the steps independent once the state is known, so
the work is done in two passes.  The first walks the steps and gathers, per step
and parameter, the elements the step updates with their inputs (the target's
previous weights and state, or the reference's own exact state where the target
hides it: only then is the state recurrence evaluated step by step).  The second
evaluates the exact update and the bound for all gathered elements of all steps
at once, as NumPy object-array arithmetic (:mod:`.model`).  Clipping and
coalescing do not depend on the interpretation and are done once per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import eft, exact
from .formats import Format, fmt, round_to, ulp
from .model import (
    SAFETY,
    VARIANTS,
    Hyper,
    Moments,
    Variant,
    moment_bounds,
    moments,
    step_size,
    weight_bound,
    weights,
)
from .schedules import schedule_value

__all__ = ["Comparison", "Verdict", "interpretations", "judge"]


@dataclass
class Comparison:
    """One compared element: where, what was expected and found, and by how much it is off."""

    step: int
    param: int
    index: tuple[int, ...]
    quantity: str  # "w" | "m" | "u" | "w (must be unchanged)"
    expected: float
    actual: float
    bound: float
    ratio: float  # |actual - expected| / bound  (inf for NaN where a number was due)
    ulps: float  # |actual - expected| in ULPs of the target's dtype

    def describe(self) -> str:
        return (
            f"step {self.step}, params[{self.param}]{list(self.index)}, {self.quantity}: "
            f"expected {self.expected!r}, got {self.actual!r} "
            f"({self.ratio:.3g} x bound, {self.ulps:.3g} ULP; bound {self.bound:.3g})"
        )


@dataclass
class Verdict:
    """``compared`` counts the compared elements (``w``, and ``m``, ``u`` where observed, and
    the elements that had to stay unchanged), all steps and parameters."""

    ok: bool
    variant: str
    interpretation: str
    worst: Comparison | None
    failures: list[Comparison] = field(default_factory=list)
    compared: int = 0
    #: with ``judge(..., per_step=True)``: per step, the largest (error / bound, error in ULP)
    per_step: list[tuple[float, float]] = field(default_factory=list)

    @property
    def max_ratio(self) -> float:
        return 0.0 if self.worst is None else self.worst.ratio


def interpretations(hyper: dict[str, Any], dtype: str) -> dict[str, dict[str, Any]]:
    """The hyperparameter values a correct target may actually use, deduplicated."""
    keys = ("beta_1", "beta_2", "epsilon")
    lr = hyper["learning_rate"]
    base = {k: float(hyper[k]) for k in keys}
    if not isinstance(lr, dict):
        base["learning_rate"] = float(lr)

    def rounded(d: str, via32: bool) -> dict[str, Any]:
        out = {}
        for k, v in base.items():
            v2 = float(round_to(v, "float32")) if via32 and k != "epsilon" else v
            out[k] = float(round_to(v2, d))
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
        keras3["learning_rate"] = float(round_to(float(round_to(base["learning_rate"], "float32")), dtype))
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


# -- gradients: clipping and coalescing (independent of the interpretation) ----------------
def _clip(grads: list[Any], hyper: dict[str, Any], f: Format, dtype: str) -> tuple[list[Any], list[Any]]:
    """Clipping in Keras 2.9's order on exact values; returns (values, errors) per param.

    Sparse gradients are clipped on their values as given (before duplicates are summed).
    Without clipping the values are returned as exact Python floats (object arrays).
    """
    raw = [None if g is None else np.asarray(g.values if hasattr(g, "indices") else g, dtype=np.float64)
           for g in grads]
    cv, cn, gn = hyper.get("clipvalue"), hyper.get("clipnorm"), hyper.get("global_clipnorm")
    if cv is None and cn is None and gn is None:
        return [None if v is None else exact.floats(v) for v in raw], [0.0] * len(raw)
    vals: list[Any] = [None if v is None else exact.array(v) for v in raw]
    errs: list[Any] = [None if v is None else np.zeros(v.shape) for v in vals]
    e = f.unit
    if cv is not None:
        c = exact.num(float(round_to(cv, dtype)))
        # np.asarray: ufuncs on 0-d object arrays return bare scalars
        vals = [None if v is None else np.asarray(np.minimum(np.maximum(v, -c), c), dtype=object) for v in vals]
    if cn is not None:
        c = exact.num(float(round_to(cn, dtype)))
        for i, v in enumerate(vals):
            if v is None or v.size == 0:
                continue
            norm = _sqrt(np.sum(v * v))
            vals[i] = np.asarray(v * c / max(norm, c), dtype=object)
            errs[i] = (errs[i] + (v.size / 2 + 4) * e * exact.to_float(np.abs(vals[i]))) + f.tiny
    if gn is not None:
        present = [v for v in vals if v is not None and v.size]
        if present:
            total = sum(np.sum(v * v) for v in present)
            n = sum(v.size for v in present)
            c = exact.num(float(round_to(gn, dtype)))
            norm = _sqrt(total)
            scale = c / max(norm, c)
            for i, v in enumerate(vals):
                if v is not None:
                    vals[i] = np.asarray(v * scale, dtype=object)
                    errs[i] = errs[i] + (n / 2 + 5) * e * exact.to_float(np.abs(vals[i])) + f.tiny
    return vals, errs


def _sqrt(x: Any) -> Any:
    return x.sqrt() if hasattr(x, "sqrt") else x ** exact.num(0.5)


def _coalesce(indices: np.ndarray, values: np.ndarray, errs: Any, f: Format):
    """Sum duplicate rows exactly; a correct target's sum may differ by (k-1) roundings, and
    where it flushes subnormals (U-2: TensorFlow on CPU, GPUs) by (k-1) flushed partial sums,
    each below ``tiny``, and by its subnormal addends, each read as zero."""
    rows, inverse, counts = np.unique(indices, return_inverse=True, return_counts=True)
    errs = np.broadcast_to(np.asarray(errs, dtype=np.float64), values.shape)
    if rows.size == indices.size:  # no duplicates: nothing is summed
        order = np.argsort(inverse)
        return rows, values[order], errs[order]
    out = np.empty((rows.size, *values.shape[1:]), dtype=object)
    bound = np.zeros(out.shape)
    one = exact.num(1.0)
    for j in range(rows.size):
        sel = np.flatnonzero(inverse == j)
        s = one * values[sel[0]]
        for k in sel[1:]:
            s = s + values[k]
        out[j] = s
        if sel.size == 1:
            bound[j] = errs[sel].sum(axis=0)
            continue
        mags = np.abs(exact.to_float(values[sel])) * (1 + 2.0**-48)
        subnormal = np.where(mags < f.tiny, mags, 0.0).sum(axis=0)
        bound[j] = errs[sel].sum(axis=0) + (counts[j] - 1) * (f.unit * mags.sum(axis=0) + f.tiny) + subnormal
    return rows, out, bound


@dataclass
class _Grad:
    """One parameter's gradient at one step, flattened: ``idx`` the updated elements (None: all)."""

    idx: np.ndarray | None
    g: np.ndarray      # object
    g_f: np.ndarray    # float64
    g_err: Any         # float64 array or 0.0
    # what u sees in place of |g| (a ``sum_abs`` variant's summed |slices|), None: |g|
    a: np.ndarray | None = None
    a_f: np.ndarray | None = None
    a_err: Any = 0.0

    def pick(self, sel: Any) -> _Grad:
        """The elements ``sel`` (dense gradients)."""
        at = lambda e: e[sel] if isinstance(e, np.ndarray) and e.ndim else e  # noqa: E731
        return _Grad(None, self.g[sel], self.g_f[sel], at(self.g_err),
                     None if self.a is None else self.a[sel], None if self.a_f is None else self.a_f[sel],
                     at(self.a_err))

    def magnitude(self) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(a, a_f, a_err)``: what u sees (exact, float64, uncertainty)."""
        if self.a is None or self.a_f is None:
            return np.abs(self.g), np.abs(self.g_f), self.g_err
        return self.a, self.a_f, self.a_err


def _gradients(case: Any, v: Variant, f: Format) -> list[list[_Grad | None]]:
    out = []
    for grads in case.grads:
        vals, errs = _clip(grads, case.hyper, f, case.dtype)
        row: list[_Grad | None] = []
        for i, g in enumerate(grads):
            if g is None:
                row.append(None)
                continue
            shape = np.shape(case.params[i])
            if hasattr(g, "indices"):
                index = np.asarray(g.indices).reshape(-1)
                rows, gv, gb = _coalesce(index, vals[i], errs[i], f)
                # sum_abs: u sees sum_j |v_j| (|.| is 1-Lipschitz: the slices' errors carry over)
                mags = _coalesce(index, np.abs(vals[i]), errs[i], f) if v.sum_abs and rows.size < index.size \
                    else None
                if v.lazy:
                    ncol = int(np.prod(shape[1:]))
                    idx = (rows[:, None] * ncol + np.arange(ncol)).reshape(-1)
                    flat = lambda x: np.asarray(x, dtype=object).reshape(-1)  # noqa: E731
                    gflat = flat(gv)
                    grad = _Grad(idx, gflat, exact.to_float(gflat), np.asarray(gb).reshape(-1))
                    if mags is not None:
                        grad.a = flat(mags[1])
                        grad.a_f, grad.a_err = exact.to_float(grad.a), np.asarray(mags[2]).reshape(-1)
                    row.append(grad)
                    continue
                grad = _Grad(None, *_scatter(shape, rows, gv, gb))
                if mags is not None:
                    grad.a, grad.a_f, grad.a_err = _scatter(shape, rows, mags[1], mags[2])
                row.append(grad)
            else:
                gflat = np.asarray(vals[i], dtype=object).reshape(-1)
                gerr = errs[i] if np.ndim(errs[i]) == 0 else np.asarray(errs[i]).reshape(-1)
                row.append(_Grad(None, gflat, exact.to_float(gflat), gerr))
        out.append(row)
    return out


def _scatter(shape: tuple[int, ...], rows: np.ndarray, vs: Any, bs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Densified rows, flat: (exact values, float64 values, errors); other rows are 0."""
    dense = exact.floats(np.zeros(shape))
    derr = np.zeros(shape)
    dense[rows], derr[rows] = vs, bs
    return dense.reshape(-1), exact.to_float(dense).reshape(-1), derr.reshape(-1)


# -- judging ----------------------------------------------------------------------------------
def judge(case: Any, traj: Any, variant: str | Variant, *, max_failures: int = 5,
          per_step: bool = False) -> Verdict:
    """Verdict of ``traj`` (what the target did) on ``case`` under ``variant``.

    ``per_step`` also fills :attr:`Verdict.per_step` (for plots; costs one exact
    evaluation per compared element)."""
    v = VARIANTS[variant] if isinstance(variant, str) else variant
    f = fmt(case.dtype)
    with np.errstate(all="ignore"), exact.working_precision():
        grads = _gradients(case, v, f)
        obs = _Observed(case, traj)
        cands = _effective(case)
        full: dict[str, Verdict] = {}
        lower: dict[str, float] = {}  # interpretations an exact probe proved failing: max_ratio >= this
        screens: dict[str, list[np.ndarray] | None] = {}

        big = sum(int(np.size(p)) for p in case.params) * case.steps >= SCREEN_MIN

        def screen(n: str) -> list[np.ndarray] | None:
            if n not in screens:
                screens[n] = _screen(case, obs, grads, v, cands[n]) if big and _probeable(grads) else None
            return screens[n]

        def expect_fail(n: str) -> bool:
            sc = screen(n)
            return sc is not None and any(x.size and x.max() > 1.0 for x in sc)

        names = list(cands)
        for j, (name, interp) in enumerate(cands.items()):
            # probe only where the screen expects this one to fail and a later one to pass (where it
            # expects all to fail, every one is judged in full anyway, to find the least bad)
            if len(cands) > 1 and expect_fail(name) and any(not expect_fail(n) for n in names[j + 1:]):
                probe = _probe(case, obs, grads, v, f, name, interp, screen(name))
                if probe is not None and not probe.ok:
                    lower[name] = probe.max_ratio
                    continue
            verdict = _judge_one(case, obs, grads, v, f, name, interp, max_failures, per_step)
            if verdict.ok:  # every earlier interpretation fails (exactly): the same one as judging all
                return verdict
            full[name] = verdict
        # All fail: the verdict is the first interpretation with the smallest max_ratio.  One proved
        # failing by a probe can only matter if its lower bound does not exceed the best judged so far.
        while True:
            cur = min((x.max_ratio for x in full.values()), default=math.inf)
            pending = [n for n in lower if n not in full and lower[n] <= cur]
            if not pending:
                break
            n = min(pending, key=lambda n: lower[n])
            full[n] = _judge_one(case, obs, grads, v, f, n, cands[n], max_failures, per_step)
        best: Verdict | None = None
        for name in cands:
            if name in full and (best is None or full[name].max_ratio < best.max_ratio):
                best = full[name]
    assert best is not None
    return best


#: elements a probe judges exactly (those the float64 screen ranks worst)
PROBE_ELEMENTS = 4
#: below this many compared elements (all steps), the float64 screens cost more than they save
SCREEN_MIN = 256


def _probeable(grads: list[list[_Grad | None]]) -> bool:
    return not any(g is None or g.idx is not None for row in grads for g in row)


def _probe(case: Any, obs: _Observed, grads: list[list[_Grad | None]], v: Variant, f: Format, name: str,
           interp: dict, score: list[np.ndarray] | None) -> Verdict | None:
    """The exact verdict of ``interp`` on the few elements (and the steps up to the last one) that a
    float64 screen ranks worst, or ``None`` where the case does not allow it (sparse or missing
    gradients, NaN/inf inputs).

    Sound: with teacher forcing and clipping done beforehand, the comparisons of one element at
    step ``k`` depend only on that element's inputs at steps ``1..k`` and on per-step scalars, so
    the probe's comparisons are exactly those of the full judgement: a failing probe proves the
    interpretation fails, with ``max_ratio`` at least the probe's.  The screen only picks the
    elements; it proves nothing (a passing probe is followed by the full judgement).
    """
    if score is None:
        return None
    flat_scores = np.concatenate([sc.max(axis=0) for sc in score])
    if not flat_scores.size or flat_scores.max() <= 1.0:  # the screen expects a pass: judge in full
        return None
    # the elements the screen expects to fail earliest (a shorter probe), the worst first among equals
    first = np.concatenate([np.where((sc > 1.0).any(axis=0), np.argmax(sc > 1.0, axis=0), sc.shape[0])
                            for sc in score])
    order = np.lexsort((-flat_scores, first))[:PROBE_ELEMENTS]
    order = order[first[order] < len(grads)]
    sizes = np.cumsum([0] + [sc.shape[1] for sc in score])
    picks = [order[(order >= sizes[i]) & (order < sizes[i + 1])] - sizes[i] for i in range(len(score))]
    last = int(first[order].max()) + 1
    sub_case = _SubCase([obs.start[i][picks[i]] for i in range(len(picks))], last, case.hyper, case.dtype)
    sub_obs = _Observed.__new__(_Observed)
    sub_obs.start = list(sub_case.params)
    sub_obs.w = [[x[picks[i]] for i, x in enumerate(ps)] for ps in obs.w[:last]]
    sub_obs.m = [None if ms is None else [x[picks[i]] for i, x in enumerate(ms)] for ms in obs.m[:last]]
    sub_obs.u = [None if us is None else [x[picks[i]] for i, x in enumerate(us)] for us in obs.u[:last]]
    sub_grads: list[list[_Grad | None]] = [
        [g.pick(picks[i]) for i, g in enumerate(row) if g is not None] for row in grads[:last]]
    return _judge_one(sub_case, sub_obs, sub_grads, v, fmt(case.dtype), name, interp, 1)


@dataclass
class _SubCase:
    params: list[np.ndarray]
    steps: int
    hyper: dict[str, Any]
    dtype: str


def _screen(case: Any, obs: _Observed, grads: list[list[_Grad | None]], v: Variant,
            interp: dict) -> list[np.ndarray] | None:
    """Float64 estimates of each comparison's error / bound, as (steps, elements) arrays per parameter
    (the larger of the ``w``, ``m``, ``u`` comparisons).  Only ranks elements for :func:`_probe`:
    rounding makes it meaningless for float64 targets, which costs speed, never correctness."""
    lr_spec = case.hyper["learning_rate"]
    b1, b2, eps = interp["beta_1"], interp["beta_2"], interp["epsilon"]
    f = fmt(case.dtype)
    e, tiny = f.unit, f.tiny
    steps = len(grads)
    ts = np.arange(1, steps + 1, dtype=np.float64)
    t_used = round_to(ts, case.dtype) if interp.get("_round_t") else ts
    lr = (np.array([schedule_value(lr_spec, k)[0] for k in range(steps)]) if isinstance(lr_spec, dict)
          else np.full(steps, interp["learning_rate"]))
    lr_t = (lr / (1.0 - interp.get("_b1_bias", b1) ** t_used) if v.bias_correction else lr)[:, None]
    out = []
    for i in range(len(case.params)):
        g = np.array([row[i].g_f for row in grads])  # type: ignore[union-attr]
        a = np.array([row[i].magnitude()[1] for row in grads])  # type: ignore[union-attr]
        w_act = np.array([ps[i] for ps in obs.w[:steps]])
        w_old = np.concatenate([obs.start[i][None], w_act[:-1]])
        seen = {q: [obs.state(q, k) for k in range(steps)] for q in ("m", "u")}
        mag = a + (eps if v.epsilon == "inside" else 0.0)
        add = eps if v.epsilon == "inside_decay" else 0.0
        m_old, u_old = np.zeros_like(g), np.zeros_like(g)
        m_new, u_new = np.empty_like(g), np.empty_like(g)
        m, u = m_old[0], u_old[0]
        for k in range(steps):  # the state each step starts from (the target's, where it shows it)
            m_old[k], u_old[k] = m, u
            m_new[k] = b1 * m + (1.0 - b1) * g[k]
            u_new[k] = np.maximum(b2 * u + add, mag[k])
            sm, su = seen["m"][k], seen["u"][k]
            m = m_new[k] if sm is None else sm[i]
            u = u_new[k] if su is None else su[i]
        d = u_new + eps if v.epsilon == "outside" else u_new
        delta = lr_t * m_new / d
        em = e * (2 * b1 * np.abs(m_old) + 2 * (1 - b1) * np.abs(g) + 3 * np.abs(g - m_old) + np.abs(m_new)) + tiny
        bw = e * (np.abs(w_act) + 4 * np.abs(delta)) + np.abs(lr_t / d) * em + tiny
        r = np.abs(w_act - (w_old - delta)) / bw
        for q, ref, bnd in (("m", m_new, em), ("u", u_new, e * u_new + tiny)):
            have = [k for k in range(steps) if seen[q][k] is not None]
            if have:
                act = np.array([seen[q][k][i] for k in have])  # type: ignore[index]
                r[have] = np.maximum(r[have], np.abs(act - ref[have]) / bnd[have])
        if not np.all(np.isfinite(r)):
            return None
        out.append(r)
    return out


def _effective(case: Any) -> dict[str, dict[str, Any]]:
    """:func:`interpretations`, less those that give the same numbers as an earlier one on this
    case (rounding the step count to the dtype changes nothing while every ``t`` is exact)."""
    out: dict[str, dict[str, Any]] = {}
    seen = []
    ts = np.arange(1, case.steps + 1, dtype=np.float64)
    for name, interp in interpretations(case.hyper, case.dtype).items():
        c = dict(interp)
        if c.pop("_round_t", False) and np.any(round_to(ts, case.dtype) != ts):
            c["_round_t"] = True
        if c not in seen:
            seen.append(c)
            out[name] = c
    return out


class _Observed:
    """The trajectory as flat float64 arrays (and exact Python-float object arrays), made once."""

    def __init__(self, case: Any, traj: Any) -> None:
        flat = lambda a: np.asarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
        self.w = [[flat(p) for p in ps] for ps in traj.params]
        self.m = [None if ms is None else [flat(x) for x in ms] for ms in traj.m]
        self.u = [None if us is None else [flat(x) for x in us] for us in traj.u]
        self.start = [flat(p) for p in case.params]

    def state(self, q: str, k: int) -> list[np.ndarray] | None:
        arr = self.m if q == "m" else self.u
        return arr[k] if k < len(arr) else None


@dataclass
class _Segment:
    """The elements of parameter ``param`` that step ``step`` updates, with their inputs."""

    step: int
    param: int
    flat: np.ndarray  # flat element indices within the parameter
    gr: _Grad
    m: np.ndarray
    m_f: np.ndarray
    m_err: Any
    u: np.ndarray
    u_f: np.ndarray
    u_err: Any
    w_old: np.ndarray
    w_act: np.ndarray
    m_act: np.ndarray | None
    u_act: np.ndarray | None
    lr: tuple[Any, float, float, float]
    mo: Moments | None = None


@dataclass
class _Found:
    """Comparisons gathered for ranking: parallel arrays, one entry per compared element."""

    keys: list[np.ndarray] = field(default_factory=list)  # (step, param, order, flat) columns
    ratio: list[np.ndarray] = field(default_factory=list)
    makers: list[Any] = field(default_factory=list)  # per block: callable(j) -> Comparison
    count: int = 0

    def add(self, step: Any, param: Any, order: int, flat: np.ndarray, ratio: np.ndarray,
            maker: Any) -> None:
        n = ratio.size
        self.count += n
        if n:
            self.keys.append(np.stack([np.broadcast_to(step, n), np.broadcast_to(param, n),
                                       np.full(n, order), flat]).astype(np.int64))
            self.ratio.append(ratio)
            self.makers.append((maker, n))


def _ratio(diff: np.ndarray, bound: np.ndarray, actual: np.ndarray, expected_is_nan: Any) -> np.ndarray:
    """``|actual - expected| / bound``; inf for NaN where a number was due."""
    ratio = np.where(bound > 0, diff / bound, np.where(diff > 0, np.inf, 0.0))
    act_nan = np.isnan(actual)
    # A NaN where a number is due, or a number where NaN is due, is off by any bound; both NaN
    # agree; a NaN difference otherwise means the same infinity on both sides, which agrees.
    ratio = np.where(act_nan != expected_is_nan, np.inf, ratio)
    # An infinite bound says a correct target's rounding may reach a zero denominator (u + eps
    # underflowing to 0 in float16, say): 0/0 = NaN is then one of the results it may give.
    ratio = np.where(act_nan & ~expected_is_nan & np.isinf(bound), 0.0, ratio)
    return np.where(np.isnan(ratio), 0.0, ratio)


def _judge_one(case: Any, obs: _Observed, grads: list[list[_Grad | None]], v: Variant, f: Format,
               name: str, interp: dict, max_failures: int, per_step: bool = False,
               screen: bool = True) -> Verdict:
    dtype = case.dtype
    h = Hyper.of(interp["beta_1"], interp["beta_2"], interp["epsilon"])
    n = len(case.params)
    shapes = [np.shape(p) for p in case.params]
    # the state each parameter's next step starts from: exact values, float64 copies, error bounds
    zeros = [np.zeros(int(np.prod(s))) for s in shapes]
    # (the error is the scalar 0.0 while the state is exact: zero at the start, or observed)
    st: dict[str, list[list[Any]]] = {q: [[exact.floats(z), z, 0.0] for z in zeros] for q in ("m", "u")}
    prev = list(obs.start)
    found = _Found()
    segments: list[_Segment] = []
    lr_spec = case.hyper["learning_rate"]
    for k, row in enumerate(grads):
        t = k + 1
        if isinstance(lr_spec, dict):
            lr_val, lr_err = schedule_value(lr_spec, k)
        else:
            lr_val, lr_err = interp["learning_rate"], 0.0
        t_used = float(round_to(t, dtype)) if interp.get("_round_t") else float(t)
        b1_bias = exact.num(interp["_b1_bias"]) if "_b1_bias" in interp else h.b1
        lr3 = step_size(v, exact.num(lr_val), b1_bias, t_used, f, lr_err=lr_err, t_err=abs(t_used - t))
        c = 1.0 - float(b1_bias) ** t_used if v.bias_correction else 1.0
        lr = (*lr3, 1.0 / c if c > 0 else math.inf)  # (lr_t, float lr_t, rel, 1/c): 1/c for the FTZ term
        w_now = obs.w[k]
        seen = {q: obs.state(q, k) for q in ("m", "u")}
        for i in range(n):
            gr = row[i]
            if gr is None:
                _unchanged(found, w_now[i], prev[i], np.arange(prev[i].size), k + 1, i, dtype)
                continue
            flat = np.arange(prev[i].size) if gr.idx is None else gr.idx
            sel = slice(None) if gr.idx is None else gr.idx
            if gr.idx is not None:  # lazy rows: the others must not move
                rest = np.ones(prev[i].size, dtype=bool)
                rest[gr.idx] = False
                rest_idx = np.flatnonzero(rest)
                _unchanged(found, w_now[i][rest_idx], prev[i][rest_idx], rest_idx, k + 1, i, dtype)
                for q in ("m", "u"):
                    obs_q = seen[q]
                    if obs_q is not None:
                        _same_state(found, obs_q[i][rest_idx], st[q][i], rest_idx, k + 1, i, q, dtype)
            stm, stu = st["m"][i], st["u"][i]
            seg = _Segment(k + 1, i, flat, gr, stm[0][sel], stm[1][sel], _at(stm[2], sel),
                           stu[0][sel], stu[1][sel], _at(stu[2], sel), prev[i][sel], w_now[i][sel],
                           None if seen["m"] is None else seen["m"][i][sel],
                           None if seen["u"] is None else seen["u"][i][sel], lr)
            if seen["m"] is None or seen["u"] is None:  # hidden state: the recurrence runs now
                a, a_f, a_err = gr.magnitude()
                seg.mo = moments(v, h, f, gr.g, gr.g_f, seg.m, seg.m_f, seg.u, seg.u_f,
                                 g_err=gr.g_err, m_err=seg.m_err, u_err=seg.u_err, a=a, a_f=a_f, a_err=a_err)
            for q in ("m", "u"):
                s = st[q][i]
                obs_q = seen[q]
                if obs_q is not None:
                    s[0], s[1], s[2] = exact.floats(obs_q[i]), obs_q[i], 0.0
                else:
                    assert seg.mo is not None
                    new = seg.mo.m if q == "m" else seg.mo.u
                    bnd = seg.mo.m_bound if q == "m" else seg.mo.u_bound
                    err = s[2].copy() if isinstance(s[2], np.ndarray) else np.zeros(s[1].shape)
                    s[0], s[1], s[2] = s[0].copy(), s[1].copy(), err
                    s[0][sel] = new
                    s[1][sel] = seg.mo.m_float if q == "m" else exact.to_float(new)
                    s[2][sel] = SAFETY * bnd
            segments.append(seg)
        prev = list(w_now)
    if segments:
        _evaluate(found, segments, v, h, f, dtype, shapes, screen=screen and not per_step)
    return _verdict(found, v, name, max_failures, shapes, dtype, per_step, case.steps)


def _at(err: Any, sel: Any) -> Any:
    """``err[sel]``, or the scalar 0.0 where the state is known exactly (observed, or zero)."""
    if not isinstance(err, np.ndarray):
        return 0.0
    out = err[sel]
    return 0.0 if not out.any() else out


def _cat(parts: list[Any], sizes: list[int]) -> np.ndarray:
    """Concatenate per-segment arrays (scalars are repeated to the segment's size)."""
    arrays = [isinstance(p, np.ndarray) and p.ndim > 0 for p in parts]
    if not any(arrays):
        one = np.empty(len(parts), dtype=np.asarray(parts[0]).dtype)
        one[:] = parts
        return np.repeat(one, sizes)
    return np.concatenate([p if a else np.full(s, p, dtype=np.asarray(p).dtype)
                           for p, s, a in zip(parts, sizes, arrays, strict=True)])


def _evaluate(found: _Found, segs: list[_Segment], v: Variant, h: Hyper, f: Format, dtype: str,
              shapes: list[tuple[int, ...]], screen: bool = False) -> None:
    """The exact update and the bound for every gathered element at once, and the comparisons.

    ``screen``: the inputs are float64 values (no clipping, no summed duplicates) and no per-step
    series is wanted; where every segment's state is observed, :func:`_certify` settles the
    comparisons a float64 evaluation provably decides, and only the rest is evaluated at 256 bits."""
    sizes = [s.flat.size for s in segs]
    cat = lambda get: _cat([get(s) for s in segs], sizes)  # noqa: E731
    todo = [j for j, s in enumerate(segs) if s.mo is None]
    lr_t = cat(lambda s: s.lr[0])
    flr_t = cat(lambda s: np.float64(s.lr[1]))
    rel = cat(lambda s: np.float64(s.lr[2]))
    inv_c = cat(lambda s: np.float64(s.lr[3]))
    w_old, w_act = cat(lambda s: s.w_old), cat(lambda s: s.w_act)
    step = cat(lambda s: np.int64(s.step))
    param = cat(lambda s: np.int64(s.param))
    flat = cat(lambda s: s.flat)
    acts: dict[str, tuple[Any, np.ndarray]] = {}
    for q in ("m", "u"):
        have = [j for j, sg in enumerate(segs) if (sg.m_act if q == "m" else sg.u_act) is not None]
        if not have:
            continue
        if len(have) == len(segs):
            acts[q] = (slice(None), cat(lambda sg, q=q: sg.m_act if q == "m" else sg.u_act))
        else:
            starts = np.concatenate([[0], np.cumsum(sizes)])
            acts[q] = (np.concatenate([np.arange(starts[j], starts[j + 1]) for j in have]),
                       np.concatenate([segs[j].m_act if q == "m" else segs[j].u_act for j in have]))
    if todo:
        part = [segs[j] for j in todo]
        psz = [sizes[j] for j in todo]
        pc = lambda get: _cat([get(s) for s in part], psz)  # noqa: E731
        ins = dict(g=pc(lambda s: s.gr.g), g_f=pc(lambda s: s.gr.g_f), m=pc(lambda s: s.m),
                   m_f=pc(lambda s: s.m_f), u=pc(lambda s: s.u), u_f=pc(lambda s: s.u_f),
                   g_err=pc(lambda s: np.float64(s.gr.g_err) if np.ndim(s.gr.g_err) == 0 else s.gr.g_err),
                   m_err=pc(lambda s: np.float64(s.m_err) if np.ndim(s.m_err) == 0 else s.m_err),
                   u_err=pc(lambda s: np.float64(s.u_err) if np.ndim(s.u_err) == 0 else s.u_err))
        if any(s.gr.a is not None for s in part):  # a sum_abs variant's summed |slices|
            ins.update(a=pc(lambda s: s.gr.magnitude()[0]), a_f=pc(lambda s: s.gr.magnitude()[1]),
                       a_err=pc(lambda s: np.float64(s.gr.magnitude()[2]) if np.ndim(s.gr.magnitude()[2]) == 0
                                else s.gr.magnitude()[2]))
        if screen and len(todo) == len(segs) and set(acts) == {"m", "u"} and w_old.size >= SCREEN_MIN:
            keep = _certify(found, v, h, f, ins, flr_t, rel, w_old, w_act, acts["m"][1], acts["u"][1],
                            step, param, flat, inv_c=inv_c)
            if keep is not None:
                if not keep.size:
                    return
                ins = {k: x[keep] for k, x in ins.items()}
                lr_t, flr_t, rel, w_old, w_act = lr_t[keep], flr_t[keep], rel[keep], w_old[keep], w_act[keep]
                inv_c = inv_c[keep]
                step, param, flat = step[keep], param[keep], flat[keep]
                acts = {q: (slice(None), act[keep]) for q, (_, act) in acts.items()}
        mo = moments(v, h, f, ins["g"], ins["g_f"], ins["m"], ins["m_f"], ins["u"], ins["u_f"],
                     g_err=ins["g_err"], m_err=ins["m_err"], u_err=ins["u_err"], a=ins.get("a"),
                     a_f=ins.get("a_f"), a_err=ins.get("a_err", 0.0))
        if len(todo) == len(segs):
            allmo = mo
        else:
            cuts = np.cumsum(psz)[:-1]
            pieces = {fld: np.split(getattr(mo, fld), cuts) for fld in mo.__dataclass_fields__}
            for r, j in enumerate(todo):
                segs[j].mo = Moments(**{fld: pieces[fld][r] for fld in pieces})
    if not todo or len(todo) != len(segs):
        allmo = Moments(**{fld: cat(lambda s, fld=fld: getattr(s.mo, fld)) for fld in Moments.__dataclass_fields__})
    wmo, w_idx = allmo, (step, param, flat)
    if screen and len(todo) != len(segs) and w_old.size >= SCREEN_MIN:
        # the state was carried exactly (hidden): settle the w comparisons that float64 decides
        keep = _certify_w(found, v, h, f, allmo, cat(lambda s: s.u_f), flr_t, rel, w_old, w_act, step, param, flat,
                          inv_c=inv_c)
        if keep is not None:
            wmo = Moments(**{fld: getattr(allmo, fld)[keep] for fld in Moments.__dataclass_fields__})
            lr_t, flr_t, rel, w_old, w_act = lr_t[keep], flr_t[keep], rel[keep], w_old[keep], w_act[keep]
            inv_c = inv_c[keep]
            w_idx = (step[keep], param[keep], flat[keep])
    wt = weights(v, h, f, wmo, w_old, lr_t, flr_t, rel, inv_c)
    # w: actual - (w_old - delta) = (w_act - w_old) + delta; the float64 difference and its exact
    # rounding error (TwoSum) are exact, so only the sum with delta rounds (at 256 bits).
    s = w_act - w_old
    bb = s - w_act
    err = (w_act - (s - bb)) - (-w_old - bb)
    err = np.where(np.isfinite(err), err, 0.0)
    dw = wt.delta + s.astype(object)
    nz = np.flatnonzero(err)
    if nz.size:
        dw[nz] = dw[nz] + err[nz].astype(object)
    diff = np.abs(exact.to_float(dw))
    nan_exp = _exact_nan(w_act, lambda j: w_old[j] - wt.delta[j], diff)

    def w_maker(j: int) -> tuple[float, float]:
        return float(w_old[j] - wt.delta[j]), float(w_act[j])

    ratio_w = _ratio(diff, wt.w_bound, w_act, nan_exp)
    # An infinite lr_t (1 - b1**t exactly 0: b1 is 1.0 in the dtype) has no relative bound, so
    # w_bound is inf; but w - inf * m'/d is then +-inf or NaN whatever m' and d are, never finite.
    ratio_w = np.where(np.isinf(flr_t) & np.isfinite(w_act), np.inf, ratio_w)
    found.add(w_idx[0], w_idx[1], 0, w_idx[2], ratio_w, (w_maker, wt.w_bound, diff, "w"))
    for order, q, ref, bnd in ((1, "m", allmo.m, allmo.m_bound), (2, "u", allmo.u, allmo.u_bound)):
        if q not in acts:
            continue
        pick, act = acts[q]
        ref_q, bnd_q = ref[pick], SAFETY * bnd[pick]
        diff_q = np.abs(exact.to_float(act.astype(object) - ref_q))
        nan_q = _exact_nan(act, lambda j, ref_q=ref_q: ref_q[j], diff_q)

        def maker(j: int, ref_q: np.ndarray = ref_q, act: np.ndarray = act) -> tuple[float, float]:
            return float(ref_q[j]), float(act[j])

        found.add(step[pick], param[pick], order, flat[pick], _ratio(diff_q, bnd_q, act, nan_q),
                  (maker, bnd_q, diff_q, q))


def _certify(found: _Found, v: Variant, h: Hyper, f: Format, ins: dict[str, np.ndarray], flr_t: np.ndarray,
             rel: np.ndarray, w_old: np.ndarray, w_act: np.ndarray, m_act: np.ndarray, u_act: np.ndarray,
             step: np.ndarray, param: np.ndarray, flat: np.ndarray, *, inv_c: Any = 1.0) -> np.ndarray | None:
    """Settle in float64 the comparisons that provably cannot be a failure nor the worst one.

    For each element (teacher forced, every input a float64 value) :mod:`.eft` gives ``m'`` correctly
    rounded (certified) and ``u'`` exactly, hence the very bounds the exact path computes (same
    float64 code, same inputs), and an interval ``[lo, hi]`` holding each comparison's ratio as the
    256-bit evaluation computes it.  With ``L`` the largest ``lo``, a comparison with
    ``hi < min(1, L)`` is no failure and not the worst (the element attaining ``L`` is evaluated
    exactly and its ratio is at least ``L``): it is recorded with ratio ``hi`` and not evaluated
    at 256 bits.  Returns the indices left to the exact path, or ``None`` when nothing is settled.
    """
    fb1, fb2, feps = float(h.b1), float(h.b2), float(h.eps)
    omb1, lost = eft.two_sum(np.ones(1), np.full(1, -fb1))  # 1 - b1 must be a float64 value
    if v.epsilon not in ("outside", "inside", "none") or not feps >= 0 or lost[0] != 0 or not np.isfinite(omb1[0]) \
            or np.any(ins["g_err"]) or np.any(ins["m_err"]) or np.any(ins["u_err"]) or "a" in ins:
        return None
    g_f, m_f, u_f = ins["g_f"], ins["m_f"], ins["u_f"]
    sc = eft.moments(v.epsilon, fb1, float(omb1[0]), fb2, feps, g_f, m_f, u_f)
    m_bound, u_est, u_bound = moment_bounds(v, h, f, g_f, m_f, u_f, sc.m_float, g_err=ins["g_err"],
                                            m_err=ins["m_err"], u_err=ins["u_err"])
    w_bound, delta_est = weight_bound(v, h, f, sc.m_float, m_bound, u_est, u_bound, w_old, flr_t, rel, inv_c)
    m_bnd, u_bnd = SAFETY * m_bound, SAFETY * u_bound
    s, err = eft.two_sum(w_act, -w_old)
    # delta_est = fl(fl(flr_t m_float) / fl(u_est [+ eps])): six roundings of relative U at most
    # (flr_t, m_float, u_est, the sum, the product, the quotient), all operands positive or exact
    lo_w, hi_w = eft.diff_interval([s, delta_est, err], 8 * eft.U * np.abs(delta_est))
    x, y = eft.two_sum(m_act, -sc.m_float)
    # the 256-bit path rounds m' and |g| + eps at 2**-256 where they need more bits
    lo_m, hi_m = eft.diff_interval([x, y, -sc.m_res], sc.m_res_err + 2.0**-250 * sc.m_mag)
    x2, y2 = eft.two_sum(u_act, -sc.u_hi)
    lo_u, hi_u = eft.diff_interval([x2, y2, -sc.u_lo], 2.0**-250 * np.abs(sc.u_hi))
    ok = sc.ok & (u_f >= 0) & eft.in_range(w_old, w_act, m_act, u_act, s, delta_est, sc.m_float, flr_t,
                                           flr_t * sc.m_float, w_bound, m_bnd, u_bnd, u_est)
    ok &= (flr_t > 0) & (w_bound > 0) & (m_bnd > 0) & (u_bnd > 0)
    if not ok.any():
        return None
    tiny = 2.0**-1074
    ratios = []
    for lo, hi, b in ((lo_w, hi_w, w_bound), (lo_m, hi_m, m_bnd), (lo_u, hi_u, u_bnd)):
        with np.errstate(all="ignore"):
            ratios.append((lo / b * (1 - 2.0**-50), (hi + tiny) / b * (1 + 2.0**-50)))
    big_l = max(float(np.max(np.where(ok, r[0], 0.0))) for r in ratios)
    thr = min(1.0, big_l)
    settled = ok & (ratios[0][1] < thr) & (ratios[1][1] < thr) & (ratios[2][1] < thr)
    if not settled.any():
        return None
    j = np.flatnonzero(settled)
    for order, (_, hi), b, diff_lo in ((0, ratios[0], w_bound, lo_w), (1, ratios[1], m_bnd, lo_m),
                                        (2, ratios[2], u_bnd, lo_u)):
        found.add(step[j], param[j], order, flat[j], hi[j], (_unreported, b[j], diff_lo[j], "wmu"[order]))
    return np.flatnonzero(~settled)


def _certify_w(found: _Found, v: Variant, h: Hyper, f: Format, mo: Moments, u_f: np.ndarray, flr_t: np.ndarray,
               rel: np.ndarray, w_old: np.ndarray, w_act: np.ndarray, step: np.ndarray, param: np.ndarray,
               flat: np.ndarray, *, inv_c: Any = 1.0) -> np.ndarray | None:
    """:func:`_certify` for the ``w`` comparisons alone, where the state is carried exactly: ``m'``
    is known exactly, so ``mo.m_float`` is correctly rounded and the bound is the exact path's own;
    ``delta_est`` is within ``10 U |delta_est|`` of the exact ``delta`` (seven roundings: ``lr_t``,
    ``m'``, ``u`` and ``g`` to float64, ``b2 u`` or ``|g| + eps``, ``+ eps``, the product and the
    quotient, at most six in one chain); the largest ``lo`` of these comparisons bounds the verdict's
    largest ratio from below."""
    fb2, feps = float(h.b2), float(h.eps)
    if v.epsilon not in ("outside", "inside", "none") or not feps >= 0 or not fb2 >= 0:
        return None
    w_bound, delta_est = weight_bound(v, h, f, mo.m_float, mo.m_bound, mo.u_est, mo.u_bound, w_old, flr_t, rel,
                                      inv_c)
    s, err = eft.two_sum(w_act, -w_old)
    lo, hi = eft.diff_interval([s, delta_est, err], 10 * eft.U * np.abs(delta_est))
    ok = (u_f >= 0) & eft.in_range(w_old, w_act, s, delta_est, mo.m_float, mo.u_est, flr_t, flr_t * mo.m_float,
                                   w_bound)
    ok &= (flr_t > 0) & (w_bound > 0)
    if not ok.any():
        return None
    with np.errstate(all="ignore"):
        r_lo, r_hi = lo / w_bound * (1 - 2.0**-50), (hi + 2.0**-1074) / w_bound * (1 + 2.0**-50)
    thr = min(1.0, float(np.max(np.where(ok, r_lo, 0.0))))
    settled = ok & (r_hi < thr)
    if not settled.any():
        return None
    j = np.flatnonzero(settled)
    found.add(step[j], param[j], 0, flat[j], r_hi[j], (_unreported, w_bound[j], lo[j], "w"))
    return np.flatnonzero(~settled)


def _unreported(j: int) -> tuple[float, float]:
    """A settled comparison is never the worst nor a failure, so it is never reported."""
    raise AssertionError("a comparison settled in float64 was asked for its values")


def _exact_nan(actual: np.ndarray, expected: Any, diff: np.ndarray) -> np.ndarray:
    """Whether the exact expected value is NaN, evaluated only where ``actual`` or the
    difference ``diff`` is NaN (elsewhere the expected value is a number)."""
    out = np.zeros(actual.shape, dtype=bool)
    for j in np.flatnonzero(np.isnan(actual) | np.isnan(diff)):
        x = expected(j)
        out[j] = x != x
    return out


def _unchanged(found: _Found, actual: np.ndarray, before: np.ndarray, flat: np.ndarray, step: int,
               param: int, dtype: str) -> None:
    """Values that must stay bit-identical (no gradient, or rows a lazy step does not touch)."""
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(before, dtype=np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    ratio = np.where(same, 0.0, np.inf)
    diff = np.abs(a - b)

    def maker(j: int) -> tuple[float, float]:
        return float(b[j]), float(a[j])

    found.add(np.int64(step), np.int64(param), -1, flat, ratio, (maker, np.zeros(a.shape), diff,
                                                                  "w (must be unchanged)"))


def _same_state(found: _Found, actual: np.ndarray, state: list[Any], flat: np.ndarray, step: int,
                param: int, q: str, dtype: str) -> None:
    """State rows a lazy step does not touch: compared with the state before the step."""
    ref = state[0][flat]
    bnd = state[2][flat] if isinstance(state[2], np.ndarray) else np.zeros(flat.shape)
    diff = np.abs(exact.to_float(actual.astype(object) - ref))
    nan_q = _exact_nan(actual, lambda j: ref[j], diff)

    def maker(j: int) -> tuple[float, float]:
        return float(ref[j]), float(actual[j])

    found.add(np.int64(step), np.int64(param), 1 if q == "m" else 2, flat, _ratio(diff, bnd, actual, nan_q),
              (maker, bnd, diff, q))


def _verdict(found: _Found, v: Variant, name: str, max_failures: int, shapes: list[tuple[int, ...]],
             dtype: str, per_step: bool = False, steps: int = 0) -> Verdict:
    if not found.ratio:
        return Verdict(True, v.name, name, None, [], found.count, [(0.0, 0.0)] * steps if per_step else [])
    keys = np.concatenate(found.keys, axis=1)
    ratio = np.concatenate(found.ratio)
    r = np.nan_to_num(ratio, nan=-1.0)
    # order: step, parameter, quantity (unchanged, w, m, u), worst ratio first
    top = np.flatnonzero(r == r.max())
    worst_j = int(top[np.lexsort((keys[2, top], keys[1, top], keys[0, top]))[0]])
    bad = np.flatnonzero(r > 1.0)
    bad = bad[np.lexsort((-r[bad], keys[2, bad], keys[1, bad], keys[0, bad]))][:max_failures]
    starts = np.cumsum([0] + [n for _, n in found.makers])

    def comparison(j: int) -> Comparison:
        b = int(np.searchsorted(starts, j, side="right")) - 1
        (maker, bnd, diff, q), _ = found.makers[b]
        o = j - int(starts[b])
        expected, actual = maker(o)
        step, param, flat = int(keys[0, j]), int(keys[1, j]), int(keys[3, j])
        idx = tuple(int(x) for x in np.unravel_index(flat, shapes[param])) if shapes[param] else ()
        ulps = float(diff[o] / ulp(np.asarray(expected), dtype))
        if np.isnan(actual) and not np.isnan(expected):
            ulps = math.inf
        return Comparison(step, param, idx, q, expected, actual, float(bnd[o]), float(ratio[j]), ulps)

    worst = comparison(worst_j)
    failures = [comparison(int(j)) for j in bad]
    series: list[tuple[float, float]] = []
    if per_step:
        r_step, u_step = np.zeros(steps), np.zeros(steps)
        np.maximum.at(r_step, keys[0] - 1, np.where(ratio == ratio, ratio, 0.0))
        for j in range(ratio.size):
            c = comparison(j)
            u_step[c.step - 1] = max(u_step[c.step - 1], 0.0 if c.ulps != c.ulps else c.ulps)
        series = list(zip(r_step.tolist(), u_step.tolist(), strict=True))
    return Verdict(not failures, v.name, name, worst, failures, found.count, series)

