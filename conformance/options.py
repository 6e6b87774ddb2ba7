"""The run options of the suite, in one table: both front ends are built from :data:`OPTIONS`.

``adamax-conformance`` (``conformance/cli.py``) adds each option as ``--NAME`` (the target as
its positional argument); the pytest plugin (``conformance/plugin.py``) adds it as
``--adamax-NAME``.  Name, type, default, help text and choices come from here, and
:func:`settings` validates the parsed values for both, so the two cannot drift apart: same
options, same defaults, same checks, same messages (each naming the option as its front end
spells it).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adamax_spec.profiles import PROFILE_NAMES

from . import xfails as _xfails
from .case import CAPABILITIES

if TYPE_CHECKING:
    from .reproducer import Source

__all__ = ["CLI_PREFIX", "OPTIONS", "PLUGIN_PREFIX", "Option", "OptionError", "Settings", "command_line", "load",
           "meta", "parse_option", "property_ids", "reproducer_files", "settings", "source", "write_outputs"]

CLI_PREFIX, PLUGIN_PREFIX = "--", "--adamax-"


class OptionError(ValueError):
    """A run option has a wrong value; the message names the option and what it accepts."""


@dataclass(frozen=True)
class Option:
    """One run option, as both front ends take it."""

    #: ``--NAME`` on the CLI, ``--adamax-NAME`` in pytest
    name: str
    help: str
    default: Any = None
    #: converts the command-line text (``None``: kept as text)
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    #: may be given more than once; the value is the list of them
    repeat: bool = False
    #: takes no value: given means true
    flag: bool = False
    #: the CLI's positional argument (pytest has none: ``--adamax-NAME`` there)
    positional: bool = False

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def spelled(self, prefix: str) -> str:
        """The option as a front end spells it: ``--examples``, ``--adamax-examples``; the CLI's
        positional argument is spelled in capitals (``TARGET``)."""
        return self.name.upper() if self.positional and prefix == CLI_PREFIX else prefix + self.name

    def help_text(self) -> str:
        """The help line, its default included (the same text in both front ends)."""
        shown = self.default is not None and self.default is not False and self.default != ()
        return self.help + (f" (default: {self.default})" if shown else "")

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``argparse``'s ``add_argument`` and pytest's ``addoption``."""
        kw: dict[str, Any] = {"help": self.help_text()}
        if self.flag:
            return {**kw, "action": "store_true", "default": False}
        kw["default"] = list(self.default) if self.repeat else self.default
        if self.repeat:
            kw["action"] = "append"
        for key in ("type", "choices", "metavar"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        return kw


#: every run option, in the order ``--help`` lists them
OPTIONS: tuple[Option, ...] = (
    Option("target", "what to check: module:attr, 'adamax_spec' (see backend), or the name of a registered target",
           metavar="TARGET", positional=True),
    Option("profile", "the profile to judge against (whose Adamax rules: docs/spec.md)", "keras",
           choices=PROFILE_NAMES),
    Option("backend", "array backend when the target is adamax_spec (numpy, torch, jax, array_api_strict, dask, "
           "cupy), or for a registered factory that takes one", "numpy"),
    Option("examples", "examples per property; long-run properties (U-3, T-1, INV-moments) scale "
           "it down, V-args runs every rule (env ADAMAX_EXAMPLES sets the default)",
           int(os.environ.get("ADAMAX_EXAMPLES", 25)), type=int, metavar="N"),
    Option("seed", "hypothesis seed: the same seed draws the same examples", 0, type=int, metavar="N"),
    Option("xfails", "file of property ids expected to fail, one a line ('#' comments); an unknown id is an "
           "error", metavar="FILE"),
    Option("strict-xfails", "an xfailed property that passes (XPASS) fails the run", flag=True),
    Option("require", f"a capability the target must have: a case that needs it fails instead of being 'not "
           f"supported' (repeatable; one of {', '.join(CAPABILITIES)})", (), metavar="CAPABILITY", repeat=True),
    Option("only", "check only this property id (repeatable)", (), metavar="PROPERTY", repeat=True),
    Option("timeout", "time limit per example in seconds; 0 = none (env ADAMAX_TIMEOUT sets the default)",
           float(os.environ.get("ADAMAX_TIMEOUT", 120)), type=float, metavar="SECONDS"),
    Option("report", "write a report; format from the suffix: .json, .xml (JUnit), .md, .html (self-contained, "
           "with the error plots) (repeatable)", (), metavar="PATH", repeat=True),
    Option("plots", "write the run's error plot into DIR: the error per step of a representative trajectory, "
           "in bound units and ULP, and each failing property's worst comparison", metavar="DIR"),
    Option("option", "a keyword argument for the class or factory the target names, e.g. lr=0.01; VALUE is a "
           "Python literal, else a string (repeatable)", (), metavar="KEY=VALUE", repeat=True),
    Option("reproducer", "write each failure's reproducer, a script that loads the target as this run did, replays "
           "the failing case and exits 1 while it still fails: to FILE when one property fails, else one file per "
           "property, its id before the suffix (FILE repro.py: repro-U-1.py, repro-D-1.py)", metavar="FILE"),
)


@dataclass(frozen=True)
class Settings:
    """The options of one run, validated (:func:`settings`)."""

    target: str | None
    profile: str
    backend: str
    examples: int
    seed: int
    #: the property ids of the xfails file (resolved; empty without one)
    xfails: frozenset[str]
    xfails_file: str | None
    strict_xfails: bool
    require: frozenset[str]
    #: the property ids to check (resolved), in the order given; empty: all
    only: tuple[str, ...]
    #: seconds per example; ``None``: no limit
    timeout: float | None
    reports: tuple[str, ...]
    #: where the error plot goes (``--plots``); ``None``: nowhere
    plots: str | None
    #: keyword arguments for the target's class or factory (``--option``)
    options: dict[str, Any]
    #: where the failures' reproducer scripts go (``--reproducer``); ``None``: nowhere
    reproducer: str | None = None


def property_ids(ids: Iterable[str], what: str) -> list[str]:
    """``ids`` as the suite's property ids, in the order given; an :class:`OptionError` naming
    the unknown ones and the known ids (``what``: where they came from, for the message)."""
    from .properties import resolve_all

    try:
        return resolve_all(ids)  # deprecated ids (U-dense ...) become their clause ids (U-1 ...)
    except ValueError as e:
        raise OptionError(f"{what}: {e}") from None


def parse_option(text: str, spelled: str = "--option") -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(KEY, value)``: VALUE as a Python literal (``0.01``, ``(0.9, 0.99)``,
    ``True``, ``None``, ``'x'``), else the text itself; an :class:`OptionError` naming the key
    if the text is not ``KEY=VALUE`` with ``KEY`` an identifier."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise OptionError(f"{spelled} {text!r}: key {key!r} must be a Python identifier followed by =VALUE "
                          "(KEY=VALUE, e.g. lr=0.01)" if sep else
                          f"{spelled} {text!r}: no value for key {key!r} (KEY=VALUE, e.g. lr=0.01)")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = raw
    return key, value


def settings(values: dict[str, Any], prefix: str = CLI_PREFIX) -> Settings:
    """Validate the parsed option ``values`` (by :attr:`Option.dest`) of one front end
    (``prefix``: how it spells options, for the messages); an :class:`OptionError` for the first
    wrong one.  Reads the xfails file."""
    by = {o.dest: o for o in OPTIONS}
    v: dict[str, Any] = {o.dest: values.get(o.dest, o.kwargs().get("default")) for o in OPTIONS}

    def name(dest: str) -> str:
        return by[dest].spelled(prefix)

    if v["profile"] not in PROFILE_NAMES:
        raise OptionError(f"{name('profile')}: unknown profile {v['profile']!r}; choose from "
                          f"{', '.join(PROFILE_NAMES)}")
    if v["examples"] < 1:
        raise OptionError(f"{name('examples')} must be >= 1, got {v['examples']}")
    timeout = v["timeout"]
    if timeout < 0 or timeout != timeout:
        raise OptionError(f"{name('timeout')} must be >= 0, got {timeout}")
    unknown_caps = sorted(set(v["require"]) - set(CAPABILITIES))
    if unknown_caps:
        raise OptionError(f"unknown {name('require')} capability {unknown_caps}; known: {', '.join(CAPABILITIES)}")
    only = property_ids(v["only"], name("only"))
    xfailed: list[str] = []
    if v["xfails"]:
        try:
            text = Path(v["xfails"]).read_text()
        except OSError as e:
            raise OptionError(f"cannot read {name('xfails')} file: {e}") from None
        xfailed = property_ids(_xfails.parse(text), f"{name('xfails')} file {v['xfails']}")
    from .report import check_report_paths

    try:
        check_report_paths(v["report"])
    except ValueError as e:
        raise OptionError(f"{name('report')}: {e}") from None
    if v["plots"] and importlib.util.find_spec("matplotlib") is None:
        raise OptionError(f"{name('plots')} needs matplotlib (pip install 'adamax_spec[conformance]')")
    options: dict[str, Any] = {}
    for text in v["option"]:
        key, value = parse_option(text, name("option"))
        if key in options:
            raise OptionError(f"{name('option')}: key {key!r} given twice")
        options[key] = value
    return Settings(target=v["target"], profile=v["profile"], backend=v["backend"], examples=v["examples"],
                    seed=v["seed"], xfails=frozenset(xfailed), xfails_file=v["xfails"],
                    strict_xfails=bool(v["strict_xfails"]), require=frozenset(v["require"]), only=tuple(only),
                    timeout=timeout or None, reports=tuple(v["report"]), plots=v["plots"], options=options,
                    reproducer=v["reproducer"])


def command_line(s: Settings, prefix: str = CLI_PREFIX, only: Sequence[str] = ()) -> str:
    """The options that rerun ``s`` (the same examples), as front end ``prefix`` spells them;
    ``only``: just those properties."""
    parts = [f"{prefix}profile {s.profile}", f"{prefix}seed {s.seed}", f"{prefix}examples {s.examples}"]
    if (s.target or "").startswith("adamax_spec") or s.backend != "numpy":
        parts.append(f"{prefix}backend {s.backend}")
    parts += [f"{prefix}option {shlex.quote(f'{k}={v!r}')}" for k, v in s.options.items()]
    parts += [f"{prefix}only {p}" for p in only]
    return " ".join(parts)


def load(s: Settings) -> Any:
    """The target ``s`` names, loaded once for the run; an :class:`OptionError` with a one-line
    reason if it cannot be (a bad ``TARGET``, an import that fails, a factory that raises).  Its
    module is imported as ``python -m`` would: from the current directory first."""
    from .targets import LoadError, load_target

    assert s.target is not None
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return load_target(s.target, s.backend, s.profile, options=s.options or None)
    except LoadError as e:
        raise OptionError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    except Exception as e:  # the target's own code (an import, a factory) raised
        first = str(e).splitlines()[0] if str(e) else ""
        raise OptionError(f"cannot load {s.target!r}: {type(e).__name__}" + (f": {first}" if first else "")) from None


def source(s: Settings) -> Source:
    """How this run loads its target, for the reproducers (which load it the same way)."""
    from .reproducer import Source

    assert s.target is not None
    return Source(s.target, s.profile, s.backend, dict(s.options), s.timeout)


def reproducer_files(path: str, results: list[Any]) -> list[str]:
    """Write the reproducer of each failing result (``fail``): to ``path`` when one property
    fails, else to ``path`` with ``-ID`` before its suffix for each; the files written."""
    failed = [r for r in results if r.status == "fail" and r.reproducer]
    base = Path(path)
    out = []
    for r in failed:
        f = base if len(failed) == 1 else base.with_name(f"{base.stem}-{r.property}{base.suffix}")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(r.reproducer)
        out.append(str(f))
    return out


def meta(s: Settings, target: str, seconds: float, complete: bool) -> dict[str, Any]:
    """What a report records about the run besides its results."""
    from .targets import STAMP_DISTS, versions

    return {"target": target, "spec": s.target, "profile": s.profile, "examples": s.examples, "seed": s.seed,
            "timeout": s.timeout or 0, "xfails": sorted(s.xfails), "strict_xfails": s.strict_xfails,
            "options": {k: repr(v) for k, v in s.options.items()}, "seconds": round(seconds, 2),
            "complete": complete, "versions": versions(STAMP_DISTS, platform=True)}


def write_outputs(s: Settings, target: Any, results: list[Any], seconds: float, complete: bool) -> list[str]:
    """Write the run's reports and, at its end (``complete``), its error plot; the lines to tell
    the user (where the plot went, or why there is none).  The representative trajectory's
    errors are measured once, at the end, and only for an HTML report or ``--plots``."""
    from .report import write_reports

    m = meta(s, target.name, seconds, complete)
    lines: list[str] = []
    wants_errors = s.plots or any(Path(p).suffix.lower() in (".html", ".htm") for p in s.reports)
    if complete and wants_errors:
        from .plots import error_series

        try:
            m["errors"] = error_series(target, s.profile)
        except Exception as e:  # a target that raises on the representative case has no error curve
            lines.append(f"no error curve: {target.name} raised {type(e).__name__} on the representative case")
    write_reports(s.reports, results, m)
    if complete and s.plots:
        from .plots import write_target_plots

        written = write_target_plots(results, m, s.plots)
        lines += [f"plot: {p}" for p in written] or ["no plot: nothing to draw (no error curve, no failing "
                                                     "comparison)"]
    if complete and s.reproducer:
        lines += [f"reproducer: {f} (python {f})" for f in reproducer_files(s.reproducer, results)] or \
            ["no reproducer: nothing failed"]
    return lines
