"""pytest plugin: ``pytest --adamax-target MODULE:ATTR [--adamax-profile P]`` runs the suite.

Each property becomes one test item of the session, ``adamax[PROPERTY]`` (ids = the property
ids that docs/spec.md cites), next to the project's own tests; a property the target does not
support is skipped with the reason.  Without ``--adamax-target`` the plugin adds nothing.
``check_property`` is the same check for a test of your own that takes the ``adamax_property``
and ``adamax_target`` fixtures.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("adamax-conformance")
    group.addoption("--adamax-target", default=None, help="module:attr, adamax_spec or a registered target")
    group.addoption("--adamax-profile", default="keras")
    group.addoption("--adamax-backend", default="numpy")
    group.addoption("--adamax-examples", type=int, default=25)
    group.addoption("--adamax-timeout", type=float, default=120.0, help="seconds per example")


class AdamaxFailure(AssertionError):
    """A property failed: the message is the finding and its reproducer."""


class AdamaxItem(pytest.Item):
    """One property of the suite run against ``--adamax-target``."""

    def __init__(self, *, prop: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prop = prop

    def runtest(self) -> None:
        from .runner import run_property
        from .targets import load_target

        opt = self.config.getoption
        target = load_target(opt("--adamax-target"), opt("--adamax-backend"), opt("--adamax-profile"))
        r = run_property(self.prop, target, opt("--adamax-profile"), examples=opt("--adamax-examples"), seed=0,
                         timeout=opt("--adamax-timeout"))
        if r.status == "not supported":
            pytest.skip(r.detail)
        if r.status != "pass":
            raise AdamaxFailure(f"{r.property} {r.status}: {r.detail}\n{r.reproducer}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if isinstance(excinfo.value, AdamaxFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "adamax-conformance", None, f"{self.name}: {self.prop.title}"


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    if config.getoption("--adamax-target") is None:
        return
    from .runner import PROPERTIES

    items.extend(AdamaxItem.from_parent(session, name=f"adamax[{p.id}]", prop=p) for p in PROPERTIES)


def pytest_generate_tests(metafunc: Any) -> None:
    if "adamax_property" in metafunc.fixturenames:
        from .runner import PROPERTIES

        metafunc.parametrize("adamax_property", PROPERTIES, ids=[p.id for p in PROPERTIES])


@pytest.fixture
def adamax_target(request: Any) -> Any:
    spec = request.config.getoption("--adamax-target")
    if spec is None:
        pytest.skip("no --adamax-target given")
    from .targets import load_target

    return load_target(spec, request.config.getoption("--adamax-backend"),
                       request.config.getoption("--adamax-profile"))


def check_property(adamax_property: Any, adamax_target: Any, request: Any) -> None:
    """Body of a conformance test: ``def test_x(adamax_property, adamax_target, request)``."""
    from .runner import run_property

    r = run_property(adamax_property, adamax_target, request.config.getoption("--adamax-profile"),
                     examples=request.config.getoption("--adamax-examples"), seed=0)
    if r.status == "not supported":
        pytest.skip(r.detail)
    assert r.status == "pass", f"{r.detail}\n{r.reproducer}"
