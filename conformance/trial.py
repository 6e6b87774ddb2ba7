"""One trial: a target run on one drawn example and checked, as every part of the suite checks it.

The engine (each example hypothesis draws), the minimizer (each smaller candidate of a failing
case) and a reproducer's :func:`~.reproducer.replay` all judge an example through
:func:`outcome`, so a reproducer fails exactly when, and with the same line as, the run did.

:func:`runner` wraps ``target.run`` with what every property shares: the per-example time limit
and the structural checks (the target raised, modified its inputs, returned the wrong number of
steps, shapes, dtype or device).  A structural fault is a :class:`Fault`; :func:`outcome` turns it
into a :class:`~.property.Finding` marked ``structural``, with the property that owns it
(``I-1`` for inputs, ``D-1`` for dtype and device; none for a raise or a wrong shape: the first
property that meets it reports it), so a run reports each root cause once (:mod:`.engine`).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from typing import Any

from .case import Case, Target, Trajectory, Unsupported
from .properties.inputs_dtype_device import same, snapshot, structure
from .properties.judging import reference_check
from .property import Finding, Property
from .timeout import TimedOut, call

__all__ = ["Fault", "case_of", "failing_element", "failing_step", "outcome", "runner", "signature"]

#: structural faults and the property that owns each (the message ends with its id)
_OWNERS = ("I-1", "D-1")


class Fault(AssertionError):
    """A structural fault of one run: ``owner`` the property that owns it (or ``None``: the first
    property that meets it), ``raised`` the target's exception, if it raised."""

    def __init__(self, message: str, owner: str | None = None, raised: BaseException | None = None) -> None:
        super().__init__(message)
        self.owner = owner
        self.raised = raised


def _owner(message: str) -> str | None:
    return next((p for p in _OWNERS if message.endswith(f"({p})")), None)


def runner(target: Target, timeout: float | None) -> Callable[[Case], Trajectory]:
    """``run(case)``: the target under the time limit, then the checks every property shares;
    a :class:`Fault` for what they find."""

    def run(case: Case) -> Trajectory:
        before = snapshot(case)
        try:
            traj = call(lambda: target.run(case), timeout)
        except (Unsupported, TimedOut):
            raise
        except Exception as e:  # the target crashed: that is a finding, not our crash
            msg = "".join(traceback.format_exception_only(e)).strip()
            raise Fault(f"target raised {msg}", raised=e) from None
        if not same(before, snapshot(case)):
            raise Fault("the target modified the case's input arrays (gradients or initial weights) (I-1)", "I-1")
        problem = structure(case, traj)
        if problem:
            raise Fault(problem, _owner(problem))
        return traj

    return run


def case_of(drawn: Any) -> Case | None:
    """The case of a drawn example (a :class:`Case`, or a tuple whose first item is one)."""
    if isinstance(drawn, Case):
        return drawn
    if isinstance(drawn, tuple) and drawn and isinstance(drawn[0], Case):
        return drawn[0]
    return None


def outcome(prop: Property, target: Target, variant: str, drawn: Any,
            run: Callable[[Case], Trajectory]) -> Finding | None:
    """Check one drawn example: ``None`` if it passes, else the :class:`Finding` (a structural
    fault included, marked ``structural``).  :class:`~.case.Unsupported` and
    :class:`~.timeout.TimedOut` propagate, as does an exception of the suite itself."""
    checker = prop.check or reference_check
    try:
        finding = checker(target, drawn, variant, run)
    except Fault as e:
        return Finding(str(e), case_of(drawn), structural=True, owner=e.owner, raised=e.raised, drawn=drawn)
    if finding is not None and finding.drawn is None:
        finding.drawn = drawn
    return finding


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def signature(message: str) -> str:
    """A finding's message with its numbers (steps, indices, values, shapes, dtype widths) blanked:
    two findings with the same signature are the same kind of failure."""
    return _NUMBER.sub("#", message)


def failing_step(message: str) -> int | None:
    """The step a finding's message names first (``step 3, ...``), if any."""
    m = re.search(r"\bstep (\d+)\b", message)
    return int(m.group(1)) if m else None


def failing_element(message: str) -> tuple[int, tuple[int, ...]] | None:
    """The parameter and index a finding's message names first (``params[1][2, 0]``), if any."""
    m = re.search(r"params\[(\d+)\]\[([0-9, ]*)\]", message)
    if not m:
        return None
    return int(m.group(1)), tuple(int(x) for x in m.group(2).replace(" ", "").split(",") if x)
