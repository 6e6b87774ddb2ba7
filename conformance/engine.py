"""Run properties against a target and collect results (the CLI and pytest plugin share this).

A property draws cases from a strategy, runs the target, and asks the
reference for a verdict (or, for a few properties, checks a rule that needs no
reference: argument validation, non-finite propagation, state invariants,
untouched inputs, dtypes).  Hypothesis shrinks a failure to a small case,
which the report prints as a reproducer.

The engine never raises for a target's misbehaviour: a target that raises,
hangs (per-example ``timeout``), returns the wrong number of steps or shapes,
changes the dtype, or modifies its inputs gets a ``fail`` with that reason; a
crash of the suite itself (e.g. in the reference) is an ``error`` naming it.

After hypothesis has shrunk a failure, :func:`.minimize.minimize` cuts it further
(steps after the first failing one, parameters, rows and columns, values; each
candidate kept only if it still fails the same way), and the reproducer replays
that case (:mod:`.reproducer`).

One root cause, one failure: in a run of several properties (:class:`Causes`), a
structural fault (wrong dtype, device or shape, inputs modified, an exception, a
hang) fails only the property that owns it (``D-1`` for dtype and device,
``I-1`` for inputs, when they are in the run; otherwise the first property that
meets it); every other property that meets the same fault is ``skipped`` with
"same root cause as ID (see there)", which does not count as a failure.  An
owner that runs later is handed the example that showed the fault first, so it
reports it.
"""

from __future__ import annotations

import hashlib
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import seed as hypothesis_seed

from .case import Target, Unsupported
from .diagnosis import diagnose
from .minimize import minimize
from .properties import PROPERTIES
from .property import Finding, Property
from .reproducer import Source, failing_inputs, reproducer, verdict_dict
from .timeout import TimedOut, call
from .trial import case_of, outcome, runner, signature

__all__ = ["SKIPPED", "Causes", "Result", "run_all", "run_property"]

#: the status of a property whose failure is a root cause another property of the run reports
SKIPPED = "skipped"


class _Failed(AssertionError):
    pass


@dataclass
class Result:
    property: str
    title: str
    status: str  # "pass" | "fail" | "not supported" | "error" | "skipped" | "xfail" (| "xpass": front ends)
    examples: int = 0
    seconds: float = 0.0
    detail: str = ""
    reproducer: str = ""
    verdict: dict[str, Any] = field(default_factory=dict)
    diagnosis: str = ""


@dataclass
class Causes:
    """The structural faults of one run of several properties, so that each root cause fails one
    property (its owner) and the others that meet it are ``skipped`` ("same root cause as ...").

    ``ids``: the properties the run checks, in order: an owner (``D-1``, ``I-1``) outside them
    cannot report its fault, so the first property that meets it does."""

    ids: tuple[str, ...]
    #: a fault's signature -> the property that reports it
    reported: dict[str, str] = field(default_factory=dict)
    #: owner id -> faults met before it ran: (signature, finding, the property that met it); the
    #: owner tries their examples first
    pending: dict[str, list[tuple[str, Finding, str]]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    def owner(self, prop_id: str, finding: Finding) -> str | None:
        """The property that reports ``finding`` of ``prop_id`` if another one does (then
        ``prop_id`` is skipped), else ``None`` (``prop_id`` reports it)."""
        if not finding.structural:
            return None
        sig = signature(finding.message)
        who = self.reported.get(sig)
        if who is None and finding.owner in self.ids and finding.owner != prop_id and finding.owner not in self.done:
            who = self.reported[sig] = finding.owner
            self.pending.setdefault(who, []).append((sig, finding, prop_id))
        if who is None:
            self.reported[sig] = prop_id
        return who if who != prop_id else None


def run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                 require: frozenset[str] = frozenset(), timeout: float | None = None,
                 rerun: str = "", source: Source | None = None, causes: Causes | None = None) -> Result:
    """Run one property; never raises for a target's misbehaviour (nor for the suite's own bugs).

    ``source``: how the target was loaded, for a reproducer that loads it again (without it the
    reproducer leaves ``TARGET`` to fill in).  ``causes``: the run's structural faults so far
    (:class:`Causes`), shared by the properties of one run; without it every failure is this
    property's own."""
    t0 = time.perf_counter()
    try:
        r = _run_property(prop, target, variant, examples=examples, seed=seed, require=require,
                          timeout=timeout, rerun=rerun, t0=t0, source=source, causes=causes)
    except Exception as e:  # an internal error must not lose the other results
        detail = "suite error (not a finding about the target): " + "".join(
            traceback.format_exception_only(e)).strip()
        r = Result(prop.id, prop.title, "error", 0, time.perf_counter() - t0, detail)
    if causes is not None:
        causes.done.add(prop.id)
    return r


def _run_property(prop: Property, target: Target, variant: str, *, examples: int, seed: int,
                  require: frozenset[str], timeout: float | None, rerun: str, t0: float,
                  source: Source | None, causes: Causes | None) -> Result:
    missing = prop.needs - target.capabilities
    pending = causes.pending.pop(prop.id, []) if causes is not None else []
    if missing and not (missing & require):
        r = Result(prop.id, prop.title, "not supported", detail=f"{target.name} lacks {', '.join(sorted(missing))}")
        return _missed(r, prop, pending, target, variant, seed, rerun, source, timeout)
    state: dict[str, Any] = {"ran": 0, "unsupported": None, "finding": None, "shrinks": None}
    failed: dict[bytes, Finding] = {}
    run = runner(target, timeout)

    def check(drawn: Any) -> None:
        if state["finding"] is not None and state["finding"].kind == "timeout":
            raise _Failed(state["finding"].message)  # a hung target: no more waiting while hypothesis shrinks
        case = case_of(drawn)
        key = hashlib.sha256(pickle.dumps(drawn)).digest()
        if key in failed:  # hypothesis replays its final (smallest) failing example
            state["finding"] = failed[key]
            raise _Failed(failed[key].message)
        if state["shrinks"] is not None:
            if state["shrinks"] >= prop.shrink:
                return  # shrink budget spent: no more target runs, the smallest failure so far stands
            state["shrinks"] += 1
        try:
            finding = outcome(prop, target, variant, drawn, run)
        except Unsupported as e:
            if e.capability in require:
                state["finding"] = Finding(f"required capability {e.capability} unsupported: {e}", case,
                                           drawn=drawn)
                raise _Failed(str(e)) from None
            state["unsupported"] = str(e)
            return
        except TimedOut as e:
            state["finding"] = Finding(str(e), case, kind="timeout", structural=True, drawn=drawn)
            raise _Failed(str(e)) from None
        except Exception as e:  # the suite's own bug: say so, keep going
            msg = "".join(traceback.format_exception_only(e)).strip()
            state["finding"] = Finding(f"suite error (not a finding about the target): {msg}", case, kind="error")
            raise _Failed(msg) from None
        state["ran"] += 1
        if finding is not None:
            state["finding"] = finding
            failed[key] = finding
            state["shrinks"] = state["shrinks"] or 0
            raise _Failed(finding.message)

    test = given(prop.strategy())(check)
    for drawn in [case_of(f.drawn) or f.case for _, f, _ in pending][::-1]:  # tried first, in the order met
        if drawn is not None:
            test = example(drawn)(test)
    test = settings(max_examples=examples, derandomize=False, database=None, deadline=None, print_blob=False,
                    suppress_health_check=list(HealthCheck))(test)
    test = hypothesis_seed(seed)(test)
    try:
        test()
        status = "pass" if state["ran"] else "not supported"
        detail = "" if state["ran"] else f"every example was unsupported: {state['unsupported']}"
    except (_Failed, AssertionError, ExceptionGroup):
        status, detail = "fail", ""
    finding: Finding | None = state["finding"]
    if status == "fail" and finding is None:
        status, detail = "error", "suite error: hypothesis reported a failure without a finding"
    r = Result(prop.id, prop.title, status, state["ran"], 0.0, detail)
    if status == "fail" and finding is not None:
        r.status = "error" if finding.kind == "error" else "fail"
        owner = causes.owner(prop.id, finding) if causes is not None and r.status == "fail" else None
        if owner is not None:
            r.status, r.detail = SKIPPED, f"same root cause as {owner} (see there): {finding.message}"
        else:
            _describe(r, prop, finding, target, variant, seed, rerun, source, timeout)
    r = _missed(r, prop, pending, target, variant, seed, rerun, source, timeout)
    r.seconds = time.perf_counter() - t0
    return r


def _describe(r: Result, prop: Property, finding: Finding, target: Target, variant: str, seed: int, rerun: str,
              source: Source | None, timeout: float | None) -> None:
    """A failure's report: the example minimized, its detail, diagnosis, verdict and reproducer."""
    if finding.kind == "fail" and finding.drawn is not None:
        run = runner(target, timeout)
        finding, _ = minimize(finding, lambda d: outcome(prop, target, variant, d, run), prop.minimize)
    inputs = failing_inputs(finding.message, finding.case)
    r.detail = finding.message + (f"\n{inputs}" if inputs else "")
    if finding.case is not None and finding.verdict is not None and finding.kind == "fail" and prop.check is None:
        try:
            traj = call(lambda: target.run(finding.case), timeout)  # type: ignore[arg-type]
            finding.diagnosis = diagnose(finding.case, traj, variant, finding.verdict,
                                         run=lambda c: call(lambda: target.run(c), timeout))
        except Exception:  # diagnosis is best effort
            finding.diagnosis = diagnose(finding.case, None, variant, finding.verdict)
    if finding.drawn is not None or finding.case is not None:
        r.reproducer = reproducer(prop.id, prop.title, finding, source, profile=variant, seed=seed, rerun=rerun)
    if finding.verdict is not None:
        r.verdict = verdict_dict(finding.verdict)
    if finding.diagnosis:
        r.diagnosis = finding.diagnosis
        r.detail += f"\ndiagnosis: {finding.diagnosis}"


def _missed(r: Result, prop: Property, pending: list[tuple[str, Finding, str]], target: Target, variant: str,
            seed: int, rerun: str, source: Source | None, timeout: float | None) -> Result:
    """The owner of faults that earlier properties met and skipped reports each one it did not
    meet itself (its examples, tried first, normally make it meet them)."""
    if not pending:
        return r
    met = signature(r.detail.splitlines()[0]) if r.status in ("fail", "error") and r.detail else None
    for sig, finding, seen_in in pending:
        if sig == met:
            continue
        if r.status != "fail":
            r.status, r.verdict, r.diagnosis = "fail", {}, ""
            _describe(r, prop, finding, target, variant, seed, rerun, source, timeout)
            r.detail += f"\n(met while checking {seen_in})"
            met = sig
        else:
            r.detail += f"\nalso, while checking {seen_in}: {finding.message}"
    return r


def run_all(target: Target, variant: str, *, examples: int = 25, seed: int = 0,
            only: list[str] | None = None, require: frozenset[str] = frozenset(),
            xfails: set[str] | None = None, timeout: float | None = None, rerun: str = "",
            source: Source | None = None,
            progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Every property in order; ``progress`` sees each result as soon as it is known.

    ``only`` and ``xfails`` hold property ids as :data:`~.properties.IDS` spells them (the front
    ends turn deprecated ids into those with :func:`~.properties.resolve`).  A structural fault
    fails one property of the run (:class:`Causes`); ``source``: see :func:`run_property`."""
    results = []
    props = [p for p in PROPERTIES if not only or p.id in only]
    causes = Causes(tuple(p.id for p in props))
    for prop in props:
        n = prop.scale(examples)
        again = f"{rerun} --only {prop.id}" if rerun else ""
        r = run_property(prop, target, variant, examples=n, seed=seed, require=require,
                         timeout=timeout, rerun=again, source=source, causes=causes)
        if xfails and prop.id in xfails and r.status == "fail":
            r.status = "xfail"
        results.append(r)
        if progress:
            progress(r)
    return results
