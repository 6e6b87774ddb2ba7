"""Run properties against a target and collect results (the CLI and pytest plugin share this).

A property draws cases from a strategy, runs the target, and asks the
reference for a verdict (or, for a few properties, checks a rule that needs no
reference: argument validation, non-finite propagation, state invariants,
untouched inputs, dtypes).  Hypothesis shrinks a failure to a small case,
which the report prints as a reproducer.

The runner never raises for a target's misbehaviour: a target that raises,
hangs (per-example ``timeout``), returns the wrong number of steps or shapes,
changes the dtype, or modifies its inputs gets a ``fail`` with that reason; a
crash of the suite itself (e.g. in the reference) is an ``error`` naming it.
"""

from __future__ import annotations

import copy
import hashlib
import math
import pickle
import re
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from adamax_spec.profiles import PROFILES, ArgumentRuleKind, Profile
from adamax_spec.reference.formats import fmt
from adamax_spec.reference.model import VARIANTS
from adamax_spec.reference.verdict import Verdict, judge

from . import strategies as S
from .case import Case, SparseGrad, Target, Trajectory, Unsupported

__all__ = ["PROPERTIES", "Property", "Result", "diagnose", "reproducer", "run_all", "run_property"]


# ---------------------------------------------------------------------------------------------
# Profile rules the reference's variant table does not carry (docs/spec.md S-none, N-1, C-*,
# V-args) are read from the profile records of ``adamax_spec.profiles``: step_counter,
# nan_in_max, clipping, validates_hyperparameters, rejects_unknown_kwargs, words.


def profile_rules(variant: str) -> Profile | None:
    """The profile record of ``variant``, or ``None`` for a name no profile has (then no
    profile-specific rule applies: one step counter, NaN propagates, no clipping, no words)."""
    return PROFILES.get(variant)


#: Target runs hypothesis may spend shrinking one property's failure; past it the smallest
#: failing example found so far is reported (a count, not a time: runs stay deterministic).
SHRINK_BUDGET = 25
#: A failure below this many bounds is reported as rounding-level, not matched to another variant:
#: the known variants differ by orders of magnitude more on any case that tells them apart.
MARGINAL = 2.0

_DEFAULT_ARGS = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
_NAN = float("nan")



def _expectations(kind: ArgumentRuleKind) -> dict[str, str]:
    """``{profile: "reject" | "accept"}`` for one kind of bad argument, from the profile records
    (``Profile.argument_rule``); a profile whose rule is "may" is left out."""
    out: dict[str, str] = {}
    for name, p in PROFILES.items():
        e = p.argument_rule(kind)
        if e != "may":
            out[name] = e
    return out


#: The bad arguments and what each kind of them is (its rule per profile: ``_expectations``).
_BAD_ARGUMENTS: list[tuple[dict[str, Any], str, ArgumentRuleKind]] = [
    ({"learning_rate": -1.0}, "learning_rate", "hyperparameter_range"),
    ({"learning_rate": _NAN}, "learning_rate", "hyperparameter_range"),
    ({"beta_1": 1.0}, "beta_1", "hyperparameter_range"),
    ({"beta_1": -0.1}, "beta_1", "hyperparameter_range"),
    ({"beta_1": _NAN}, "beta_1", "hyperparameter_range"),
    ({"beta_2": 1.0}, "beta_2", "hyperparameter_range"),
    ({"beta_2": -0.1}, "beta_2", "hyperparameter_range"),
    ({"epsilon": -1e-8}, "epsilon", "hyperparameter_range"),
    ({"not_an_argument": 1}, "not_an_argument", "unknown_argument"),
    ({"clipnorm": -1.0}, "clipnorm", "negative_clip"),
    ({"clipvalue": -1.0}, "clipvalue", "negative_clip"),
    ({"global_clipnorm": -1.0}, "global_clipnorm", "negative_clip"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, "clipnorm", "clipnorm_and_global_clipnorm"),
    ({"clipvalue": 1.0, "clipnorm": 1.0}, "clipnorm", "clipvalue_and_clipnorm"),
]
#: (bad arguments, the argument to name, {profile: "reject" | "accept"}); absent profile = may.
#: "reject": ValueError or TypeError whose message names the argument.  "accept": no error.
ARGUMENT_RULES: list[tuple[dict[str, Any], str, dict[str, str]]] = [
    (args, name, _expectations(kind)) for args, name, kind in _BAD_ARGUMENTS
]
_ALIASES = {
    "learning_rate": ("learning_rate", "learning rate", "lr"),
    "beta_1": ("beta_1", "beta1", "b1", "betas", "beta"),
    "beta_2": ("beta_2", "beta2", "b2", "betas", "beta"),
    "epsilon": ("epsilon", "eps"),
    "clipnorm": ("clipnorm", "global_clipnorm", "clip"),
    "clipvalue": ("clipvalue",),
    "global_clipnorm": ("global_clipnorm",),
    "not_an_argument": ("not_an_argument",),
}


def names_argument(message: str, arg: str) -> bool:
    """Does ``message`` name ``arg`` (under one of its usual spellings, as a whole word)?"""
    text = message.lower()
    for alias in _ALIASES.get(arg, (arg,)):
        pat = re.escape(alias).replace("_", "[_ ]?").replace(r"\ ", "[_ ]?")
        if re.search(rf"(?<![a-z0-9]){pat}(?![a-z0-9])", text):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Properties


@dataclass
class Finding:
    """Why one example failed: ``kind`` "fail" (the target) or "error" (the suite itself)."""

    message: str
    case: Case | None = None
    verdict: Verdict | None = None
    kind: str = "fail"
    diagnosis: str = ""


#: ``check(target, drawn example, variant, run) -> Finding | None``; ``run(case)`` runs the
#: target with the time limit and the structural checks; raise Unsupported to skip an example.
Check = Callable[[Target, Any, str, Callable[[Case], Trajectory]], Finding | None]


@dataclass(frozen=True)
class Property:
    """One checked clause of ``docs/spec.md``: ``id`` is the clause id."""

    id: str
    title: str
    needs: frozenset[str]
    strategy: Callable[[], st.SearchStrategy[Any]]
    check: Check | None = None  # None: run the target, judge with the reference
    scale: Callable[[int], int] = field(default=lambda n: n)  # examples for a run of n
    shrink: int = SHRINK_BUDGET  # target runs allowed for shrinking a failure (long cases: few)


class _Failed(AssertionError):
    pass


class _TimedOut(Exception):
    pass


def _call(fn: Callable[[], Any], timeout: float | None) -> Any:
    """``fn()`` in a worker thread; raise :class:`_TimedOut` after ``timeout`` seconds.

    A thread cannot be killed: a hung target keeps its (daemon) thread, the run goes on.
    """
    if not timeout:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a target's warnings (0/0 ...) are not the run's errors
                box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    th = threading.Thread(target=work, name="adamax-conformance-target", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise _TimedOut(f"timed out: one example ran longer than {timeout:g} s (per-example limit, --timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _snapshot(case: Case) -> list[Any]:
    return copy.deepcopy([case.params, case.grads])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, SparseGrad):
        return _same([a.indices, a.values], [b.indices, b.values])
    if a is None or b is None:
        return a is b
    x, y = np.asarray(a), np.asarray(b)
    return x.shape == y.shape and bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))


def _structure(case: Case, traj: Trajectory) -> str | None:
    """What is wrong with the shape of a trajectory, or ``None``."""
    if len(traj.params) != case.steps:
        return f"target returned {len(traj.params)} steps, expected {case.steps}"
    for k, ps in enumerate(traj.params):
        if len(ps) != len(case.params):
            return f"step {k + 1}: target returned {len(ps)} parameters, expected {len(case.params)}"
        for i, p in enumerate(ps):
            if np.shape(p) != np.shape(case.params[i]):
                return f"step {k + 1}: params[{i}] has shape {np.shape(p)}, expected {np.shape(case.params[i])}"
    if traj.faults:
        return traj.faults[0]
    if traj.dtypes and any(d != case.dtype for d in traj.dtypes):
        bad = next(d for d in traj.dtypes if d != case.dtype)
        return f"the weights came back as {bad}, the case's dtype is {case.dtype} (D-dtype)"
    if traj.devices and traj.devices_in and traj.devices != traj.devices_in:
        return f"the weights moved from device {traj.devices_in} to {traj.devices} (D-dtype)"
    return None


def _runner(target: Target, timeout: float | None) -> Callable[[Case], Trajectory]:
    """``run(case)``: the target under the time limit, then the checks every property shares."""

    def run(case: Case) -> Trajectory:
        before = _snapshot(case)
        try:
            traj = _call(lambda: target.run(case), timeout)
        except (Unsupported, _TimedOut):
            raise
        except Exception as e:  # the target crashed: that is a finding, not our crash
            msg = "".join(traceback.format_exception_only(e)).strip()
            raise _Failed(f"target raised {msg}") from None
        if not _same(before, _snapshot(case)):
            raise _Failed("the target modified the case's input arrays (gradients or initial weights) (I-inputs)")
        problem = _structure(case, traj)
        if problem:
            raise _Failed(problem)
        return traj

    return run


# -- judging with the reference ------------------------------------------------------------


def _sub(case: Case, traj: Trajectory, i: int, ks: list[int]) -> tuple[Case, Trajectory]:
    hyper = dict(case.hyper)
    if case.group_hyper is not None:
        hyper.update(case.group_hyper[i])
    c = Case([case.params[i]], [[case.grads[k][i]] for k in ks], hyper, case.dtype, label=case.label)
    t = Trajectory(params=[[traj.params[k][i]] for k in ks])
    t.m = [None if k >= len(traj.m) or traj.m[k] is None else [traj.m[k][i]] for k in ks]  # type: ignore[index]
    t.u = [None if k >= len(traj.u) or traj.u[k] is None else [traj.u[k][i]] for k in ks]  # type: ignore[index]
    return c, t


def _unchanged_failure(case: Case, traj: Trajectory, i: int, k: int) -> str | None:
    """Step ``k`` gave params[i] no gradient: w (and the state, where seen) must be bit-identical."""
    seqs: list[tuple[str, list[Any], Any]] = [("w", traj.params, case.params[i]), ("m", traj.m, None),
                                             ("u", traj.u, None)]
    for q, seq, first in seqs:
        now: Any = seq[k][i] if k < len(seq) and seq[k] is not None else None
        if now is None:
            continue
        prev: Any
        if k == 0:
            prev = first if first is not None else np.zeros(np.shape(now))
        else:
            p = seq[k - 1]
            prev = None if p is None else p[i]
        if prev is not None and not _same(np.asarray(now, float), np.asarray(prev, float)):
            return (f"step {k + 1}: params[{i}] had no gradient but its {q} changed "
                    "(S-none: it must stay bit-identical)")
    return None


def check_reference(case: Case, traj: Trajectory, variant: str) -> Finding | None:
    """The reference's verdict; a case is split per parameter for parameter groups and,
    under a per-parameter step counter, for missing gradients."""
    rules = profile_rules(variant)
    per_param = rules is not None and rules.step_counter == "parameter" and "none_grad" in case.needs()
    if case.group_hyper is None and not per_param:
        v = judge(case, traj, variant)
        return None if v.ok else Finding(v.failures[0].describe(), case, v)
    for i in range(len(case.params)):
        ks = list(range(case.steps))
        if per_param:
            for k in range(case.steps):
                if case.grads[k][i] is None:
                    bad = _unchanged_failure(case, traj, i, k)
                    if bad:
                        return Finding(bad, case)
            ks = [k for k in ks if case.grads[k][i] is not None]
        if not ks:
            continue
        c, t = _sub(case, traj, i, ks)
        v = judge(c, t, variant)
        if not v.ok:
            f = v.failures[0]
            where = f"step {ks[f.step - 1] + 1}, params[{i}]{list(f.index)}"
            msg = f.describe().replace(f"step {f.step}, params[0]{list(f.index)}", where)
            note = f" (parameter {i} alone, its step count {f.step})" if per_param else f" (parameter group {i})"
            return Finding(msg + note, case, v)
    return None


def _reference_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    return check_reference(case, run(case), variant)


# -- checks that need no reference ----------------------------------------------------------


def _arguments_check(target: Target, rule: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    args, name, expect = rule
    clip_args = {"clipvalue", "clipnorm", "global_clipnorm"} & set(args)
    rules = profile_rules(variant)
    if clip_args and (rules is None or rules.clipping == "none" or clip_args - target.capabilities):
        raise Unsupported("clipping arguments", "this rule is about clipping arguments")
    expectation = expect.get(variant, "may")
    make = getattr(target, "make", None)
    if make is None:
        raise Unsupported("validation", f"{target.name} has no constructor to call")
    call = ", ".join(f"{k}={v!r}" for k, v in args.items())
    try:
        _call(lambda: make({**_DEFAULT_ARGS, **args}), 30.0)
    except _TimedOut:
        raise
    except (ValueError, TypeError) as e:
        if expectation == "accept":
            return Finding(f"V-args: {target.name}({call}) raised {type(e).__name__}: {e}; "
                           f"profile {variant} accepts it")
        if expectation == "reject" and not names_argument(str(e), name):
            return Finding(f"V-args: {target.name}({call}) raised {type(e).__name__}: {e!s:.200} "
                           f"-- the message does not name the argument {name!r}")
        return None
    except Exception as e:  # any other exception type is the finding
        if expectation == "may":
            return None
        return Finding(f"V-args: {target.name}({call}) raised {type(e).__name__}: {e!s:.200}; "
                       f"expected {'no error' if expectation == 'accept' else 'ValueError or TypeError'}")
    if expectation == "reject":
        return Finding(f"V-args: {target.name}({call}) was accepted; profile {variant} rejects it "
                       f"with a ValueError or TypeError naming {name!r}")
    return None


def _nonfinite_check(target: Target, drawn: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    case, where = drawn
    traj = run(case)
    f = fmt(case.dtype)
    first: dict[tuple[int, int], tuple[int, float]] = {}
    for k, i, j, val in sorted(where, key=lambda x: x[:3]):
        first.setdefault((i, j), (k, val))
    rules = profile_rules(variant)
    keep_decayed = rules is not None and rules.nan_in_max == "keep_decayed"
    for (i, j), (k, val) in sorted(first.items()):
        loc = f"step {k + 1}, params[{i}] element {j} (gradient {val})"
        for kk in range(k, case.steps):
            w = np.asarray(traj.params[kk][i], float).reshape(-1)[j]
            if not math.isnan(w):
                return Finding(f"N-1: {loc}: w is {w!r} at step {kk + 1}, expected NaN "
                               "(a non-finite gradient must not become a number in w)", case)
        m_k = traj.m[k] if k < len(traj.m) else None
        u_k = traj.u[k] if k < len(traj.u) else None
        if m_k is None or u_k is None:
            continue
        m = float(np.asarray(m_k[i], float).reshape(-1)[j])
        u = float(np.asarray(u_k[i], float).reshape(-1)[j])
        if math.isnan(val):
            if not math.isnan(m):
                return Finding(f"N-1: {loc}: m is {m!r}, expected NaN", case)
            if keep_decayed:
                prev = 0.0 if k == 0 else float(np.asarray(traj.u[k - 1][i], float).reshape(-1)[j])  # type: ignore[index]
                b2 = float(case.hyper["beta_2"])
                # b2 used as passed or rounded (<= 1 rounding), times one rounded product.
                tol = 3 * max(f.unit, fmt("float32").unit) * b2 * prev + f.tiny
                if not math.isnan(u) and abs(u - b2 * prev) > tol:
                    return Finding(f"N-1 ({variant}): {loc}: u is {u!r}, expected b2*u = {b2 * prev!r} "
                                   "(Keras's dense max keeps b2*u when |g| is NaN) or NaN", case)
            elif not math.isnan(u):
                return Finding(f"N-1 ({variant}): {loc}: u is {u!r}, expected NaN (NaN propagates into u)", case)
        else:
            if u != math.inf:
                return Finding(f"N-1: {loc}: u is {u!r}, expected inf", case)
            if not (math.isnan(m) or m == val):
                return Finding(f"N-1: {loc}: m is {m!r}, expected {val} (or NaN, from a lerp form)", case)
    # Elements that never saw a non-finite gradient: the reference, as usual.
    hit = {(i, j) for (i, j) in first}
    masks = []
    for i, p in enumerate(case.params):
        mk = np.ones(p.size, dtype=bool)
        for (ii, j) in hit:
            if ii == i:
                mk[j] = False
        masks.append(mk)

    def pick(arrs: list[Any] | None) -> list[Any] | None:
        if arrs is None:
            return None
        return [np.asarray(a, float).reshape(-1)[masks[i]] for i, a in enumerate(arrs)]

    sub = Case([np.asarray(p, float).reshape(-1)[masks[i]] for i, p in enumerate(case.params)],
               [pick(s) or [] for s in case.grads], case.hyper, case.dtype, label="finite elements")
    t = Trajectory(params=[pick(s) or [] for s in traj.params], m=[pick(s) for s in traj.m],
                   u=[pick(s) for s in traj.u])
    v = judge(sub, t, variant)
    if not v.ok:
        return Finding("elements with finite gradients (flat indices): " + v.failures[0].describe(), sub, v)
    return None


def _invariant_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    """INV-moments: ``u >= |g|``, ``u >= b2*u_prev`` and ``|m| <= A_t*u + B_t`` with ``A_t`` the
    invariant ``(1-b1)(1-(b1/b2)^t)/(1-b1/b2)`` widened by the rounding of each step (docs/spec.md)."""
    traj = run(case)
    if any(x is None for x in traj.m) or any(x is None for x in traj.u) or not traj.m:
        raise Unsupported("state", f"{target.name} does not expose m and u")
    f = fmt(case.dtype)
    e, eta = f.unit, f.tiny
    e_h = max(e, fmt("float32").unit)  # hyperparameters used rounded to the dtype or to float32
    b1, b2 = float(case.hyper["beta_1"]), float(case.hyper["beta_2"])
    alpha, gamma = b1 + e_h + 6 * e, 1 - b1 + 2 * e_h + 6 * e
    beta = b2 * (1 - e_h) * (1 - e)
    n = len(case.params)
    a_t, b_t = 0.0, 0.0
    u_prev = [np.zeros(np.shape(p)) for p in case.params]
    with np.errstate(all="ignore"):
        for k in range(case.steps):
            if beta > 0:
                a_t, b_t = alpha * a_t / beta + gamma, alpha * b_t + alpha * a_t * eta / beta + 3 * eta
            else:
                a_t, b_t = math.inf, math.inf
            for i in range(n):
                g = case.grads[k][i]
                m = np.asarray(traj.m[k][i], float)  # type: ignore[index]
                u = np.asarray(traj.u[k][i], float)  # type: ignore[index]
                if g is None:
                    u_prev[i] = u
                    continue
                ag = np.abs(np.asarray(g, float))
                checks = (
                    (~(u >= ag), "u < |g| (the max must keep |g|)"),
                    (~(u >= beta * u_prev[i] - eta), "u < b2*u_prev (the max must keep b2*u)"),
                    (~(np.abs(m) <= a_t * u + b_t), f"|m| > {a_t:.6g}*u + {b_t:.3g} (|m/u| invariant)"),
                )
                for bad, what in checks:
                    if bad.any():
                        idx = np.unravel_index(int(np.argmax(bad)), bad.shape)
                        return Finding(
                            f"INV-moments: step {k + 1}, params[{i}]{list(int(x) for x in idx)}: {what}; "
                            f"m = {m[idx]!r}, u = {u[idx]!r}, |g| = {ag[idx]!r}, u_prev = {u_prev[i][idx]!r}", case)
                u_prev[i] = u
    return None


def _dtype_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    traj = run(case)  # _structure already compared dtypes and devices
    if not traj.dtypes and not traj.devices:
        raise Unsupported("dtype report", f"the {target.name} adapter does not report dtypes")
    return None


def _inputs_check(target: Target, case: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    run(case)  # the snapshot comparison and the adapter's own faults are in run()
    return None


PROPERTIES: list[Property] = [
    Property("U-dense", "dense steps match the reference within the error bound",
             frozenset({"dense"}), lambda: S.dense_cases()),
    Property("U-dtypes", "float16, bfloat16 and float64 weights follow the same rule in their dtype",
             frozenset({"dense"}), lambda: S.dense_cases(dtypes=("float16", "bfloat16", "float64"))),
    Property("U-long", "long runs (up to 150 steps) stay within the per-step bound",
             frozenset({"dense"}), lambda: S.dense_cases(max_steps=150), scale=lambda n: max(2, n // 10),
             shrink=8),
    Property("SP-sparse", "sparse gradients: duplicates summed, rows per the profile's rule",
             frozenset({"sparse"}), lambda: S.sparse_cases()),
    Property("T-counter", "step counts past 2048 (float16 / low-precision counters) keep counting",
             frozenset({"dense"}), lambda: S.counter_cases(), scale=lambda n: max(1, n // 25), shrink=2),
    Property("S-none", "a parameter without gradient stays bit-identical; step counter per profile",
             frozenset({"none_grad"}), lambda: S.none_grad_cases()),
    Property("C-clip", "clipvalue, clipnorm and global_clipnorm in Keras order",
             frozenset(), lambda: S.clip_cases()),
    Property("LR-schedule", "Keras 2.9 schedules receive the steps already applied",
             frozenset({"schedule"}), lambda: S.schedule_cases()),
    Property("CK-checkpoint", "save, restore into a fresh instance, continue",
             frozenset({"checkpoint"}), lambda: S.checkpoint_cases()),
    Property("G-groups", "per-parameter-group hyperparameters apply to their own parameters",
             frozenset({"groups"}), lambda: S.group_cases()),
    Property("N-nonfinite", "NaN and inf gradients propagate as the profile's framework does",
             frozenset({"dense"}), lambda: S.nonfinite_cases(), check=_nonfinite_check),
    Property("INV-moments", "|m| <= u*(1-b1)(1-(b1/b2)^t)/(1-b1/b2), u >= |g|, u >= b2*u (long runs)",
             frozenset({"state"}), lambda: S.invariant_cases(), check=_invariant_check,
             scale=lambda n: max(2, n // 5), shrink=8),
    Property("I-inputs", "gradients and the caller's inputs are left unmodified",
             frozenset({"inputs"}), lambda: S.input_cases(), check=_inputs_check),
    Property("D-dtype", "weights keep their dtype (and device) through every step",
             frozenset({"dense"}), lambda: S.dense_cases(dtypes=("float16", "bfloat16", "float32", "float64"),
                                                          max_steps=3), check=_dtype_check),
    Property("V-args", "bad constructor arguments: error type and message per profile",
             frozenset({"validation"}), lambda: st.sampled_from(ARGUMENT_RULES), check=_arguments_check,
             scale=lambda n: 3 * len(ARGUMENT_RULES)),
]


# ---------------------------------------------------------------------------------------------
# Diagnosis: why did it fail?


def _words(variant: str) -> str:
    """The short phrase a diagnosis uses for a variant (``Profile.words``), else its name."""
    rules = profile_rules(variant)
    return rules.words if rules is not None and rules.words else variant


def _sums_abs(variant: str) -> bool:
    """Does ``u`` of a repeated sparse row see ``sum_j |v_j|`` under ``variant`` (Keras 3)?"""
    rules = profile_rules(variant)
    return rules is not None and rules.sparse_magnitude == "sum_of_abs"


def _differences(a: str, b: str) -> list[str]:
    va, vb = VARIANTS[a], VARIANTS[b]
    out = []
    if va.epsilon != vb.epsilon:
        out.append("epsilon placement")
    if va.bias_correction != vb.bias_correction:
        out.append("bias correction")
    if va.lazy != vb.lazy:
        out.append("sparse laziness")
    return out


def _deduplicated(case: Case) -> Case | None:
    """The case with each sparse gradient keeping only the first value of every repeated index
    (a different but valid case: it isolates SP-2 from SP-1), or None if nothing repeats."""
    changed, grads = False, []
    for step in case.grads:
        out: list[Any] = []
        for g in step:
            idx = np.asarray(g.indices) if isinstance(g, SparseGrad) else None
            if isinstance(g, SparseGrad) and idx is not None and np.unique(idx).size < idx.size:
                _, first = np.unique(idx, return_index=True)
                first.sort()
                out.append(SparseGrad(idx[first].astype(np.int64), np.asarray(g.values)[first], g.dense_shape))
                changed = True
            else:
                out.append(g)
        grads.append(out)
    return Case(case.params, grads, case.hyper, case.dtype, case.checkpoint_at, case.label) if changed else None


def diagnose(case: Case, traj: Trajectory | None, variant: str, verdict: Verdict | None,
             run: Callable[[Case], Trajectory] | None = None) -> str:
    """A readable cause: which known variant the failing case fits, and sparse-row patterns.

    With ``run``, a failing sparse case with repeated indices is run again without the repeats,
    which separates SP-1 (duplicates) from SP-2 (laziness)."""
    lines = []
    if run is not None:
        alt = _deduplicated(case)
        if alt is not None:
            try:
                alt_traj = run(alt)
                alt_verdict = judge(alt, alt_traj, variant)
            except Exception:  # diagnosis is best effort
                alt_traj = None
            if alt_traj is not None:
                inner = diagnose(alt, alt_traj, variant, None if alt_verdict.ok else alt_verdict)
                lines.append("with each row named once (repeated indices dropped), the case "
                             + ("passes" if alt_verdict.ok else f"still fails ({inner or 'no known variant fits'})"))
    if verdict is not None and any(c.quantity.startswith("w (must be unchanged)") for c in verdict.failures) \
            and any(isinstance(g, SparseGrad) for s in case.grads for g in s):
        lines.append("rows the sparse gradient does not name changed: the target densifies sparse "
                     "gradients (not lazy; SP-2 sparse laziness)")
    if verdict is not None and verdict.failures:
        dup_rows = _duplicate_rows(case)
        failing = {(c.step, c.param, c.index[0] if c.index else None) for c in verdict.failures}
        if dup_rows and all(f in dup_rows for f in failing):
            lines.append("every failing element is in a row named more than once by one sparse gradient: "
                         "duplicate indices are not combined as SP-1 requires for this profile (sum the "
                         + ("values for m, and |values| for u)" if _sums_abs(variant) else "values, then |g|)"))
    if verdict is not None and verdict.max_ratio < MARGINAL:
        lines.append(f"marginal failure ({verdict.max_ratio:.3g} x bound): a rounding-level deviation "
                     "(operation order, hyperparameter rounding, accumulated error), not another variant")
    elif traj is not None and variant in VARIANTS:
        scores = {}
        for name in VARIANTS:
            if name == variant:
                continue
            try:
                v = judge(case, traj, name)
            except Exception:  # a diagnosis never breaks a report
                continue
            scores[name] = v
        fits = [n for n, v in scores.items() if v.ok]
        sparse = any(isinstance(g, SparseGrad) for s in case.grads for g in s)
        if fits:
            # what every fitting variant changes (b1 = 0 makes mlx equal keras3, and so on)
            common = set.intersection(*(set(_differences(variant, n)) for n in fits))
            what = sorted(w for w in common if sparse or w != "sparse laziness") or ["hyperparameter handling"]
            lines.append(f"the failing case fits variant {'/'.join(fits)} "
                         f"({_words(fits[0])}), not {variant} "
                         f"({_words(variant)}): {', '.join(what)}")
        elif scores:
            best = min(scores, key=lambda n: scores[n].max_ratio)
            lines.append(f"the failing case fits no known variant (closest: {best}, "
                         f"{scores[best].max_ratio:.3g} x bound)")
    return "; ".join(lines)


def _duplicate_rows(case: Case) -> set[tuple[int, int, int | None]]:
    out: set[tuple[int, int, int | None]] = set()
    for k, step in enumerate(case.grads):
        for i, g in enumerate(step):
            if isinstance(g, SparseGrad):
                rows, counts = np.unique(np.asarray(g.indices), return_counts=True)
                out |= {(k + 1, i, int(r)) for r, c in zip(rows, counts, strict=True) if c > 1}
    return out


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class Result:
    property: str
    title: str
    status: str  # "pass" | "fail" | "not supported" | "error" | "xfail"
    examples: int = 0
    seconds: float = 0.0
    detail: str = ""
    reproducer: str = ""
    verdict: dict[str, Any] = field(default_factory=dict)
    diagnosis: str = ""


def run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                 require: frozenset[str] = frozenset(), timeout: float | None = None,
                 rerun: str = "") -> Result:
    """Run one property; never raises for a target's misbehaviour (nor for the suite's own bugs)."""
    t0 = time.perf_counter()
    try:
        return _run_property(prop, target, variant, examples=examples, seed=seed, require=require,
                             timeout=timeout, rerun=rerun, t0=t0)
    except Exception as e:  # an internal error must not lose the other results
        detail = "suite error (not a finding about the target): " + "".join(
            traceback.format_exception_only(e)).strip()
        return Result(prop.id, prop.title, "error", 0, time.perf_counter() - t0, detail)


def _run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                  require: frozenset[str], timeout: float | None, rerun: str, t0: float) -> Result:
    missing = prop.needs - target.capabilities
    if missing and not (missing & require):
        return Result(prop.id, prop.title, "not supported",
                      detail=f"{target.name} lacks {', '.join(sorted(missing))}")
    state: dict[str, Any] = {"ran": 0, "unsupported": None, "finding": None, "shrinks": None}
    failed: dict[bytes, Finding] = {}
    run = _runner(target, timeout)
    checker = prop.check or _reference_check

    @hypothesis_seed(seed)
    @settings(max_examples=examples, derandomize=False, database=None, deadline=None,
              print_blob=False, suppress_health_check=list(HealthCheck))
    @given(prop.strategy())
    def check(drawn: Any) -> None:
        if state["finding"] is not None and state["finding"].kind == "timeout":
            raise _Failed(state["finding"].message)  # a hung target: no more waiting while hypothesis shrinks
        case = drawn[0] if isinstance(drawn, tuple) and drawn and isinstance(drawn[0], Case) else drawn
        key = hashlib.sha256(pickle.dumps(drawn)).digest()
        if key in failed:  # hypothesis replays its final (smallest) failing example
            state["finding"] = failed[key]
            raise _Failed(failed[key].message)
        if state["shrinks"] is not None:
            if state["shrinks"] >= prop.shrink:
                return  # shrink budget spent: no more target runs, the smallest failure so far stands
            state["shrinks"] += 1
        try:
            finding = checker(target, drawn, variant, run)
        except Unsupported as e:
            if e.capability in require:
                state["finding"] = Finding(f"required capability {e.capability} unsupported: {e}",
                                           case if isinstance(case, Case) else None)
                raise _Failed(str(e)) from None
            state["unsupported"] = str(e)
            return
        except _TimedOut as e:
            state["finding"] = Finding(str(e), case if isinstance(case, Case) else None, kind="timeout")
            raise _Failed(str(e)) from None
        except _Failed as e:
            state["finding"] = Finding(str(e), case if isinstance(case, Case) else None)
            failed[key] = state["finding"]
            state["shrinks"] = state["shrinks"] or 0
            raise
        except Exception as e:  # the suite's own bug: say so, keep going
            msg = "".join(traceback.format_exception_only(e)).strip()
            state["finding"] = Finding(f"suite error (not a finding about the target): {msg}",
                                       case if isinstance(case, Case) else None, kind="error")
            raise _Failed(msg) from None
        state["ran"] += 1
        if finding is not None:
            state["finding"] = finding
            failed[key] = finding
            state["shrinks"] = state["shrinks"] or 0
            raise _Failed(finding.message)

    try:
        check()
        status = "pass" if state["ran"] else "not supported"
        detail = "" if state["ran"] else f"every example was unsupported: {state['unsupported']}"
    except (_Failed, AssertionError, ExceptionGroup):
        status, detail = "fail", ""
    finding: Finding | None = state["finding"]
    if status == "fail" and finding is None:
        status, detail = "error", "suite error: hypothesis reported a failure without a finding"
    r = Result(prop.id, prop.title, status, state["ran"], time.perf_counter() - t0, detail)
    if status == "fail" and finding is not None:
        r.status = "error" if finding.kind == "error" else "fail"
        r.detail = finding.message
        if finding.case is not None:
            if finding.verdict is not None and finding.kind == "fail" and prop.check is None:
                try:
                    traj = _call(lambda: target.run(finding.case), timeout)  # type: ignore[arg-type]
                    finding.diagnosis = diagnose(finding.case, traj, variant, finding.verdict,
                                                 run=lambda c: _call(lambda: target.run(c), timeout))
                except Exception:  # diagnosis is best effort
                    finding.diagnosis = diagnose(finding.case, None, variant, finding.verdict)
            r.reproducer = reproducer(finding.case, variant, finding.verdict, seed=seed, rerun=rerun,
                                      message=finding.message, diagnosis=finding.diagnosis)
        if finding.verdict is not None:
            r.verdict = verdict_dict(finding.verdict)
        if finding.diagnosis:
            r.diagnosis = finding.diagnosis
            r.detail += f"\ndiagnosis: {finding.diagnosis}"
    return r


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {
        "ok": v.ok, "variant": v.variant, "interpretation": v.interpretation,
        "compared": v.compared, "max_ratio": v.max_ratio,
        "failures": [c.__dict__ for c in v.failures],
    }


def _num(x: float) -> str:
    return repr(float(x)) if math.isfinite(x) else f"float('{x}')"


def reproducer(case: Case, variant: str, verdict: Verdict | None, *, seed: int | None = None,
               rerun: str = "", message: str = "", diagnosis: str = "") -> str:
    """A copy-pasteable script that rebuilds the failing case and judges a target on it."""
    def arr(a: Any) -> str:
        a = np.asarray(a, dtype=np.float64)
        body = ", ".join(_num(x) for x in a.reshape(-1))
        return f"np.array([{body}]).reshape({a.shape!r})"

    def grad(g: Any) -> str:
        if g is None:
            return "None"
        if isinstance(g, SparseGrad):
            return f"SparseGrad(np.array({g.indices.tolist()!r}), {arr(g.values)}, {tuple(g.dense_shape)!r})"
        return arr(g)

    lines = [
        "import numpy as np",
        "from adamax_spec.conformance.case import Case, SparseGrad",
        "from adamax_spec.reference.verdict import judge",
        f"case = Case(params=[{', '.join(arr(p) for p in case.params)}],",
        "            grads=[" + ",\n                   ".join(
            "[" + ", ".join(grad(g) for g in step) + "]" for step in case.grads) + "],",
        f"            hyper={case.hyper!r}, dtype={case.dtype!r}, checkpoint_at={case.checkpoint_at!r}"
        + (f",\n            group_hyper={case.group_hyper!r})" if case.group_hyper is not None else ")"),
        "# traj = <your adapter>.run(case)",
        f"# print(judge(case, traj, {variant!r}))",
    ]
    if message:
        lines.append(f"# failure: {message}")
    if verdict is not None:
        lines.append("# expected vs actual (error in bound units and ULP):")
        lines += [f"#   {c.describe()}" for c in verdict.failures[:3]]
    if diagnosis:
        lines.append(f"# diagnosis: {diagnosis}")
    if seed is not None:
        lines.append(f"# hypothesis seed {seed}" + (f"; regenerate with: {rerun}" if rerun else ""))
    return "\n".join(lines)


def run_all(target: Target, variant: str, *, examples: int = 25, seed: int = 0,
            only: list[str] | None = None, require: frozenset[str] = frozenset(),
            xfails: set[str] | None = None, timeout: float | None = None, rerun: str = "",
            progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every property in order; ``progress`` sees each result as soon as it is known."""
    results = []
    for prop in PROPERTIES:
        if only and prop.id not in only:
            continue
        n = prop.scale(examples)
        again = f"{rerun} --only {prop.id}" if rerun else ""
        r = run_property(prop, target, variant, examples=n, seed=seed, require=require,
                         timeout=timeout, rerun=again)
        if xfails and prop.id in xfails and r.status == "fail":
            r.status = "xfail"
        results.append(r)
        if progress:
            progress(r)
    return results
