"""What a report keeps of a failure: a copy-pasteable reproducer script, and the verdict as a dict."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adamax_spec.reference.verdict import Verdict

from .case import Case, SparseGrad

__all__ = ["reproducer", "verdict_dict"]


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
