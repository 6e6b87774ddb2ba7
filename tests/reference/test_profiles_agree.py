"""The reference's variant table and the profile records describe the same variants.

``adamax_spec.reference.model.VARIANTS`` is the independent reference's own table (it must not
import the implementation, which tests/architecture/test_imports.py checks import by import);
``adamax_spec.profiles.PROFILES`` is what the implementation and the conformance suite read.
Adding or changing a variant in one place only makes these tests fail: the same names, and for
each the same epsilon placement, bias correction, sparse laziness, sparse magnitude rule and
whether global_clipnorm sums a sparse gradient's slices.
The mutation tests show the comparison does detect every such change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from adamax_spec.profiles import ARGUMENT_RULE_KINDS, PROFILE_NAMES, PROFILES, Profile
from adamax_spec.reference.model import VARIANTS, Variant


def rule_differences(profile: Profile, variant: Variant) -> list[str]:
    """The update-rule fields on which a profile record and a reference variant disagree."""
    pairs: list[tuple[str, Any, Any]] = [
        ("epsilon placement", profile.epsilon, variant.epsilon),
        ("bias correction", profile.bias_correction, variant.bias_correction),
        ("sparse laziness (sparse == 'lazy' vs lazy)", profile.sparse == "lazy", variant.lazy),
        ("sparse magnitude (sparse_magnitude == 'sum_of_abs' vs sum_abs)",
         profile.sparse_magnitude == "sum_of_abs", variant.sum_abs),
        ("slices summed by global_clipnorm (global_clipnorm_densifies vs global_clip_sums)",
         profile.global_clipnorm_densifies, variant.global_clip_sums),
    ]
    return [f"{what}: profile {p!r}, reference {v!r}" for what, p, v in pairs if p != v]


def disagreements(profiles: Mapping[str, Profile], variants: Mapping[str, Variant]) -> list[str]:
    """Every way the two tables differ, one line each (empty: they agree)."""
    out = [f"{n}: a profile without a reference variant" for n in sorted(set(profiles) - set(variants))]
    out += [f"{n}: a reference variant without a profile" for n in sorted(set(variants) - set(profiles))]
    for name in sorted(set(profiles) & set(variants)):
        p, v = profiles[name], variants[name]
        if p.name != name or v.name != name:
            out.append(f"{name}: keyed under {name!r} but named {p.name!r} (profile), {v.name!r} (reference)")
        out += [f"{name}: {d}" for d in rule_differences(p, v)]
    return out


def test_same_names() -> None:
    assert set(PROFILES) == set(VARIANTS)


def test_profiles_and_reference_agree() -> None:
    assert disagreements(PROFILES, VARIANTS) == []


def _other(value: Any, choices: tuple[Any, ...]) -> Any:
    return next(c for c in choices if c != value)


#: (profile field, a different value for a record) -> each changes the rule the reference checks.
PROFILE_MUTATIONS = {
    "epsilon": lambda p: _other(p.epsilon, ("outside", "inside", "inside_decay", "none")),
    "bias_correction": lambda p: not p.bias_correction,
    "sparse": lambda p: "dense" if p.sparse == "lazy" else "lazy",
    "sparse_magnitude": lambda p: "abs_of_sum" if p.sparse_magnitude == "sum_of_abs" else "sum_of_abs",
    "global_clipnorm_densifies": lambda p: not p.global_clipnorm_densifies,
}
VARIANT_MUTATIONS = {
    "epsilon": lambda v: _other(v.epsilon, ("outside", "inside", "inside_decay", "none")),
    "bias_correction": lambda v: not v.bias_correction,
    "lazy": lambda v: not v.lazy,
    "sum_abs": lambda v: not v.sum_abs,
    "global_clip_sums": lambda v: not v.global_clip_sums,
}


@pytest.mark.parametrize("field", sorted(PROFILE_MUTATIONS))
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_an_altered_profile_is_detected(name: str, field: str) -> None:
    altered = dataclasses.replace(PROFILES[name], **{field: PROFILE_MUTATIONS[field](PROFILES[name])})
    found = disagreements({**PROFILES, name: altered}, VARIANTS)
    assert len(found) == 1 and found[0].startswith(f"{name}: "), found


@pytest.mark.parametrize("field", sorted(VARIANT_MUTATIONS))
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_an_altered_reference_variant_is_detected(name: str, field: str) -> None:
    altered = dataclasses.replace(VARIANTS[name], **{field: VARIANT_MUTATIONS[field](VARIANTS[name])})
    found = disagreements(PROFILES, {**VARIANTS, name: altered})
    assert len(found) == 1 and found[0].startswith(f"{name}: "), found


def test_a_name_on_one_side_only_is_detected() -> None:
    extra = dataclasses.replace(PROFILES["paddle"], name="paddle2")
    assert disagreements({**PROFILES, "paddle2": extra}, VARIANTS) == [
        "paddle2: a profile without a reference variant"]
    without = {n: v for n, v in VARIANTS.items() if n != "mlx"}
    assert disagreements(PROFILES, without) == ["mlx: a profile without a reference variant"]
    renamed = {**VARIANTS, "mlx": dataclasses.replace(VARIANTS["mlx"], name="mlx2")}
    assert len(disagreements(PROFILES, renamed)) == 1


def test_every_profile_record_is_complete() -> None:
    """What the conformance suite reads from a record: diagnosis words, argument rules."""
    assert set(PROFILE_NAMES) <= set(PROFILES)
    for p in PROFILES.values():
        assert p.words, f"{p.name}: no diagnosis words"
        for kind in ARGUMENT_RULE_KINDS:
            assert p.argument_rule(kind) in ("reject", "accept", "may")
        if p.clipping == "none":  # no clipping arguments: no rule about them
            assert {p.argument_rule(k) for k in ARGUMENT_RULE_KINDS if "clip" in k} == {"may"}
    with pytest.raises(ValueError, match="kind"):
        PROFILES["keras"].argument_rule("no_such_rule")  # type: ignore[arg-type]
