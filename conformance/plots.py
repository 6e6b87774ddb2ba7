"""PNG plots for the reports: error against step on a representative trajectory.

One dense float32 trajectory (64 elements, 100 steps, gradients spanning five decades, some of
the order of epsilon) is judged under a profile; the largest error of each step is plotted in
units of the error bound (``docs/error-model.md``; above 1 fails) and in float32 ULP.

* :func:`draw_error_plots` (``make report``): every installed implementation in one figure, under
  its own profile and under ``keras`` (where torch and optax show epsilon placement).
* One target (the CLI): :func:`error_series` measures the trajectory's errors once (the caller
  keeps them in the run's ``meta`` as ``"errors"``, so every report format carries the same
  numbers); :func:`target_png` draws them, with each failing property's worst comparison, from
  the same result records the reports use; :func:`write_target_plots` writes that PNG.

Both panels use a log scale that a few huge values cannot stretch (:func:`log_scale`): one
spike of 1e31 from a non-conforming implementation would otherwise squeeze every other line
into the bottom of the panel.  Points above the scale are drawn as triangles on the top edge,
and the panel says how many there are and how large the largest is.

matplotlib is imported only when a figure is drawn (Agg canvas, no pyplot state).
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adamax_spec.reference.verdict import judge

from .case import Case, Target, Unsupported
from .targets import native_profile, stem

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["RATIO_FLOOR", "ULP_CAPTION", "ULP_FLOOR", "Line", "LogScale", "Marker", "draw_error_plots",
           "error_figure", "error_series", "log_scale", "representative_case", "step_errors",
           "target_png", "write_target_plots"]

#: what the ULP panel says under it: why a conforming implementation can show many ULP
ULP_CAPTION = (
    "Many ULP need not mean a bug. ULP measure the error relative to the result itself: where a new "
    "weight w' = w - delta is the difference of near-equal terms, w' is small next to w and delta, and "
    "the rounding error of delta that the bound allows (E_delta + e|w'|, docs/error-model.md) is many ULP "
    "of w'. The criterion is the bound (left panel: above 1 fails), not ULP.")
#: values at or below these (exact results) are drawn on the bottom edge of their panel
RATIO_FLOOR, ULP_FLOOR = 1e-6, 1e-3
#: how many decades above its typical values (or the bound) a panel's scale reaches
RATIO_DECADES, ULP_DECADES = 3, 4
_REPRESENTATIVE = "representative trajectory: 3 float32 tensors (64 elements), 100 steps, gradients over five decades"


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


def error_series(target: Target, profile: str) -> dict[str, Any] | None:
    """The representative trajectory's per-step errors for ``target`` judged under ``profile``, as
    a JSON-ready record for a run's ``meta["errors"]`` (``None`` if the target cannot run it).
    A target that raises raises here: the caller decides what a broken target costs."""
    got = step_errors(target, representative_case(), profile)
    if got is None:
        return None
    return {"label": target.name, "profile": profile, "case": _REPRESENTATIVE,
            "ratio": [float(x) for x in got[0]], "ulp": [float(x) for x in got[1]]}


# -- scales -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogScale:
    """Limits of a log axis; values above :attr:`top` (and NaN, inf) are off scale."""

    bottom: float
    top: float

    def place(self, values: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
        """``(values moved into [bottom, top], mask of the off-scale ones)``."""
        y = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
        off = ~(y <= self.top)  # NaN compares false: off scale too
        shown = np.clip(np.where(np.isnan(y), self.top, y), self.bottom, self.top)
        return shown, off


def log_scale(values: Iterable[Iterable[float]], *, anchor: float, decades: int, floor: float) -> LogScale:
    """A log scale for ``values`` (one array per line) that a few huge values cannot stretch.

    Values more than ``decades`` decades above the larger of ``anchor`` (the bound: 1; one ULP)
    and the 80th percentile of the values are off scale: a whole implementation a little above
    the rest stays on scale, a spike of a few points does not move it.  The top is the decade
    above the largest value on scale (and above ``anchor``); the bottom is the decade below the
    smallest value above ``floor`` (values at or below it are exact and drawn on the bottom edge)."""
    flat = [np.asarray(list(v) if not isinstance(v, np.ndarray) else v, dtype=np.float64).ravel()
            for v in values]
    v = np.concatenate(flat) if flat else np.zeros(0)
    v = v[np.isfinite(v) & (v > floor)]
    if v.size == 0:
        return LogScale(floor, anchor * 10.0)
    typical = max(anchor, float(np.percentile(v, 80)))
    cap = 10.0 ** (math.ceil(math.log10(typical)) + decades)
    on_scale = float(v[v <= cap].max(initial=anchor))
    top = min(cap, 10.0 ** (math.floor(math.log10(max(on_scale, anchor))) + 1))
    bottom = min(max(floor, 10.0 ** math.floor(math.log10(float(v.min())))), anchor / 10.0)
    return LogScale(bottom, top)


# -- drawing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One implementation's per-step errors: largest error / bound and largest ULP of each step."""

    label: str
    ratio: Sequence[float] | np.ndarray
    ulp: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Marker:
    """One failing comparison (a property's worst), drawn as a point at its step."""

    label: str
    step: int
    ratio: float
    ulp: float


def _off_note(ax: Axes, scale: LogScale, off: list[float], unit: str) -> None:
    if not off:
        return
    finite = [x for x in off if math.isfinite(x)]
    largest = f"largest {max(finite):.3g}{unit}" if finite else ""
    special = len(off) - len(finite)
    parts = [p for p in (largest, f"{special} not finite" if special else "") if p]
    ax.text(0.0, 1.01, f"{len(off)} point{'s' if len(off) != 1 else ''} off scale "
            f"(above {scale.top:.0e}{unit}; {', '.join(parts)}): drawn as \u25b2 on the top edge",
            transform=ax.transAxes, va="bottom", ha="left", fontsize=7,
            bbox={"boxstyle": "round", "fc": "#fff3cd", "ec": "#8a6d00", "lw": 0.5})


def _panel(ax: Axes, lines: Sequence[Line], markers: Sequence[Marker], which: str) -> LogScale:
    ratio = which == "ratio"
    anchor, decades, floor = (1.0, RATIO_DECADES, RATIO_FLOOR) if ratio else (1.0, ULP_DECADES, ULP_FLOOR)
    series = [ln.ratio if ratio else ln.ulp for ln in lines]
    scale = log_scale(series, anchor=anchor, decades=decades, floor=floor)
    off: list[float] = []
    for ln, values in zip(lines, series, strict=True):
        y = np.asarray(values, dtype=np.float64)
        shown, out = scale.place(y)
        steps = np.arange(1, len(y) + 1)
        (drawn,) = ax.plot(steps, shown, lw=1.2, label=ln.label)
        if out.any():
            ax.plot(steps[out], shown[out], "^", color=drawn.get_color(), ms=6, clip_on=False)
            off += [float(x) for x in y[out]]
    for mk in markers:
        y = np.asarray([mk.ratio if ratio else mk.ulp], dtype=np.float64)
        shown, out = scale.place(y)
        ax.plot([mk.step], shown, "^" if out[0] else "X", ms=8, clip_on=False, ls="none",
                label=f"{mk.label} (its own case)")
        off += [float(x) for x in y[out]]
    ax.set_yscale("log")
    ax.set_ylim(scale.bottom, scale.top)
    if ratio and scale.bottom < 1.0 < scale.top:
        ax.axhline(1.0, color="k", ls="--", lw=1)
    _off_note(ax, scale, off, " x bound" if ratio else " ULP")
    return scale


def error_figure(lines: Sequence[Line], title: str, markers: Sequence[Marker] = ()) -> Figure:
    """Two panels, error / bound and ULP against step, on scales a spike cannot stretch; the ULP
    panel carries :data:`ULP_CAPTION`.  A matplotlib ``Figure`` on an Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6.5))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    _panel(ax1, lines, markers, "ratio")
    _panel(ax2, lines, markers, "ulp")
    ax1.set(xlabel="step", ylabel="max |error| / bound  (> 1 fails)")
    ax2.set(xlabel="step", ylabel="max |error| in float32 ULP")
    ax1.set_title(title, pad=18)
    ax2.set_title("same, in ULP (see the note below)", pad=18)
    fig.tight_layout(rect=(0, 0.25, 1, 1))
    if lines or markers:
        ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2, frameon=False)
    fig.text(0.54, 0.02, textwrap.fill(ULP_CAPTION, 95), fontsize=7.5, ha="left", va="bottom")
    return fig


def _png(fig: Figure) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def draw_error_plots(report_dir: Path, targets: Sequence[tuple[str, Callable[[str], Target]]]) -> list[str]:
    """Write the matrix's PNGs into ``report_dir``; return their file names."""
    case = representative_case()
    names = []
    for title, fname, pick in (("each implementation under its own profile", "errors-own-profile.png",
                                native_profile),
                               ("each implementation under the keras profile", "errors-keras-profile.png",
                                lambda _label: "keras")):
        lines = []
        for label, make in targets:
            profile = pick(label)
            try:
                got = step_errors(make(profile), case, profile)
            except Exception as e:  # a broken peer must not cost the report its plots
                print(f"(plot: {label} under {profile} failed: {type(e).__name__}: {e})")
                continue
            if got is not None:
                lines.append(Line(f"{label} [{profile}]", got[0], got[1]))
        fig = error_figure(lines, title)
        fig.savefig(report_dir / fname, dpi=90)
        names.append(fname)
    return names


# -- one target ---------------------------------------------------------------------------------


def _markers(results: Sequence[Any]) -> list[Marker]:
    """Each failing property's worst comparison, from its result record's verdict."""
    out = []
    for r in results:
        failures = (getattr(r, "verdict", None) or {}).get("failures") or []
        if r.status != "fail" or not failures:
            continue
        worst = max(failures, key=lambda c: float(c.get("ratio", 0.0)))
        out.append(Marker(f"{r.property}: worst failure", int(worst.get("step", 0)),
                          float(worst.get("ratio", math.inf)), float(worst.get("ulps", math.inf))))
    return out


_PNG_CACHE: dict[str, bytes] = {}


def target_png(results: Sequence[Any], meta: dict[str, Any]) -> bytes | None:
    """The PNG of one target's run: the representative trajectory's errors (``meta["errors"]``,
    see :func:`error_series`) and each failing property's worst comparison (from ``results``);
    ``None`` when there is neither.  Raises ``ImportError`` without matplotlib."""
    series = meta.get("errors")
    lines = [Line(f"{series.get('label', meta.get('target', ''))} [{series.get('profile', '')}]",
                  series["ratio"], series["ulp"])] if series else []
    markers = _markers(results)
    if not lines and not markers:
        return None
    title = f"{meta.get('target', '')} under {meta.get('profile', '')}"
    key = json.dumps([title, [[ln.label, [float(x) for x in ln.ratio], [float(x) for x in ln.ulp]] for ln in lines],
                      [m.__dict__ for m in markers]])
    if key not in _PNG_CACHE:  # the CLI rewrites its reports after every property
        if len(_PNG_CACHE) > 8:
            _PNG_CACHE.clear()
        _PNG_CACHE[key] = _png(error_figure(lines, title, markers))
    return _PNG_CACHE[key]


def write_target_plots(results: Sequence[Any], meta: dict[str, Any], directory: str | Path) -> list[Path]:
    """Write one target's error plot into ``directory`` (created if missing) as
    ``<target>-<profile>-errors.png``; return the paths written (none when :func:`target_png`
    has nothing to draw).  Raises ``ImportError`` without matplotlib."""
    png = target_png(results, meta)
    if png is None:
        return []
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stem(str(meta.get('target', 'target')), str(meta.get('profile', '')))}-errors.png"
    path.write_bytes(png)
    return [path]
