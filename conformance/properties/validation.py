"""docs/spec.md, "Validation": V-args, what a target's constructor does with bad arguments.

The bad arguments and the kind of each are listed here; what each profile does with a kind is
read from the profile records (``Profile.argument_rule``).  A rejection is a ``ValueError`` or
``TypeError`` whose message names the argument (:func:`names_argument`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from adamax_spec.profiles import PROFILES, ArgumentRuleKind

from ..case import Case, Target, Trajectory, Unsupported
from ..property import Finding, Property, profile_rules
from ..timeout import TimedOut, call

__all__ = ["ARGUMENT_RULES", "V_ARGS", "names_argument"]

_DEFAULT_ARGS = {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
_NAN = float("nan")


def _expectations(kind: ArgumentRuleKind) -> dict[str, str]:
    """``{profile: "reject" | "accept"}`` for one kind of bad argument, from the profile records
    (``Profile.argument_rule``); a profile whose rule is "may" is left out."""
    out: dict[str, str] = {}
    for name, p in PROFILES.items():
        e = p.argument_rule(kind)
        if e != "may":
            out[name] = e
    return out


#: The bad arguments and what each kind of them is (its rule per profile: ``_expectations``).
_BAD_ARGUMENTS: list[tuple[dict[str, Any], str, ArgumentRuleKind]] = [
    ({"learning_rate": -1.0}, "learning_rate", "hyperparameter_range"),
    ({"learning_rate": _NAN}, "learning_rate", "hyperparameter_range"),
    ({"beta_1": 1.0}, "beta_1", "hyperparameter_range"),
    ({"beta_1": -0.1}, "beta_1", "hyperparameter_range"),
    ({"beta_1": _NAN}, "beta_1", "hyperparameter_range"),
    ({"beta_2": 1.0}, "beta_2", "hyperparameter_range"),
    ({"beta_2": -0.1}, "beta_2", "hyperparameter_range"),
    ({"epsilon": -1e-8}, "epsilon", "hyperparameter_range"),
    ({"not_an_argument": 1}, "not_an_argument", "unknown_argument"),
    ({"clipnorm": -1.0}, "clipnorm", "negative_clip"),
    ({"clipvalue": -1.0}, "clipvalue", "negative_clip"),
    ({"global_clipnorm": -1.0}, "global_clipnorm", "negative_clip"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, "clipnorm", "clipnorm_and_global_clipnorm"),
    ({"clipvalue": 1.0, "clipnorm": 1.0}, "clipnorm", "clipvalue_and_clipnorm"),
]
#: (bad arguments, the argument to name, {profile: "reject" | "accept"}); absent profile = may.
#: "reject": ValueError or TypeError whose message names the argument.  "accept": no error.
ARGUMENT_RULES: list[tuple[dict[str, Any], str, dict[str, str]]] = [
    (args, name, _expectations(kind)) for args, name, kind in _BAD_ARGUMENTS
]
_ALIASES = {
    "learning_rate": ("learning_rate", "learning rate", "lr"),
    "beta_1": ("beta_1", "beta1", "b1", "betas", "beta"),
    "beta_2": ("beta_2", "beta2", "b2", "betas", "beta"),
    "epsilon": ("epsilon", "eps"),
    "clipnorm": ("clipnorm", "global_clipnorm", "clip"),
    "clipvalue": ("clipvalue",),
    "global_clipnorm": ("global_clipnorm",),
    "not_an_argument": ("not_an_argument",),
}


def names_argument(message: str, arg: str) -> bool:
    """Does ``message`` name ``arg`` (under one of its usual spellings, as a whole word)?"""
    text = message.lower()
    for alias in _ALIASES.get(arg, (arg,)):
        pat = re.escape(alias).replace("_", "[_ ]?").replace(r"\ ", "[_ ]?")
        if re.search(rf"(?<![a-z0-9]){pat}(?![a-z0-9])", text):
            return True
    return False


def _arguments_check(target: Target, rule: Any, variant: str, run: Callable[[Case], Trajectory]) -> Finding | None:
    args, name, expect = rule
    clip_args = {"clipvalue", "clipnorm", "global_clipnorm"} & set(args)
    rules = profile_rules(variant)
    if clip_args and (rules is None or rules.clipping == "none" or clip_args - target.capabilities):
        raise Unsupported("clipping arguments", "this rule is about clipping arguments")
    expectation = expect.get(variant, "may")
    make = getattr(target, "make", None)
    if make is None:
        raise Unsupported("validation", f"{target.name} has no constructor to call")
    call_text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    try:
        call(lambda: make({**_DEFAULT_ARGS, **args}), 30.0)
    except TimedOut:
        raise
    except (ValueError, TypeError) as e:
        if expectation == "accept":
            return Finding(f"V-args: {target.name}({call_text}) raised {type(e).__name__}: {e}; "
                           f"profile {variant} accepts it")
        if expectation == "reject" and not names_argument(str(e), name):
            return Finding(f"V-args: {target.name}({call_text}) raised {type(e).__name__}: {e!s:.200} "
                           f"-- the message does not name the argument {name!r}")
        return None
    except Exception as e:  # any other exception type is the finding
        if expectation == "may":
            return None
        return Finding(f"V-args: {target.name}({call_text}) raised {type(e).__name__}: {e!s:.200}; "
                       f"expected {'no error' if expectation == 'accept' else 'ValueError or TypeError'}")
    if expectation == "reject":
        return Finding(f"V-args: {target.name}({call_text}) was accepted; profile {variant} rejects it "
                       f"with a ValueError or TypeError naming {name!r}")
    return None


V_ARGS = Property("V-args", "bad constructor arguments: error type and message per profile",
                  frozenset({"validation"}), lambda: st.sampled_from(ARGUMENT_RULES), check=_arguments_check,
                  scale=lambda n: 3 * len(ARGUMENT_RULES))
