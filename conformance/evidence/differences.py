"""The measured cross-framework differences page, generated from real runs.

Every cell of the page comes from running an installed implementation on a
fixed probe case and reading what it did; nothing is typed in by hand.
``python -m adamax_spec.conformance.evidence.differences PATH`` (``make differences``)
writes the page; ``tests/test_docs.py`` regenerates it and fails when
``docs/differences.md`` no longer matches what the libraries do.

Probes (all deterministic, float32 unless said otherwise):

* *variant*: :func:`identify.identify` (epsilon placement, bias correction, lazy rows);
* *hyperparameters*: one float64 dense trajectory with hyperparameters that float32
  cannot hold; the reference says which evaluation (as passed, rounded to the
  dtype, or float32 first as Keras does) the target's numbers fit;
* *sparse rows*: a gradient naming one row of a 4 x 3 table: are the other rows'
  weights untouched (lazy), moved (densified), or is the gradient refused;
* *duplicate rows*: two slices +1 and -3 for one row: ``u`` is ``|sum| = 2`` (SP-1; the
  ``keras3`` profile: the sum of ``|values|``, 4);
* *NaN*: one NaN element in a dense gradient at step 2: is it NaN in ``w``, ``m``, ``u``;
* *clipping*: which of ``clipvalue``/``clipnorm``/``global_clipnorm`` are built in;
* *agreement*: the largest difference, in float32 ULP, between every pair of
  implementations' weights after 50 identical float32 steps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from adamax_spec.reference.verdict import judge

from ..case import Case, SparseGrad, Target, Trajectory, Unsupported
from ..identify import identify
from ..targets import known_targets, versions

__all__ = ["COLUMNS", "implementations", "main", "measure", "render", "versions"]

H = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
#: the page's columns, in order: our implementation on NumPy and each peer (Keras 3 on this
#: process's backend, unnamed); registered targets are not measured here
COLUMNS = ("adamax_spec[numpy]", "tf_keras legacy Adamax", "keras 3 Adamax", "torch.optim.Adamax", "optax.adamax")


def implementations() -> list[tuple[str, Callable[[], Target]]]:
    """The implementations installed here, each with a loader (nothing imported yet), each
    loaded as ``TARGET`` alone would be (our own: NumPy, the ``keras`` profile)."""
    known = {t.name: t for t in known_targets(plugins=False)}
    return [(name, partial(known[name].make, "keras")) for name in COLUMNS if known[name].installed()]


def _dense_case(steps: int, dtype: str, hyper: dict[str, Any]) -> Case:
    rng = np.random.default_rng(20261125)
    npd = np.float64 if dtype == "float64" else np.float32
    params = [rng.standard_normal((7, 5)).astype(npd), rng.standard_normal(11).astype(npd)]
    grads = [[(rng.standard_normal(p.shape) * 10.0 ** rng.integers(-3, 2)).astype(npd) for p in params]
             for _ in range(steps)]
    return Case(params, grads, hyper, dtype, label=f"dense-{dtype}-{steps}")


def _run(target: Target, case: Case) -> Trajectory | str:
    try:
        return target.run(case)
    except Unsupported as e:
        return f"not supported ({e.capability})"
    except Exception as e:  # a peer's refusal is a measured fact too
        return f"raises {type(e).__name__}"


def _hyper_evaluation(target: Target, variant: str) -> str:
    # 0.1 + 1/3 style values: float32 cannot hold them, so each evaluation moves float64 results.
    hyper = {"learning_rate": 0.0123, "beta_1": 0.87, "beta_2": 0.993, "epsilon": 1.3e-7}
    case = _dense_case(3, "float64", hyper)
    traj = _run(target, case)
    if isinstance(traj, str):
        return traj
    if variant in ("none", "") or ("/" in variant and variant != "torch/optax"):
        return "n/a (no single variant fits)"
    v = judge(case, traj, "torch" if variant == "torch/optax" else variant)
    return v.interpretation if v.ok else f"none fits (worst {v.max_ratio:.3g} x bound)"


def _sparse_rows(target: Target) -> str:
    table = (np.arange(12, dtype=np.float32).reshape(4, 3) + 1) / 4
    warm = np.full((4, 3), 0.5, np.float32)
    sg = SparseGrad(np.array([1, 1]), np.full((2, 3), 0.25, np.float32), (4, 3))
    case = Case([table], [[warm], [sg]], dict(H), "float32", label="sparse-rows")
    traj = _run(target, case)
    if isinstance(traj, str):
        return traj
    before, after = traj.params[0][0], traj.params[1][0]
    others = [0, 2, 3]
    moved = not np.array_equal(before[others], after[others])
    return "densified: unnamed rows move" if moved else "lazy: unnamed rows untouched"


def _duplicates(target: Target) -> str:
    """Two slices for one row, +1 and -3: ``u = |1 - 3| = 2`` on the first step, or ``|1| + |-3| = 4``
    (the ``keras3`` profile's ``sum_of_abs``)."""
    table = np.ones((3, 2), np.float32)
    sg = SparseGrad(np.array([1, 1]), np.array([[1.0, 1.0], [-3.0, -3.0]], np.float32), (3, 2))
    traj = _run(target, Case([table], [[sg]], dict(H), "float32", label="duplicates"))
    if isinstance(traj, str):
        return traj
    u = traj.u[0][0][1, 0] if traj.u and traj.u[0] is not None else None
    if u is None:
        return "u hidden"
    return {2.0: "u = abs(sum) = 2", 4.0: "u = sum of abs(values) = 4"}.get(float(u), f"u = {float(u)!r}")


def _nan(target: Target) -> str:
    p = np.array([1.0, -1.0, 0.5], np.float32)
    g1 = np.array([0.1, -0.2, 0.3], np.float32)
    g2 = np.array([np.nan, 0.1, 0.1], np.float32)
    traj = _run(target, Case([p], [[g1], [g2]], dict(H), "float32", label="nan"))
    if isinstance(traj, str):
        return traj
    parts = []
    for name, seq in (("w", traj.params), ("m", traj.m), ("u", traj.u)):
        last = seq[-1] if seq else None
        if last is None:
            parts.append(f"{name} hidden")
        else:
            parts.append(f"{name} {'NaN' if np.isnan(last[0][0]) else 'number'}")
    return ", ".join(parts)


def _clipping(target: Target) -> str:
    caps = [k for k in ("clipvalue", "clipnorm", "global_clipnorm") if k in target.capabilities]
    return ", ".join(caps) if caps else "none built in"


def measure() -> dict[str, Any]:
    """Run every probe on every installed implementation."""
    rows: dict[str, dict[str, str]] = {}
    finals: dict[str, list[np.ndarray]] = {}
    agree_case = _dense_case(50, "float32", dict(H))
    for label, load in implementations():
        target = load()
        variant, _ = identify(target)
        rows[label] = {"variant (identified)": variant,
                       "hyperparameters evaluated as": _hyper_evaluation(target, variant),
                       "sparse gradient": _sparse_rows(target),
                       "duplicate sparse rows (+1, -3)": _duplicates(target),
                       "NaN in a dense gradient": _nan(target),
                       "clipping": _clipping(target)}
        traj = _run(target, agree_case)
        if not isinstance(traj, str):
            finals[label] = traj.params[-1]
    labels = list(finals)
    ulps = {(a, b): _max_ulp32(finals[a], finals[b]) for a in labels for b in labels}
    return {"rows": rows, "agreement": {"labels": labels, "ulps": ulps}}


def _max_ulp32(xs: list[np.ndarray], ys: list[np.ndarray]) -> int:
    """Largest distance in float32 steps (ULP) between corresponding elements."""
    def ordinal(a: np.ndarray) -> np.ndarray:
        i = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return int(max((np.max(np.abs(ordinal(x) - ordinal(y)), initial=0) for x, y in zip(xs, ys, strict=True)),
                   default=0))


def render(data: dict[str, Any], versions: dict[str, str]) -> str:
    rows: dict[str, dict[str, str]] = data["rows"]
    labels = list(rows)
    facts = list(next(iter(rows.values())))
    out = ["# Measured differences between Adamax implementations", "",
           "Generated by `make differences` (`python -m adamax_spec.conformance.evidence.differences`) from real runs;",
           "do not edit by hand: `tests/test_docs.py` regenerates it and fails when it is out of date.",
           "Probes are described in `conformance/evidence/differences.py`; verdicts use the 256-bit reference.", "",
           "| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for fact in facts:
        out.append(f"| {fact} | " + " | ".join(rows[lab][fact] for lab in labels) + " |")
    ag = data["agreement"]
    out += ["", "## Agreement after 50 identical float32 steps (max ULP between weights)", "",
            "| | " + " | ".join(ag["labels"]) + " |", "|---|" + "---|" * len(ag["labels"])]
    for a in ag["labels"]:
        out.append(f"| {a} | " + " | ".join(str(ag["ulps"][a, b]) for b in ag["labels"]) + " |")
    out += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "docs/differences.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(measure(), versions()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
