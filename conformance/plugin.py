"""pytest plugin: ``pytest --adamax-target TARGET [--adamax-profile P ...]`` runs the suite.

The same front end as ``adamax-conformance``: its options are the CLI's run options
(``conformance/options.py``), spelled ``--adamax-NAME`` (``--adamax-examples``, ``--adamax-seed``,
``--adamax-xfails``, ``--adamax-strict-xfails``, ``--adamax-require``, ``--adamax-only``,
``--adamax-timeout``, ``--adamax-report``, ``--adamax-option``), with the same defaults, the same
checks and the same per-property example scaling.  A wrong option value or a target that cannot
be loaded is one usage error before anything runs (the target is loaded once, at configuration).

Each property becomes one test item of the session, ``adamax[PROPERTY]`` (ids = the property
ids that docs/spec.md cites; ``--adamax-only`` selects them), next to the project's own tests; a
property the target does not support is skipped with the reason, an xfailed one that fails is
``xfailed``, one that passes ``xpassed`` (failed with ``--adamax-strict-xfails``).  Without
``--adamax-target`` the plugin adds nothing.  ``check_property`` is the same check for a test of
your own that takes the ``adamax_property`` and ``adamax_target`` fixtures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from .options import OPTIONS, PLUGIN_PREFIX, OptionError, Settings, command_line, load, settings, source, write_outputs
from .xfails import XFAIL, XPASS, classify


@dataclass
class _Run:
    """The session's run: its settings, its target (loaded once) and the results so far."""

    settings: Settings
    target: Any
    results: list[Any] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)
    #: what the run's end tells the user (where the plot went)
    notes: list[str] = field(default_factory=list)
    #: the run's root causes, so that each fails one item (the others are skipped: engine.Causes)
    causes: Any = None


_RUN = pytest.StashKey[_Run]()
_XPASS = pytest.StashKey[str]()


def _dest(o: Any) -> str:
    return f"adamax_{o.dest}"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("adamax-conformance", "Adamax conformance suite (the options of adamax-conformance)")
    for o in OPTIONS:
        group.addoption(o.spelled(PLUGIN_PREFIX), dest=_dest(o), **o.kwargs())


def pytest_configure(config: Any) -> None:
    values = {o.dest: config.getoption(_dest(o)) for o in OPTIONS}
    if values["target"] is None:
        return
    try:
        s = settings(values, PLUGIN_PREFIX)
        target = load(s)
    except OptionError as e:
        raise pytest.UsageError(f"adamax-conformance: {e}") from None
    config.stash[_RUN] = _Run(s, target)


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is None or not (run.settings.reports or run.settings.plots or run.settings.reproducer):
        return
    complete = exitstatus != pytest.ExitCode.INTERRUPTED  # the items this session ran (-k may select)
    run.notes = write_outputs(run.settings, run.target, run.results, time.perf_counter() - run.t0, complete)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    run = terminalreporter.config.stash.get(_RUN, None)
    for line in run.notes if run is not None else ():
        terminalreporter.write_line(f"adamax-conformance: {line}")


class AdamaxFailure(AssertionError):
    """A property failed: the message is the finding and its reproducer."""


def _selected(run: _Run) -> list[Any]:
    from .properties import PROPERTIES

    return [p for p in PROPERTIES if not run.settings.only or p.id in run.settings.only]


def _check(run: _Run, prop: Any, target: Any, node: Any) -> None:
    """Run ``prop`` as the CLI does (its examples scaled, the seed, the xfails) and turn the
    outcome into pytest's: pass, skip, xfail, xpass or failure."""
    from .engine import run_property

    s = run.settings
    rerun = f"pytest --adamax-target {s.target} {command_line(s, PLUGIN_PREFIX, only=[prop.id])}"
    if run.causes is None:
        from .engine import Causes

        run.causes = Causes(tuple(p.id for p in _selected(run)))
    r = run_property(prop, target, s.profile, examples=prop.scale(s.examples), seed=s.seed, require=s.require,
                     timeout=s.timeout, rerun=rerun, source=source(s), causes=run.causes)
    outcome = classify(r.property, r.status, s.xfails, strict=s.strict_xfails)
    r.status = outcome.status
    if outcome.status == XPASS:
        r.detail = outcome.note
    run.results.append(r)
    if r.status in ("not supported", "skipped"):  # skipped: a root cause another item reports
        pytest.skip(r.detail)
    if r.status == XFAIL:
        pytest.xfail(f"{r.property}: {r.detail.splitlines()[0] if r.detail else outcome.note}")
    if outcome.fails:
        word = "XPASS(strict)" if r.status == XPASS else r.status
        raise AdamaxFailure(f"{r.property} {word}: {r.detail}" + (f"\n{r.reproducer}" if r.reproducer else ""))
    if r.status == XPASS:
        node.stash[_XPASS] = f"{r.property}: {outcome.note}"


class AdamaxItem(pytest.Item):
    """One property of the suite run against ``--adamax-target``."""

    def __init__(self, *, prop: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prop = prop

    def runtest(self) -> None:
        run = self.config.stash[_RUN]
        _check(run, self.prop, run.target, self)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, AdamaxFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "adamax-conformance", None, f"{self.name}: {self.prop.title}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    """A property listed as xfail that passed is reported ``XPASS``, as pytest reports its own."""
    rep = yield
    note = item.stash.get(_XPASS, None)
    if note is not None and call.when == "call" and rep.passed:
        rep.wasxfail = note
    return rep


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    run = config.stash.get(_RUN, None)
    if run is None:
        return
    from .properties import DEPRECATED_IDS

    for p in _selected(run):
        item = AdamaxItem.from_parent(session, name=f"adamax[{p.id}]", prop=p)
        # ``-k`` also matches a property's deprecated ids (``-k dense`` selects U-1, once U-dense)
        item.extra_keyword_matches.update(old for old, new in DEPRECATED_IDS.items() if new == p.id)
        items.append(item)


def pytest_generate_tests(metafunc: Any) -> None:
    if "adamax_property" in metafunc.fixturenames:
        run = metafunc.config.stash.get(_RUN, None)
        if run is None:
            from .properties import PROPERTIES

            props = PROPERTIES
        else:
            props = _selected(run)
        metafunc.parametrize("adamax_property", props, ids=[p.id for p in props])


@pytest.fixture
def adamax_target(request: Any) -> Any:
    run = request.config.stash.get(_RUN, None)
    if run is None:
        pytest.skip("no --adamax-target given")
    return run.target


def check_property(adamax_property: Any, adamax_target: Any, request: Any) -> None:
    """Body of a conformance test: ``def test_x(adamax_property, adamax_target, request)``."""
    _check(request.config.stash[_RUN], adamax_property, adamax_target, request.node)
