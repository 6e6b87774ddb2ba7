"""Expected failures: the xfails file, and what a result of an xfailed property reports.

The file lists property ids, one a line; ``#`` starts a comment, blank lines are ignored
(:func:`parse`).  An xfailed property that fails reports ``xfail``; one that passes reports
``xpass``, which tells the user to take it off the list, and with ``--strict-xfails`` fails the
run (:func:`classify`, the one rule the CLI and the pytest plugin both apply).  An error of the
suite itself, or a property the target does not support, is never turned into an xfail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["XFAIL", "XPASS", "Outcome", "classify", "parse", "tally"]

XFAIL, XPASS = "xfail", "xpass"


def parse(text: str) -> list[str]:
    """The property ids of an xfails file's text, in order (comments and blank lines dropped)."""
    return [ln for ln in (line.split("#", 1)[0].strip() for line in text.splitlines()) if ln]


@dataclass(frozen=True)
class Outcome:
    """What a result reports, and whether it fails the run."""

    #: ``pass``, ``fail``, ``error``, ``not supported``, ``xfail`` or ``xpass``
    status: str
    #: the run fails (exit 1; in pytest, the item fails)
    fails: bool
    #: why, for ``xfail`` / ``xpass`` (empty otherwise)
    note: str = ""


def fails_run(status: str, *, strict: bool = False) -> bool:
    """Whether a result of this (already classified) status fails the run: ``fail`` and
    ``error`` always, ``xpass`` under ``--strict-xfails``.  The CLI's exit code and verdict, and
    every report format, read it from here."""
    return status in ("fail", "error") or (strict and status == XPASS)


def classify(prop: str, status: str, xfails: Iterable[str], *, strict: bool = False) -> Outcome:
    """The outcome of property ``prop`` whose check ended in ``status``, given the xfailed ids.

    A failing xfailed property is ``xfail`` (does not fail the run); a passing one is ``xpass``
    (fails the run only if ``strict``).  ``error`` (the suite's own bug) and ``not supported``
    stay what they are."""
    listed = prop in set(xfails)
    if listed and status == "fail":
        return Outcome(XFAIL, False, "expected to fail (listed in the xfails file)")
    if listed and status == "pass":
        note = "listed in the xfails file but passes: take it off the list"
        return Outcome(XPASS, fails_run(XPASS, strict=strict),
                       note + (" (strict xfails: this fails the run)" if strict else ""))
    return Outcome(status, fails_run(status))


def tally(statuses: Iterable[str]) -> dict[str, int]:
    """Counts per status, for a summary line: ``fail`` includes ``error``."""
    counts = {"pass": 0, "fail": 0, XFAIL: 0, XPASS: 0, "not supported": 0}
    for s in statuses:
        key = "fail" if s == "error" else s
        counts[key] = counts.get(key, 0) + 1
    return counts
