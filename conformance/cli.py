"""``adamax-conformance``: check an Adamax implementation against a profile; gate CI on it.

Exit codes: 0 conforms, 1 does not, 2 the target could not be loaded or the
arguments are wrong (one-line reason on stderr).  With ``--xfails FILE`` a
listed property that fails is ``XFAIL`` (the run still conforms); one that
passes is ``XPASS``, reported, and exit 1 with ``--strict-xfails``; an id the
suite does not know is exit 2.  ``--identify`` exits 0 when a known variant (or
an ambiguous set of them) fits, 1 when none does (``variant: none``), 2 as above.
The CLI imports and runs the target's code, as any test runner does: only point
it at code you would run.

A target that raises, hangs (``--timeout`` seconds per example), returns the
wrong shapes or modifies its inputs gets a ``FAIL`` saying so; the run goes on,
and the reports are rewritten after every property, so an interrupted run keeps
the results of the properties already checked.

The run options are one table (``conformance/options.py``) that the pytest
plugin (``--adamax-NAME``) is built from as well.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from pathlib import Path
from typing import Any

from .options import CLI_PREFIX, OPTIONS, OptionError, command_line, load, settings, source, write_outputs
from .xfails import XFAIL, XPASS, classify, tally

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def version() -> str:
    """``adamax-conformance VERSION (report schema ...)``: the installed package's version."""
    try:
        v = importlib.metadata.version("adamax-spec")
    except importlib.metadata.PackageNotFoundError:
        from adamax_spec import __version__ as v
    from .report import SCHEMA

    return f"adamax-conformance {v} (report schema {SCHEMA}; Python {sys.version.split()[0]})"


class _Version(argparse.Action):
    """``--version``, computed only when asked for (it imports the report module)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version())
        parser.exit()


def parser() -> argparse.ArgumentParser:
    """The CLI's parser: the run options of :data:`~.options.OPTIONS`, then the CLI's own modes."""
    ap = argparse.ArgumentParser(prog="adamax-conformance", description=__doc__.split("\n")[0].replace("``", ""))
    for o in OPTIONS:
        if o.positional:
            ap.add_argument(o.dest, nargs="?", **o.kwargs())
        else:
            ap.add_argument(o.spelled(CLI_PREFIX), dest=o.dest, **o.kwargs())
    ap.add_argument("--identify", action="store_true",
                    help="tell which known variant TARGET is; exit 1 if none fits (last line: 'variant: none')")
    ap.add_argument("--matrix", action="store_true",
                    help="every installed implementation x every profile, into --report-dir")
    ap.add_argument("--report-dir", default="reports", metavar="DIR",
                    help="where --matrix writes its reports (default: reports)")
    ap.add_argument("--version", action=_Version, help="print the version and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse printed its one-line reason; exit 2 for errors, 0 for --help
        return int(e.code or 0)
    try:
        s = settings(vars(args), CLI_PREFIX)
    except OptionError as e:
        return _usage(str(e))
    if args.matrix:
        from .matrix import run_matrix

        return run_matrix(Path(args.report_dir), examples=s.examples, seed=s.seed)
    if not s.target:
        return _usage("TARGET is required (or --matrix)")
    try:
        target = load(s)
    except OptionError as e:
        return _usage(str(e))
    if args.identify:
        from .identify import identify

        name, lines = identify(target)
        print("\n".join(lines))
        print(f"variant: {name}")
        return EXIT_FAIL if name == "none" else EXIT_OK
    from .engine import run_all

    t0 = time.perf_counter()
    print(f"adamax-conformance: {target.name} against profile {s.profile!r}, "
          f"{s.examples} examples per property, seed {s.seed}", flush=True)
    rerun = f"adamax-conformance {s.target} {command_line(s, CLI_PREFIX)}"
    results: list[Any] = []
    failing: list[Any] = []

    def progress(r: Any) -> None:
        outcome = classify(r.property, r.status, s.xfails, strict=s.strict_xfails)
        r.status = outcome.status
        if outcome.status == XPASS:
            r.detail = outcome.note
        results.append(r)
        if outcome.fails:
            failing.append(r)
        detail = ("\n      " + r.detail.replace("\n", "\n      ")) if r.status != "pass" and r.detail else ""
        print(f"  {r.status.upper():14} {r.property:14} {r.title}{detail}", flush=True)
        write_outputs(s, target, results, time.perf_counter() - t0, False)

    try:
        run_all(target, s.profile, examples=s.examples, seed=s.seed, only=list(s.only) or None,
                require=s.require, xfails=None, timeout=s.timeout, rerun=rerun, source=source(s),
                progress=progress)
    except KeyboardInterrupt:
        write_outputs(s, target, results, time.perf_counter() - t0, False)
        print(f"\n{target.name}: interrupted after {len(results)} properties; reports keep them", flush=True)
        return EXIT_FAIL
    for line in write_outputs(s, target, results, time.perf_counter() - t0, True):
        print(line)
    for r in failing:
        if r.reproducer:
            print(f"\n--- reproducer for {r.property} ---\n{r.reproducer}")
    n = tally(r.status for r in results)
    counts = [f"{n['pass']} pass", f"{n['fail']} fail"]
    if s.xfails or n[XFAIL] or n[XPASS]:
        counts += [f"{n[XFAIL]} xfail", f"{n[XPASS]} xpass"]
    if n.get("skipped"):  # a root cause another property reports (engine.Causes): not a failure of its own
        counts.append(f"{n['skipped']} skipped (same root cause)")
    counts.append(f"{n['not supported']} not supported")
    verdict = "DOES NOT CONFORM" if failing else "CONFORMS"
    print(f"\n{target.name}: {verdict} to profile {s.profile} ({', '.join(counts)}) "
          f"in {round(time.perf_counter() - t0, 2)} s")
    xpassed = [r.property for r in results if r.status == XPASS]
    if xpassed:
        them = "it" if len(xpassed) == 1 else "them"
        print(f"XPASS: {', '.join(xpassed)} listed in {s.xfails_file} but passed: take {them} off the list"
              + (" (--strict-xfails: the run fails)" if s.strict_xfails else ""))
    return EXIT_FAIL if failing else EXIT_OK


def _usage(msg: str) -> int:
    print(f"adamax-conformance: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "main", "parser", "version"]
