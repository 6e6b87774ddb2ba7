"""Targets: what the suite can check, in one place.

* :func:`load_target` turns a ``TARGET`` (``module:attr``, ``adamax_spec``, or the name of a
  registered target) into an adapter (:class:`~adamax_spec.conformance.case.Target`);
* :data:`BUILTIN` is the table of targets the suite knows (our implementation on each array
  backend, and the peers), each a :class:`KnownTarget`: its label, its ``TARGET`` string, the
  module whose presence means it is installed, and the profile it is documented to implement
  (:func:`native_profile`);
* :func:`installed_targets` is what the matrix and the deep runs iterate over (``make report``,
  ``make deep``), :func:`versions` what every report and deep-run summary is stamped with, and
  :func:`stem` the file name of a target's report.

Third-party targets: a package registers one under the entry-point group ``adamax_spec.targets``
(:data:`ENTRY_POINT_GROUP`)::

    [project.entry-points."adamax_spec.targets"]
    my_adamax = "my_package.conformance:make_target"

The name (``my_adamax``) becomes a ``TARGET`` (``adamax-conformance my_adamax``, ``pytest
--adamax-target my_adamax``) and a label of the matrix and the deep runs, judged there under the
``keras`` profile.  The value resolves to one of

* an *adapter factory*: a callable with a ``profile`` parameter (and optionally ``backend``)
  that returns a :class:`~adamax_spec.conformance.case.Target`, called as
  ``factory(profile=..., [backend=...])``;
* a ready :class:`~adamax_spec.conformance.case.Target` (an object with ``name``,
  ``capabilities`` and ``run``);
* anything ``module:attr`` may name: an Adamax class of torch, Keras or tf_keras legacy, an
  optax-style factory, or a raw step function ``step(w, g, m, u, *, t, lr, beta_1, beta_2,
  epsilon) -> (w, m, u)``.

This module imports no framework until a target is loaded.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import platform as _platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .case import Target

__all__ = ["BUILTIN", "DISTS", "ENTRY_POINT_GROUP", "KERAS3", "OUR_BACKENDS", "STAMP_DISTS", "KnownTarget",
           "LoadError", "installed_targets", "keras_backend", "known_targets", "load_target", "native_profile",
           "registered", "stem", "versions"]

#: entry-point group under which other packages register targets (see the module docstring)
ENTRY_POINT_GROUP = "adamax_spec.targets"
#: the array backends our own implementation is checked on, in report order
OUR_BACKENDS = ("numpy", "torch", "jax", "array_api_strict", "dask", "cupy")


class LoadError(Exception):
    """``TARGET`` names nothing loadable, or nothing the suite can adapt."""


def keras_backend() -> str:
    """The backend Keras 3 runs on in this process (fixed once Keras is imported)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


@dataclass(frozen=True)
class KnownTarget:
    """One target the suite knows: how it is named, loaded, detected, and judged by default."""

    #: the implementation, e.g. ``"torch.optim.Adamax"``, ``"adamax_spec[jax]"``, ``"keras 3 Adamax"``
    name: str
    #: the ``TARGET`` :func:`load_target` takes
    spec: str
    #: the top-level module whose presence means the target is installed
    module: str
    #: the profile the target is documented to implement (``docs/peers.md``)
    profile: str
    #: our own targets: the array backend (``load_target``'s ``backend``)
    backend: str = "numpy"
    #: runs on Keras 3's process-wide backend, which its label names
    on_keras_backend: bool = False

    def label(self, keras: str | None = None) -> str:
        """The name reports use: :attr:`name`, and for Keras 3 the backend (default: this process's)."""
        return f"{self.name} [{keras or keras_backend()}]" if self.on_keras_backend else self.name

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def make(self, profile: str) -> Target:
        """The target, loaded to be judged under ``profile`` (only our own targets and registered
        adapter factories take it: a peer is the same object whatever profile it is judged against)."""
        return load_target(self.spec, self.backend, profile)


#: Keras 3, on the backend this process runs it on (a matrix runs the others in child processes)
KERAS3 = KnownTarget("keras 3 Adamax", "keras.optimizers:Adamax", "keras", "keras3", on_keras_backend=True)
#: every target the suite knows without a plugin, in report order
BUILTIN: tuple[KnownTarget, ...] = (
    *(KnownTarget(f"adamax_spec[{b}]", "adamax_spec", b, "keras", backend=b) for b in OUR_BACKENDS),
    KnownTarget("torch.optim.Adamax", "torch.optim:Adamax", "torch", "torch"),
    KnownTarget("optax.adamax", "optax:adamax", "optax", "optax"),
    KnownTarget("tf_keras legacy Adamax", "tf_keras.optimizers.legacy:Adamax", "tf_keras", "keras"),
    KERAS3,
)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def registered() -> list[KnownTarget]:
    """Targets other packages register (entry-point group :data:`ENTRY_POINT_GROUP`), judged under
    ``keras`` by default; a name that a built-in target already has is ignored.  Imports nothing."""
    taken = {t.name for t in BUILTIN}
    out = []
    for ep in _entry_points():
        if ep.name in taken or ":" in ep.name:
            continue
        taken.add(ep.name)
        out.append(KnownTarget(ep.name, ep.name, ep.module.partition(".")[0], "keras"))
    return out


def known_targets(*, plugins: bool = True) -> list[KnownTarget]:
    """:data:`BUILTIN`, then (``plugins``) the registered targets; installed or not."""
    return [*BUILTIN, *(registered() if plugins else ())]


def installed_targets(*, keras_only: bool = False) -> list[tuple[str, Callable[[str], Target]]]:
    """``(label, make(profile) -> Target)`` for every known target installed here, registered
    ones last; ``keras_only``: Keras 3 alone (a matrix child process on another Keras backend).
    Imports nothing yet."""
    return [(t.label(), t.make) for t in known_targets(plugins=not keras_only)
            if (t.on_keras_backend or not keras_only) and t.installed()]


def native_profile(label: str) -> str:
    """The profile the target labelled ``label`` is documented to implement (a Keras 3 label on
    any backend: ``keras3``); ``keras`` for a label the suite does not know."""
    for t in known_targets():
        if label in (t.name, t.label()) or (t.on_keras_backend and label.startswith(f"{t.name} [")):
            return t.profile
    return "keras"


def stem(label: str, profile: str | None = None) -> str:
    """A file name (no suffix) for ``label``'s report, or for its report under ``profile``."""
    text = label if profile is None else f"{label}-{profile}"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


#: distributions a differences page names (:func:`versions`' default)
DISTS = ("adamax_spec", "numpy", "torch", "jax", "optax", "keras", "tf_keras", "tensorflow")
#: distributions that stamp a deep-run summary (a change in one starts the target again), and
#: that a conformance report names
STAMP_DISTS = (*DISTS, "hypothesis", "gmpy2", "numba", "array_api_strict", "array-api-compat")


def versions(dists: tuple[str, ...] = DISTS, *, platform: bool = False) -> dict[str, str]:
    """Python's version, the platform (``platform``), and the installed version of each of
    ``dists`` (its package metadata: what is installed, whether or not this process imported it)."""
    out = {"python": sys.version.split()[0]}
    if platform:
        out["platform"] = _platform.platform()
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def load_target(spec: str, backend: str = "numpy", profile: str = "keras", *,
                options: Mapping[str, object] | None = None) -> Target:
    """``module:attr``, ``adamax_spec`` or a registered name -> an adapter, chosen from what the object is.

    ``backend`` and ``profile`` matter to our own implementation and to registered adapter
    factories only.  ``options``: keyword arguments for the class or factory the target names
    (the CLI's ``--option KEY=VALUE``), other than the hyperparameters the suite sets for every
    case; they reach every construction of the optimizer (an optax-style factory's every call,
    a step function's every call, a registered adapter factory's one call).  A
    ``functools.partial`` of a class or factory is that class or factory with the partial's
    keywords as options.  A :class:`LoadError` names an option the target does not take, one
    the suite sets, or one its constructor rejects."""
    from .adapters.ours import OursTarget

    if spec in ("adamax_spec", "adamax_spec:Adamax"):
        if options:
            raise LoadError(f"{spec!r} takes no options (got {', '.join(options)}); its variant is --profile, "
                            "its array library --backend")
        return OursTarget(backend, profile)
    mod_name, _, attr = spec.partition(":")
    if not attr:
        ep = next((e for e in _entry_points() if e.name == spec), None) if mod_name else None
        if ep is not None:
            return _load_registered(ep, backend, profile, options)
    if not mod_name or not attr:
        names = sorted(t.name for t in registered())
        extra = f" or a registered target ({', '.join(names)})" if names else ""
        raise LoadError(f"TARGET must look like module:attr or 'adamax_spec'{extra}, got {spec!r}")
    try:
        obj: Any = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise LoadError(f"cannot load {spec!r}: {type(e).__name__}: {e}") from None
    return _adapt(obj, spec, options, profile)


#: what the suite can drive, for the message about a class it cannot
_DRIVES = ("torch.optim.Optimizer subclasses taking (params, lr, betas, eps), Keras 3 and tf_keras legacy "
           "optimizers taking (learning_rate, beta_1, beta_2, epsilon), optax-style factories taking "
           "(learning_rate, b1, b2, eps), and step functions step(w, g, m, u, *, t, lr, beta_1, beta_2, epsilon)")


def _adapt(obj: Any, spec: str, options: Mapping[str, object] | None = None, profile: str = "keras") -> Target:
    """The adapter for an optimizer class, optax-style factory or step function (or a
    ``functools.partial`` of one: its keywords become options).  ``profile``: a step function's
    ``t`` counts as the profile's optimizer counts steps (``Profile.step_counter``)."""
    from adamax_spec.profiles import PROFILES

    from .adapters._common import OptionError

    opts = dict(options or {})
    if isinstance(obj, functools.partial):
        if obj.args:
            raise LoadError(f"{spec!r} is a functools.partial with positional arguments {obj.args!r}: the suite "
                            "passes the parameters and hyperparameters itself; bind only other arguments, by "
                            "keyword")
        twice = sorted(set(obj.keywords) & set(opts))
        if twice:
            raise LoadError(f"{spec!r}: option {twice[0]!r} is both bound by the functools.partial and given")
        obj, opts = obj.func, {**obj.keywords, **opts}
    try:
        for modname in ("torch_optim", "optax_adapter", "keras_adapter"):
            try:
                mod = importlib.import_module(f"adamax_spec.conformance.adapters.{modname}")
            except ImportError:
                continue
            finder = getattr(mod, "adapter_for", None)
            found = finder(obj, opts or None) if finder else None
            if found is not None:
                return found
        if isinstance(obj, type):  # a class is callable, but no step function
            raise LoadError(f"{spec!r} is a class the suite cannot drive (its constructor takes "
                            f"({', '.join(_parameters(obj))})): the suite drives {_DRIVES}; wrap it in one "
                            "of these, or register an adapter (docs/architecture.md, 'Add a target adapter')")
        if callable(obj):
            from .adapters.function import FunctionTarget

            rules = PROFILES.get(profile)
            return FunctionTarget(obj, name=spec, options=opts or None,
                                  step_counter=rules.step_counter if rules is not None else "optimizer")
    except OptionError as e:
        raise LoadError(str(e)) from None
    raise LoadError(f"{spec!r} is not an optimizer class, factory or step function")


def _is_target(obj: Any) -> bool:
    return (not isinstance(obj, type) and callable(getattr(obj, "run", None))
            and hasattr(obj, "capabilities") and hasattr(obj, "name"))


def _parameters(obj: Any) -> Any:
    try:
        return inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return {}


def _load_registered(ep: importlib.metadata.EntryPoint, backend: str, profile: str,
                     options: Mapping[str, object] | None = None) -> Target:
    """A registered target: an adapter factory, a ready target, or what ``module:attr`` may name."""
    from .adapters._common import OptionError, constructor_options

    try:
        obj: Any = ep.load()
    except Exception as e:
        raise LoadError(f"cannot load {ep.name!r} ({ep.value}): {type(e).__name__}: {e}") from None
    if _is_target(obj):
        if options:
            raise LoadError(f"{ep.name!r} ({ep.value}) is a ready target: it takes no options "
                            f"(got {', '.join(options)})")
        return obj
    params = _parameters(obj) if callable(obj) else {}
    if "profile" not in params:
        return _adapt(obj, ep.name, options, profile)
    try:
        opts = constructor_options(obj, options, suite=("profile", "backend"), what=f"{ep.name!r} ({ep.value})")
    except OptionError as e:
        raise LoadError(str(e)) from None
    kwargs = {**opts, "profile": profile, **({"backend": backend} if "backend" in params else {})}
    made = obj(**kwargs)
    if not _is_target(made):
        raise LoadError(f"{ep.name!r} ({ep.value}) returned {type(made).__name__}, not a target "
                        "(an object with name, capabilities and run)")
    return made
