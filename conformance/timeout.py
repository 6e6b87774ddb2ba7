"""The per-example time limit: a target's call in a worker thread, abandoned when it hangs.

Its own module because both the engine (every target run) and a property's own check (the
validation property builds optimizers) call it, and the engine imports the properties.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["TimedOut", "call"]


class TimedOut(Exception):
    """One example ran past the per-example time limit."""


def call(fn: Callable[[], Any], timeout: float | None) -> Any:
    """``fn()`` in a worker thread; raise :class:`TimedOut` after ``timeout`` seconds.

    A thread cannot be killed: a hung target keeps its (daemon) thread, the run goes on.
    """
    if not timeout:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a target's warnings (0/0 ...) are not the run's errors
                box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    th = threading.Thread(target=work, name="adamax-conformance-target", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise TimedOut(f"timed out: one example ran longer than {timeout:g} s (per-example limit, --timeout)")
    if "error" in box:
        raise box["error"]
    return box["value"]
