"""PNG plots for the report: error against step on representative trajectories.

For each installed implementation, one dense float32 trajectory (64 elements,
100 steps, gradients spanning five decades, some of the order of epsilon) is
judged under a profile; the largest error of each step is plotted in units of
the error bound (``docs/error-model.md``; above 1 fails) and in float32 ULP.
Two figures: every implementation under its own profile, and every
implementation under ``keras`` (where torch and optax show epsilon placement).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from adamax_spec.reference.verdict import judge

from .case import Case, Target, Unsupported
from .targets import native_profile

__all__ = ["draw_error_plots", "representative_case", "step_errors"]

def representative_case(steps: int = 100) -> Case:
    rng = np.random.default_rng(7)
    params = [rng.standard_normal(s).astype(np.float32) for s in ((6, 8), (13,), (3,))]
    scale = [np.float32(1.0), np.float32(1e-3), np.float32(1e-7)]  # the last is of the order of epsilon
    grads = [[(rng.standard_normal(p.shape) * sc).astype(np.float32) for p, sc in zip(params, scale, strict=True)]
             for _ in range(steps)]
    hyper = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    return Case(params, grads, hyper, "float32", label="representative")


def step_errors(target: Target, case: Case, profile: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Per step: the largest error in bound units and in ULP (``None`` if the target cannot run it)."""
    try:
        traj = target.run(case)
    except Unsupported:
        return None
    v = judge(case, traj, profile, per_step=True)
    ratios = np.array([r for r, _ in v.per_step])
    ulps = np.array([u for _, u in v.per_step])
    return ratios, ulps


def draw_error_plots(report_dir: Path, targets: Sequence[tuple[str, Callable[[str], Target]]]) -> list[str]:
    """Write the PNGs into ``report_dir``; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = representative_case()
    names = []
    for title, fname, pick in (("each implementation under its own profile", "errors-own-profile.png",
                                native_profile),
                               ("each implementation under the keras profile", "errors-keras-profile.png",
                                lambda _label: "keras")):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for label, make in targets:
            profile = pick(label)
            try:
                got = step_errors(make(profile), case, profile)
            except Exception as e:  # a broken peer must not cost the report its plots
                print(f"(plot: {label} under {profile} failed: {type(e).__name__}: {e})")
                continue
            if got is None:
                continue
            steps = np.arange(1, len(got[0]) + 1)
            ax1.semilogy(steps, np.maximum(got[0], 1e-6), label=f"{label} [{profile}]")
            ax2.semilogy(steps, np.maximum(got[1], 1e-3), label=f"{label} [{profile}]")
        ax1.axhline(1.0, color="k", ls="--", lw=1)
        ax1.set(xlabel="step", ylabel="max |error| / bound  (> 1 fails)", title=title)
        ax2.set(xlabel="step", ylabel="max |error| in float32 ULP", title="same, in ULP")
        ax1.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(report_dir / fname, dpi=90)
        plt.close(fig)
        names.append(fname)
    return names
