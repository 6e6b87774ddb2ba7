"""The reference with its bound rejects realistic bugs and accepts correct rewrites.

Each implementation is a raw step function (``FunctionTarget``) in NumPy of the
case dtype.  ``correct`` rewrites change operation order, form or internal
precision; mutants are bugs people ship.  The cases are fixed-seed draws of the
suite's own strategies plus the adversarial probes, so the test is
deterministic; ``test_naive_check_counts_match_docs`` measures what a naive check
(fixed rtol against a float64 run) would catch, and checks the counts that
docs/error-model.md states.
"""

from __future__ import annotations

import functools
import pathlib
import re

import numpy as np
import pytest

from adamax_spec.conformance.adapters.function import FunctionTarget
from adamax_spec.conformance.case import Case
from adamax_spec.reference.verdict import judge


def keras_step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon, dt=None):
    dt = w.dtype
    b1, b2, eps = dt.type(beta_1), dt.type(beta_2), dt.type(epsilon)
    m = m + (g - m) * (dt.type(1) - b1)
    u = np.maximum(b2 * u, np.abs(g))
    lr_t = dt.type(lr) / (dt.type(1) - b1 ** dt.type(t))
    return w - lr_t * (m / (u + eps)), m, u


# -- correct rewrites -------------------------------------------------------------------
def textbook(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    dt = w.dtype
    m = dt.type(beta_1) * m + dt.type(1 - beta_1) * g
    u = np.maximum(dt.type(beta_2) * u, np.abs(g))
    return w - dt.type(lr / (1 - beta_1**t)) * m / (u + dt.type(epsilon)), m, u


def keras3_order(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    dt = w.dtype
    m = m + (g - m) * dt.type(1 - beta_1)
    u = np.maximum(dt.type(beta_2) * u, np.abs(g))
    bc = dt.type(1) - dt.type(beta_1) ** dt.type(t)
    return w - (dt.type(lr) * m) / (bc * (u + dt.type(epsilon))), m, u


def float64_inside(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    dt = w.dtype
    w64, g64, m64, u64 = (x.astype(np.float64) for x in (w, g, m, u))
    m64 = beta_1 * m64 + (1 - beta_1) * g64
    u64 = np.maximum(beta_2 * u64, np.abs(g64))
    w64 = w64 - lr / (1 - beta_1**t) * m64 / (u64 + epsilon)
    return w64.astype(dt), m64.astype(dt), u64.astype(dt)


def lerp_form(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    dt = w.dtype
    wgt = dt.type(1 - beta_1)
    m = m + wgt * (g - m) if wgt < 0.5 else g - (g - m) * dt.type(beta_1)
    u = np.maximum(dt.type(beta_2) * u, np.abs(g))
    step = dt.type(lr) / (dt.type(1) - dt.type(beta_1) ** t)
    return w - step * m / (u + dt.type(epsilon)), m, u


def float32_hypers(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    r32 = lambda x: float(np.float32(x))  # noqa: E731
    return keras_step(w, g, m, u, t=t, lr=r32(lr), beta_1=r32(beta_1), beta_2=r32(beta_2),
                      epsilon=epsilon)


def division_first(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon):
    dt = w.dtype
    m = dt.type(beta_1) * m + dt.type(1 - beta_1) * g
    u = np.maximum(dt.type(beta_2) * u, np.abs(g))
    ratio = m / (u + dt.type(epsilon))
    return w - ratio * dt.type(lr) / dt.type(1 - beta_1**t), m, u


CORRECT = [keras_step, textbook, keras3_order, float64_inside, lerp_form, float32_hypers,
           division_first]


# -- mutants ----------------------------------------------------------------------------
def _mut(name, fn):
    fn.__name__ = name
    return fn


def _make_mutants():
    out = []

    def add(name, step):
        out.append(_mut(name, step))

    add("no_bias_correction", _generic(bc=lambda b1, b2, t: 1.0))
    add("bias_uses_t_minus_1", _generic(tmap=lambda t: max(t - 1, 1)))
    add("bias_uses_t_plus_1", _generic(tmap=lambda t: t + 1))
    add("bias_uses_beta_2", _generic(bc=lambda b1, b2, t: 1 - b2**t))
    add("bias_applied_to_u_too", _generic(den=lambda u, eps, b1, t: u / (1 - b1**t) + eps))
    add("m_uses_beta_2", _generic(m=lambda m, g, b1, b2: b2 * m + (1 - b2) * g))
    add("m_missing_one_minus_beta", _generic(m=lambda m, g, b1, b2: b1 * m + g))
    add("u_uses_sum_not_max", _generic(u=lambda u, g, b2, eps: b2 * u + np.abs(g)))
    add("u_without_abs", _generic(u=lambda u, g, b2, eps: np.maximum(b2 * u, g)))
    add("u_not_decayed", _generic(u=lambda u, g, b2, eps: np.maximum(u, np.abs(g))))
    add("eps_inside_max", _generic(u=lambda u, g, b2, eps: np.maximum(b2 * u, np.abs(g) + eps),
                                   den=lambda u, eps, b1, t: u))
    add("eps_squared", _generic(den=lambda u, eps, b1, t: u + eps * eps))
    add("eps_times_ten", _generic(den=lambda u, eps, b1, t: u + 10 * eps))
    add("no_epsilon", _generic(den=lambda u, eps, b1, t: np.where(u == 0, 1.0, u)))
    add("sqrt_of_u", _generic(den=lambda u, eps, b1, t: np.sqrt(u) + eps))
    add("lr_rounded_to_float16", _generic(lr=lambda lr: float(np.float16(lr))))
    add("beta_1_rounded_to_float16", _generic(b1=lambda b1: float(np.float16(b1))))
    add("state_in_float16", _state_precision(np.float16))
    add("state_truncated_to_8_bits", _state_truncate(8))
    add("counter_stuck_after_100", _generic(tmap=lambda t: min(t, 100)))
    add("sign_flip_update", _generic(sign=-1.0))
    add("max_gives_nan_sign_on_tie", _generic(u=lambda u, g, b2, eps: np.where(
        b2 * u == np.abs(g), 0.5 * np.abs(g), np.maximum(b2 * u, np.abs(g)))))
    add("update_skipped_for_tiny_grad", _generic(skip_below=1e-6))
    add("u_reset_every_50_steps", _generic(reset_every=50))
    return out


def _generic(m=None, u=None, den=None, bc=None, lr=None, b1=None, tmap=None, sign=1.0,
             skip_below=None, reset_every=None):
    """A textbook step with exactly one piece swapped for a bug."""
    def run(w, g, m_, u_, *, t, lr: float, beta_1, beta_2, epsilon):
        dt = w.dtype
        f = dt.type
        lr_v = (lr_map(lr) if lr_map else lr)
        b1v = b1(beta_1) if b1 else beta_1
        tt = tmap(t) if tmap else t
        if reset_every and (t - 1) % reset_every == 0 and t > 1:
            u_ = np.zeros_like(u_)
        m_new = (m(m_, g, f(b1v), f(beta_2)) if m else m_ + (g - m_) * f(1 - b1v)).astype(dt)
        u_new = (u(u_, g, f(beta_2), f(epsilon)) if u else np.maximum(f(beta_2) * u_, np.abs(g))).astype(dt)
        bcv = bc(b1v, beta_2, tt) if bc else 1 - b1v**tt
        d = (den(u_new, f(epsilon), b1v, tt) if den else u_new + f(epsilon)).astype(dt)
        upd = f(lr_v / bcv) * (m_new / d)
        if skip_below is not None:
            upd = np.where(np.abs(g) < skip_below, f(0), upd)
        return (w - f(sign) * upd).astype(dt), m_new, u_new
    lr_map = lr
    return run


def _state_precision(low):
    """State stored in a lower precision than the weights."""
    base = _generic()

    def run(w, g, m_, u_, **kw):
        w2, m2, u2 = base(w, g, m_, u_, **kw)
        return w2, m2.astype(low).astype(w.dtype), u2.astype(low).astype(w.dtype)
    return run


def _state_truncate(bits):
    """State truncated (not rounded) to ``bits`` significand bits, as a bad bfloat16 cast does."""
    base = _generic()

    def trunc(x):
        mnt, ex = np.frexp(x)
        return np.ldexp(np.trunc(mnt * 2.0**bits) / 2.0**bits, ex).astype(x.dtype)

    def run(w, g, m_, u_, **kw):
        w2, m2, u2 = base(w, g, m_, u_, **kw)
        return w2, trunc(m2), trunc(u2)
    return run


MUTANTS = _make_mutants()


def _cases():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from adamax_spec.conformance import strategies as S
    from adamax_spec.conformance.identify import probes

    out: list[Case] = [probes()[0]]
    rng = np.random.default_rng(7)
    # long run with tiny updates and b1 near 1: bugs late in a run and in conditioning
    n = 16
    out.append(Case([rng.standard_normal(n)], [[rng.standard_normal(n)] for _ in range(120)],
                    {"learning_rate": 1e-3, "beta_1": 0.999, "beta_2": 0.999, "epsilon": 1e-7},
                    "float64", label="long"))
    collected: list[Case] = []

    @settings(max_examples=40, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(S.dense_cases(dtypes=("float32",)), S.dense_cases(dtypes=("float64",))))
    def draw(case):
        collected.append(case)

    draw()
    return out + collected


CASES = _cases()


@functools.cache
def _rejected(step) -> tuple[bool, str]:
    target = FunctionTarget(step)
    for case in CASES:
        try:
            with np.errstate(all="ignore"):
                traj = target.run(case)
        except Exception as e:  # a mutant that crashes is caught too
            return True, f"crashed: {e}"
        v = judge(case, traj, "keras")
        if not v.ok:
            return True, v.failures[0].describe()
    return False, ""


@pytest.mark.parametrize("step", CORRECT, ids=[f.__name__ for f in CORRECT])
def test_correct_rewrites_are_accepted(step):
    rejected, why = _rejected(step)
    assert not rejected, why


@pytest.mark.parametrize("step", MUTANTS, ids=[f.__name__ for f in MUTANTS])
def test_mutants_are_rejected(step):
    rejected, _ = _rejected(step)
    assert rejected, f"{step.__name__} was not caught"


# -- what a naive check catches ----------------------------------------------------------
NAIVE_SEEDS = 5
NAIVE_STEPS = 3
NAIVE_HYPER = {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}  # Keras defaults


def _naive_flags(step) -> bool:
    """The check many optimizer test suites write: float32 weights, random normal gradients,
    the textbook rule recomputed in float64 from the same start, and
    ``np.allclose(w, w64, rtol=1e-4, atol=1e-6)`` on the weights after each of a few steps."""
    h = NAIVE_HYPER
    b1, b2, lr, eps = h["beta_1"], h["beta_2"], h["learning_rate"], h["epsilon"]
    for seed in range(NAIVE_SEEDS):
        rng = np.random.default_rng(seed)
        w = rng.standard_normal(16).astype(np.float32)
        w64, m64, u64 = w.astype(np.float64), np.zeros(16), np.zeros(16)
        m, u = np.zeros_like(w), np.zeros_like(w)
        for t in range(1, NAIVE_STEPS + 1):
            g = rng.standard_normal(16).astype(np.float32)
            try:
                with np.errstate(all="ignore"):
                    w, m, u = step(w, g, m, u, t=t, lr=lr, beta_1=b1, beta_2=b2, epsilon=eps)
            except Exception:
                return True
            m64 = b1 * m64 + (1 - b1) * g
            u64 = np.maximum(b2 * u64, np.abs(g))
            w64 = w64 - lr / (1 - b1**t) * m64 / (u64 + eps)
            if not np.allclose(w, w64, rtol=1e-4, atol=1e-6):
                return True
    return False


def _documented() -> dict[str, int]:
    """The counts docs/error-model.md states (``<!-- counts -->`` line)."""
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "error-model.md").read_text()
    line = re.search(r"<!-- counts: (.*?) -->", text)
    assert line, "docs/error-model.md lost its counts line"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.group(1))}


def test_naive_check_counts_match_docs():
    """The numbers in docs/error-model.md are measured here, so they cannot drift."""
    measured = {
        "mutants": len(MUTANTS),
        "rewrites": len(CORRECT),
        "naive_caught": sum(_naive_flags(s) for s in MUTANTS),
        "naive_false_alarms": sum(_naive_flags(s) for s in CORRECT),
        "reference_caught": sum(_rejected(s)[0] for s in MUTANTS),
        "reference_false_alarms": sum(_rejected(s)[0] for s in CORRECT),
    }
    assert measured == _documented()


# -- the float64 screens (docs/error-model.md, "Speed") change no verdict -------------------------
def _verdicts(monkeypatch, screen_min, impls, cases):
    from adamax_spec.reference import screens as V

    monkeypatch.setattr(V, "SCREEN_MIN", screen_min)
    out = []
    for step in impls:
        target = FunctionTarget(step)
        for case in cases:
            try:
                with np.errstate(all="ignore"):
                    traj = target.run(case)
            except Exception:
                continue
            v = judge(case, traj, "keras")
            out.append((step.__name__, v.ok, v.interpretation, v.max_ratio, v.compared,
                        [(c.step, c.param, c.index, c.quantity, c.ratio) for c in v.failures]))
    return out


def test_screens_keep_every_verdict(monkeypatch):
    """With the screens on for every case (SCREEN_MIN = 0) and off, the same verdicts, bit for bit."""
    cases = CASES[2:8] + [c for c in CASES if c.label == "long"]
    impls = CORRECT[:3] + MUTANTS[::3]
    off = _verdicts(monkeypatch, 10**12, impls, cases)
    on = _verdicts(monkeypatch, 0, impls, cases)
    assert on == off


@pytest.mark.parametrize("expose", [True, False], ids=["state exposed", "state hidden"])
def test_screen_settles_most_elements_and_still_catches_one_bad_element(monkeypatch, expose):
    from adamax_spec.reference import screens as V
    from adamax_spec.reference import speed

    kept = []
    name = "_certify" if expose else "_certify_w"
    certify = getattr(V, name)

    def spy(*args, **kwargs):
        out = certify(*args, **kwargs)
        kept.append(None if out is None else out.size)
        return out

    monkeypatch.setattr(V, name, spy)
    case = speed.case()
    traj = speed._run(case, round_hypers=True, expose_state=expose)
    good = judge(case, traj, "keras")
    assert good.ok and kept and kept[-1] is not None and kept[-1] < 64 * 50 // 10
    # one element one float32 ULP off at one late step (teacher forcing: only that comparison moves)
    w = traj.params[40][0]
    w[17] = np.nextafter(np.float32(w[17]), np.float32(np.inf), dtype=np.float32)
    bad = judge(case, traj, "keras")
    monkeypatch.setattr(V, "SCREEN_MIN", 10**12)
    ref = judge(case, traj, "keras")
    assert (bad.ok, bad.max_ratio, [c.describe() for c in bad.failures]) == \
        (ref.ok, ref.max_ratio, [c.describe() for c in ref.failures])
    assert bad.max_ratio > good.max_ratio


def test_beta_1_rounding_to_one_is_judged_not_a_crash():
    """0.9999 rounds to 1.0 in float16: ``1 - b1**t`` is 0 under that interpretation (was a
    ZeroDivisionError in the bound); the exact answer is then NaN, so a target that gives NaN fits it."""
    from adamax_spec.conformance.case import Trajectory

    case = Case([np.array(0.0)], [[np.array(-0.132080078125)]],
                {"learning_rate": 0.001, "beta_1": 0.9999, "beta_2": 0.9, "epsilon": 0.001}, "float16")
    nan = Trajectory(params=[[np.array(np.nan)]], m=[[np.array(0.0)]], u=[[np.array(0.132080078125)]])
    v = judge(case, nan, "keras")
    # "rounded to dtype": 1 - b1**t is 0.  "as passed": c*d = 1e-4 * 0.133 is below float16's
    # smallest normal, so a target dividing once by c*d may flush it to 0 (error-model.md).
    assert v.ok and v.interpretation in ("as passed", "rounded to dtype")


def test_clipping_a_scalar_parameter_is_judged_not_a_crash():
    """clipvalue then clipnorm on a 0-d parameter (found by a deep run: NumPy returns a bare number
    for a ufunc on a 0-d object array)."""
    from adamax_spec.conformance.case import Trajectory

    hyper = {"learning_rate": 0.001, "beta_1": 0.0, "beta_2": 0.9, "epsilon": 1e-07, "clipvalue": 0.1,
             "clipnorm": 0.1}
    case = Case([np.array(0.0)], [[np.array(-0.13210485875606537)]], hyper, "float32")
    g = np.float32(-0.1)  # clipped to -0.1 (the norm clip leaves it): m = g, u = |g|, lr_t = lr
    w = np.float32(0.0) - np.float32(0.001) * (g / (np.abs(g) + np.float32(1e-07)))
    right = Trajectory(params=[[np.array(w, dtype=np.float64)]], m=[[np.array(float(g))]],
                       u=[[np.array(float(abs(g)))]])
    assert judge(case, right, "keras").ok
    unclipped = Trajectory(params=[[np.array(w, dtype=np.float64)]], m=[[np.array(-0.13210485875606537)]],
                           u=[[np.array(0.13210485875606537)]])
    assert not judge(case, unclipped, "keras").ok
