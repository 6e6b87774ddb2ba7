"""``adamax-conformance``: check an Adamax implementation against a profile; gate CI on it.

Exit codes: 0 conforms, 1 does not, 2 the target could not be loaded or the
arguments are wrong (one-line reason on stderr).  The CLI imports and runs the
target's code, as any test runner does: only point it at code you would run.

A target that raises, hangs (``--timeout`` seconds per example), returns the
wrong shapes or modifies its inputs gets a ``FAIL`` saying so; the run goes on,
and the reports are rewritten after every property, so an interrupted run keeps
the results of the properties already checked.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from adamax_spec.profiles import PROFILE_NAMES

from .targets import STAMP_DISTS, LoadError, load_target, versions

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="adamax-conformance", description=__doc__.split("\n")[0])
    ap.add_argument("target", nargs="?",
                    help="module:attr, 'adamax_spec' (see --backend), or the name of a registered target")
    ap.add_argument("--profile", default="keras", choices=PROFILE_NAMES)
    ap.add_argument("--backend", default="numpy", help="backend for adamax_spec targets")
    ap.add_argument("--examples", type=int, default=int(os.environ.get("ADAMAX_EXAMPLES", 25)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", action="append", default=[], metavar="PATH",
                    help="write a report; format from the suffix: .json .xml (JUnit) .md")
    ap.add_argument("--xfails", metavar="FILE", help="property ids expected to fail, one a line")
    ap.add_argument("--require", action="append", default=[], metavar="CAPABILITY")
    ap.add_argument("--only", action="append", default=[], metavar="PROPERTY")
    ap.add_argument("--identify", action="store_true", help="tell which known variant TARGET is")
    ap.add_argument("--matrix", action="store_true", help="every installed implementation x profile")
    ap.add_argument("--report-dir", default="reports")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("ADAMAX_TIMEOUT", 120)),
                    metavar="SECONDS", help="per-example time limit; 0 = none (default 120)")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse printed its one-line reason; exit 2 for errors, 0 for --help
        return int(e.code or 0)
    if args.examples < 1:
        return _usage("--examples must be >= 1")
    if args.timeout < 0 or args.timeout != args.timeout:
        return _usage("--timeout must be >= 0")
    from .case import CAPABILITIES
    from .runner import PROPERTIES

    unknown_caps = sorted(set(args.require) - set(CAPABILITIES))
    if unknown_caps:
        return _usage(f"unknown --require capability {unknown_caps}; known: {', '.join(CAPABILITIES)}")
    unknown_props = sorted(set(args.only) - {p.id for p in PROPERTIES})
    if unknown_props:
        return _usage(f"unknown --only property {unknown_props}; known: {', '.join(p.id for p in PROPERTIES)}")
    if args.matrix:
        from .matrix import run_matrix

        return run_matrix(Path(args.report_dir), examples=args.examples, seed=args.seed)
    if not args.target:
        return _usage("TARGET is required (or --matrix)")
    try:
        target = load_target(args.target, args.backend, args.profile)
    except (LoadError, ValueError, ImportError, TypeError) as e:
        return _usage(str(e).splitlines()[0] if str(e) else type(e).__name__)
    if args.identify:
        from .identify import identify

        name, lines = identify(target)
        print("\n".join(lines))
        print(f"variant: {name}")
        return EXIT_OK
    xfails: set[str] = set()
    if args.xfails:
        try:
            xfails = {ln.split("#")[0].strip() for ln in Path(args.xfails).read_text().splitlines()} - {""}
        except OSError as e:
            return _usage(f"cannot read --xfails file: {e}")
    from .report import write_reports
    from .runner import run_all

    t0 = time.perf_counter()
    print(f"adamax-conformance: {target.name} against profile {args.profile!r}, "
          f"{args.examples} examples per property, seed {args.seed}", flush=True)
    rerun = (f"adamax-conformance {args.target} --profile {args.profile} --seed {args.seed} "
             f"--examples {args.examples}" + (f" --backend {args.backend}" if args.target.startswith("adamax_spec")
                                              else ""))
    results: list[Any] = []

    def meta(complete: bool) -> dict[str, Any]:
        return {"target": target.name, "spec": args.target, "profile": args.profile,
                "examples": args.examples, "seed": args.seed, "timeout": args.timeout,
                "seconds": round(time.perf_counter() - t0, 2), "complete": complete,
                "versions": versions(STAMP_DISTS, platform=True)}

    def progress(r: Any) -> None:
        results.append(r)
        detail = ("\n      " + r.detail.replace("\n", "\n      ")) if r.status != "pass" and r.detail else ""
        print(f"  {r.status.upper():14} {r.property:14} {r.title}{detail}", flush=True)
        write_reports(args.report, results, meta(False))  # nothing checked is lost if the run dies

    try:
        run_all(target, args.profile, examples=args.examples, seed=args.seed, only=args.only or None,
                require=frozenset(args.require), xfails=xfails, timeout=args.timeout or None,
                rerun=rerun, progress=progress)
    except KeyboardInterrupt:
        write_reports(args.report, results, meta(False))
        print(f"\n{target.name}: interrupted after {len(results)} properties; reports keep them", flush=True)
        return EXIT_FAIL
    write_reports(args.report, results, meta(True))
    failed = [r for r in results if r.status in ("fail", "error")]
    for r in failed:
        if r.reproducer:
            print(f"\n--- reproducer for {r.property} ---\n{r.reproducer}")
    verdict = "DOES NOT CONFORM" if failed else "CONFORMS"
    print(f"\n{target.name}: {verdict} to profile {args.profile} "
          f"({sum(r.status == 'pass' for r in results)} pass, {len(failed)} fail, "
          f"{sum(r.status == 'not supported' for r in results)} not supported) "
          f"in {round(time.perf_counter() - t0, 2)} s")
    return EXIT_FAIL if failed else EXIT_OK


def _usage(msg: str) -> int:
    print(f"adamax-conformance: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "main"]
