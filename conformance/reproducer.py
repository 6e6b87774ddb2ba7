"""What a report keeps of a failure: a self-contained reproducer script, and the verdict as a dict.

A reproducer is data and one call: the failing example (minimized by the engine, :mod:`.minimize`)
written out as Python, then :func:`replay`, which loads the target as the run did (the same
``TARGET``, ``--backend``, ``--profile`` and ``--option`` values: a :class:`Source`), checks the
example with the same code the run used (:func:`.trial.outcome`), prints the same failure line
and returns the exit status: 1 while the target still fails, 0 once it passes, 2 when the
example cannot be checked (the target does not load, or no longer supports it).  A target that
raises shows its traceback and the step it raised at.

Values are written in the shortest form that rounds back to the same value in the case's dtype
(:func:`replay` rounds every weight and gradient to the dtype, as the suite's own cases are), and
a run of identical steps as ``[step] * n``: a 2,049-step T-1 case stays a few lines.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adamax_spec.reference.formats import round_to
from adamax_spec.reference.verdict import Verdict

from .case import Case, SparseGrad, Unsupported
from .property import Finding
from .timeout import TimedOut

__all__ = ["Source", "failing_inputs", "replay", "reproducer", "verdict_dict"]


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {
        "ok": v.ok, "variant": v.variant, "interpretation": v.interpretation,
        "compared": v.compared, "max_ratio": v.max_ratio,
        "failures": [c.__dict__ for c in v.failures],
    }


@dataclass(frozen=True)
class Source:
    """How the run loaded its target (what a reproducer loads again): ``TARGET``, ``--profile``,
    ``--backend``, the ``--option`` values and the per-example time limit."""

    target: str
    profile: str
    backend: str = "numpy"
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None


# -- writing ----------------------------------------------------------------------------------------


def _shortest(v: float, dtype: str) -> str:
    """The shortest decimal that rounds to ``v`` in ``dtype`` (``v`` is a value of it)."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0.0" if math.copysign(1.0, v) < 0 else "0.0"
    for p in range(1, 18):
        s = f"{v:.{p}g}"
        if float(round_to(float(s), dtype)) == v:
            return s if any(ch in s for ch in ".en") else s + ".0"
    return repr(v)


def _array(a: Any, dtype: str | None) -> str:
    """``array(...)`` of ``a``: floats in the shortest form for ``dtype`` (``None``: integers)."""
    x = np.asarray(a)
    if x.size == 0:
        return f"array([]).reshape({x.shape!r})"

    def item(v: Any) -> str:
        return str(int(v)) if dtype is None else _shortest(float(v), dtype)

    def nested(y: np.ndarray) -> str:
        if y.ndim == 0:
            return item(y)
        return "[" + ", ".join(nested(z) for z in y) + "]"

    return f"array({nested(x)})"


def _literal(obj: Any, dtype: str) -> str:
    """Python source for ``obj`` (cases, arrays, gradients, containers, numbers, text)."""
    if isinstance(obj, Case):
        return _case(obj)
    if isinstance(obj, SparseGrad):
        return (f"SparseGrad({_array(obj.indices, None)}, {_array(obj.values, dtype)}, "
                f"{tuple(int(n) for n in obj.dense_shape)!r})")
    if isinstance(obj, np.ndarray):
        return _array(obj, dtype)
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return repr(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return repr(v) if math.isfinite(v) else ("nan" if v != v else "inf" if v > 0 else "-inf")
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{_literal(k, dtype)}: {_literal(v, dtype)}" for k, v in obj.items()) + "}"
    if isinstance(obj, tuple):
        inner = ", ".join(_literal(x, dtype) for x in obj)
        return f"({inner},)" if len(obj) == 1 else f"({inner})"
    if isinstance(obj, list):
        return "[" + ", ".join(_literal(x, dtype) for x in obj) + "]"
    raise TypeError(f"a reproducer cannot write {type(obj).__name__}")


def _steps(grads: list[list[Any]], dtype: str) -> str:
    """The gradient list, runs of identical steps as ``[step] * n``."""
    rows = ["[" + ", ".join(_literal(g, dtype) for g in step) + "]" for step in grads]
    runs: list[tuple[str, int]] = []
    for r in rows:
        if runs and runs[-1][0] == r:
            runs[-1] = (r, runs[-1][1] + 1)
        else:
            runs.append((r, 1))
    parts: list[str] = []
    singles: list[str] = []
    for r, n in runs:
        if n > 2:
            if singles:
                parts.append("[" + ",\n           ".join(singles) + "]")
                singles = []
            parts.append(f"[{r}] * {n}")
        else:
            singles += [r] * n
    if singles:
        parts.append("[" + ",\n           ".join(singles) + "]")
    return "\n        + ".join(parts) if parts else "[]"


#: the hyperparameters in the order a reader expects them (others follow as drawn)
_HYPER_ORDER = ("learning_rate", "beta_1", "beta_2", "epsilon")


def _ordered(hyper: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: hyper[k] for k in _HYPER_ORDER if k in hyper}, **hyper}


def _case(c: Case) -> str:
    lines = ["Case(",
             f"    params=[{', '.join(_array(p, c.dtype) for p in c.params)}],",
             f"    grads={_steps(c.grads, c.dtype)},",
             f"    hyper={_literal(_ordered(c.hyper), c.dtype)},",
             f"    dtype={c.dtype!r},"]
    if c.checkpoint_at is not None:
        lines.append(f"    checkpoint_at={c.checkpoint_at!r},")
    if c.group_hyper is not None:
        lines.append(f"    group_hyper={_literal(c.group_hyper, c.dtype)},")
    lines.append(")")
    return "\n".join(lines)


def _comment(text: str) -> list[str]:
    return ["# " + ln if ln else "#" for ln in text.splitlines()]


def reproducer(prop_id: str, title: str, finding: Finding, source: Source | None, *, profile: str,
               seed: int | None = None, rerun: str = "") -> str:
    """The reproducer script of ``finding`` (its ``drawn`` example) for property ``prop_id`` under
    ``profile``: it replays the example against the target ``source`` names (``None``: a
    placeholder to fill)."""
    drawn = finding.drawn if finding.drawn is not None else finding.case
    case = drawn if isinstance(drawn, Case) else drawn[0] if isinstance(drawn, tuple) and drawn and \
        isinstance(drawn[0], Case) else None
    dtype = case.dtype if case is not None else "float64"
    who = source.target if source is not None else "<TARGET>"
    head = [f"# Reproducer of {prop_id} ({title})",
            f"# for {who}, profile {profile}.",
            "# Run it where the run ran (TARGET is imported from there): python this_file.py",
            "# It prints the failure and exits 1 while the target still fails, 0 once it passes."]
    head += _comment(f"failure: {finding.message}")
    inputs = failing_inputs(finding.message, finding.case)
    if inputs:
        head += _comment(inputs)
    if finding.verdict is not None and len(finding.verdict.failures) > 1:
        head.append("# more comparisons (error in bound units and ULP):")
        head += [f"#   {c.describe()}" for c in finding.verdict.failures[1:3]]
    if finding.diagnosis:
        head += _comment(f"diagnosis: {finding.diagnosis}")
    if seed is not None:
        head.append(f"# hypothesis seed {seed}" + (f"; the whole run again: {rerun}" if rerun else ""))
    body = _literal(drawn, dtype)
    names = ["array"] + [n for n in ("inf", "nan") if _uses(body, n)]
    imports = [f"from numpy import {', '.join(names)}", ""]
    ours = ["Case"] if case is not None else []
    if "SparseGrad(" in body:
        ours.append("SparseGrad")
    if ours:
        imports.append(f"from adamax_spec.conformance.case import {', '.join(ours)}")
    imports.append("from adamax_spec.conformance.reproducer import replay")
    extra = [f"profile={profile!r}"]
    if source is None:
        target_line = ["TARGET = None  # the module:attr (or registered name) of the target: fill it in"]
        target = "TARGET"
    else:
        target_line = []
        target = repr(source.target)
        if source.backend != "numpy":
            extra.append(f"backend={source.backend!r}")
        if source.options:
            extra.append(f"options={_literal(dict(source.options), dtype)}")
    if finding.kind == "timeout":
        extra.append(f"timeout={(source.timeout if source is not None else None) or 120.0!r}")
    kwargs = ", " + ", ".join(extra)
    lines = [*head, "", *imports, "", *target_line, f"drawn = {body}", "",
             f"raise SystemExit(replay({target}, {prop_id!r}, drawn{kwargs}))"]
    return "\n".join(lines) + "\n"


def _uses(text: str, name: str) -> bool:
    import re

    return re.search(rf"(?<![\w.'\"]){name}(?![\w'\"])", text) is not None


def failing_inputs(message: str, case: Case | None) -> str:
    """The inputs of the element a finding names, at the step it names (its gradient, and its
    starting weight at step 1): ``inputs of step 3, params[0][1]: g = 0.5``; empty if the message
    names no element of ``case``."""
    from .trial import failing_element, failing_step

    k, at = failing_step(message), failing_element(message)
    if case is None or k is None or at is None or not 0 < k <= case.steps:
        return ""
    i, idx = at
    if i >= len(case.params) or len(idx) != np.ndim(case.params[i]) or \
            any(not 0 <= j < n for j, n in zip(idx, np.shape(case.params[i]), strict=True)):
        return ""
    g = case.grads[k - 1][i]
    if g is None:
        what = "no gradient"
    elif isinstance(g, SparseGrad):
        rows = np.asarray(g.indices) == idx[0]
        vals = [_shortest(float(v), case.dtype) for v in np.asarray(g.values)[rows][(slice(None), *idx[1:])]]
        what = f"g = {' + '.join(vals)} (the sparse entries naming row {idx[0]})" if vals else \
            f"no sparse entry names row {idx[0]}"
    else:
        what = f"g = {_shortest(float(np.asarray(g)[idx]), case.dtype)}"
    start = f", w = {_shortest(float(np.asarray(case.params[i])[idx]), case.dtype)} before it" if k == 1 else ""
    return f"inputs of step {k}, params[{i}]{list(idx)}: {what}{start}"


# -- running ----------------------------------------------------------------------------------------


def _rounded(drawn: Any) -> Any:
    """The example with every weight and gradient rounded to its case's dtype (and the indices
    of sparse gradients as int64), each array a new one: what the suite's strategies draw."""
    if isinstance(drawn, tuple):
        return tuple(_rounded(x) for x in drawn)
    if not isinstance(drawn, Case):
        return drawn
    dt = drawn.dtype

    def values(a: Any) -> np.ndarray:
        return round_to(np.asarray(a, dtype=np.float64), dt)

    def grad(g: Any) -> Any:
        if g is None:
            return None
        if isinstance(g, SparseGrad):
            idx = np.asarray(g.indices, dtype=np.int64).reshape(-1)
            shape = tuple(int(n) for n in g.dense_shape)
            return SparseGrad(idx, values(g.values).reshape((idx.size, *shape[1:])), shape)
        return values(g)

    return Case([values(p) for p in drawn.params], [[grad(g) for g in step] for step in drawn.grads],
                dict(drawn.hyper), dt, drawn.checkpoint_at, drawn.label, drawn.group_hyper)


def replay(target: str | None, property_id: str, drawn: Any, *, profile: str, backend: str = "numpy",
           options: Mapping[str, Any] | None = None, timeout: float | None = None) -> int:
    """Check ``drawn`` once against ``target`` as the run that wrote the reproducer did; print the
    outcome (``PASS``/``FAIL``/``NOT SUPPORTED`` and the failure line; a target that raised: its
    traceback and the step); return the exit status (1 fails, 0 passes, 2 cannot be checked)."""
    from .identify import failing_step
    from .properties import by_id
    from .targets import load_target
    from .trial import case_of, outcome, runner

    prop = by_id(property_id)
    if not target:
        print("replay: no TARGET: set it to the module:attr of the target", flush=True)
        return 2
    if os.getcwd() not in sys.path and "" not in sys.path:  # as the CLI imports TARGET: from here first
        sys.path.insert(0, os.getcwd())
    try:
        tgt = load_target(target, backend, profile, options=dict(options) if options else None)
    except Exception as e:
        print(f"replay: cannot load {target!r}: {type(e).__name__}: {e} (run the reproducer where the run "
              "ran: TARGET is imported from the current directory first, as the CLI does)", flush=True)
        return 2
    drawn = _rounded(drawn)
    case = case_of(drawn)
    try:
        finding = outcome(prop, tgt, profile, drawn, runner(tgt, timeout))
    except Unsupported as e:
        print(f"NOT SUPPORTED {prop.id} ({prop.title}): {tgt.name}: {e}", flush=True)
        return 2
    except TimedOut as e:
        finding = Finding(str(e), case, kind="timeout")
    if finding is None:
        print(f"PASS {prop.id} ({prop.title}): {tgt.name} passes this case now", flush=True)
        return 0
    if finding.raised is not None:
        print("".join(traceback.format_exception(finding.raised)).rstrip(), flush=True)
        if case is not None:
            k = failing_step(tgt, case)
            print(f"the target raised at step {k} of {case.steps}" if k else
                  "the target raised on the whole case only", flush=True)
    print(f"FAIL {prop.id} ({prop.title}): {finding.message}", flush=True)
    inputs = failing_inputs(finding.message, finding.case)
    if inputs:
        print(inputs, flush=True)
    return 1
