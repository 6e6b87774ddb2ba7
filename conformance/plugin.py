"""pytest plugin: ``pytest --adamax-target MODULE:ATTR [--adamax-profile P]`` runs the suite.

Each property becomes one test item of the session (ids = the spec's clause ids).
Without ``--adamax-target`` the plugin adds nothing.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("adamax-conformance")
    group.addoption("--adamax-target", default=None, help="module:attr or adamax_spec")
    group.addoption("--adamax-profile", default="keras")
    group.addoption("--adamax-backend", default="numpy")
    group.addoption("--adamax-examples", type=int, default=25)


def pytest_generate_tests(metafunc: Any) -> None:
    if "adamax_property" in metafunc.fixturenames:
        from .runner import PROPERTIES

        metafunc.parametrize("adamax_property", PROPERTIES, ids=[p.id for p in PROPERTIES])


@pytest.fixture
def adamax_target(request: Any) -> Any:
    spec = request.config.getoption("--adamax-target")
    if spec is None:
        pytest.skip("no --adamax-target given")
    from .cli import load_target

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
