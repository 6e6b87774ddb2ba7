"""How long :func:`~adamax_spec.reference.verdict.judge` takes: ``python -m adamax_spec.reference.speed``.

One trajectory of 64 float32 elements x 50 steps (normal gradients, Keras defaults), made
by a plain NumPy step defined here (the reference imports nothing it judges).  Four
settings: the target rounds its hyperparameters to float32 (Keras; the first
interpretation, "as passed", fails, so two are judged) or computes ``lr_t`` from them as
passed in float64 (torch; one is judged), and exposes its state ``m``, ``u`` or hides it.  Prints the best of
``--repeat`` wall-clock timings (``time.perf_counter``) per setting, in milliseconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .verdict import judge


@dataclass
class _Case:
    params: list[np.ndarray]
    grads: list[list[np.ndarray]]
    hyper: dict[str, Any]
    dtype: str = "float32"

    @property
    def steps(self) -> int:
        return len(self.grads)


@dataclass
class _Trajectory:
    params: list[list[np.ndarray]] = field(default_factory=list)
    m: list[Any] = field(default_factory=list)
    u: list[Any] = field(default_factory=list)


def _run(case: _Case, round_hypers: bool, expose_state: bool) -> _Trajectory:
    h = case.hyper
    f = np.float32
    lr, b1, b2, eps = (h[k] for k in ("learning_rate", "beta_1", "beta_2", "epsilon"))
    w = case.params[0].astype(f)
    m, u = np.zeros_like(w), np.zeros_like(w)
    traj = _Trajectory()
    for t, (g,) in enumerate(case.grads, start=1):
        g = g.astype(f)
        m = (f(b1) * m + f(1 - b1) * g).astype(f)
        u = np.maximum(f(b2) * u, np.abs(g))
        if round_hypers:  # Keras: lr_t in float32 from float32 hyperparameters
            lr_t = f(lr) / (f(1) - f(b1) ** f(t))
        else:  # torch: lr_t in Python doubles, rounded once
            lr_t = f(lr / (1 - b1**t))
        w = (w - lr_t * (m / (u + f(eps)))).astype(f)
        traj.params.append([w.astype(np.float64)])
        traj.m.append([m.astype(np.float64)] if expose_state else None)
        traj.u.append([u.astype(np.float64)] if expose_state else None)
    return traj


def case(n: int = 64, steps: int = 50, seed: int = 0) -> _Case:
    rng = np.random.default_rng(seed)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    return _Case([f32(rng.standard_normal(n))], [[f32(rng.standard_normal(n))] for _ in range(steps)],
                 {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7})


def measure(repeat: int = 7, n: int = 64, steps: int = 50) -> dict[str, float]:
    """Best-of-``repeat`` milliseconds per setting; each verdict must be a pass."""
    c = case(n, steps)
    out = {}
    for round_hypers in (True, False):
        for expose in (True, False):
            traj = _run(c, round_hypers, expose)
            v = judge(c, traj, "keras")
            assert v.ok, v.failures[0].describe()
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                judge(c, traj, "keras")
                ts.append(time.perf_counter() - t0)
            name = (f"hyperparameters {'float32' if round_hypers else 'as passed'}, "
                    f"state {'exposed' if expose else 'hidden'} ({v.interpretation!r} fits)")
            out[name] = 1e3 * min(ts)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--elements", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args(argv)
    for name, ms in measure(a.repeat, a.elements, a.steps).items():
        print(f"{ms:8.1f} ms  {a.elements} x {a.steps}, {name}")


if __name__ == "__main__":
    main()
