"""Profiles: the named variants of Adamax, as small declarative records.

Every variant shares the skeleton (clauses S-* of ``docs/spec.md``)::

    t  = t + 1
    m  = b1 * m + (1 - b1) * g
    u  = <infinity-norm rule>            # ``Profile.epsilon``
    w  = w - lr * c(t) * m / <denominator>  # ``c(t) = 1 / (1 - b1**t)`` or 1

and differ only in where epsilon goes, whether the step is bias corrected, how
sparse gradients are applied, how hyperparameters are rounded, what the dense
``max`` does with NaN, which clipping arguments the framework has, how steps are
counted, which constructor arguments it rejects, and their defaults.

Adding a variant is one record here plus its row in the reference's own variant
table (``adamax_spec.reference.model.VARIANTS``, kept independent on purpose;
``tests/reference/test_profiles_agree.py`` fails when the two disagree).  The
implementation reads these records, and so does the conformance suite: they are
the specification of each profile, the suite's per-profile rules (step counter,
NaN rule, clipping, argument rules, diagnosis words) come from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "ARGUMENT_RULE_KINDS",
    "PROFILES",
    "PROFILE_NAMES",
    "VARIANT_NAMES",
    "ArgumentRuleKind",
    "Expectation",
    "Profile",
    "get_profile",
]

EpsilonPlacement = Literal["outside", "inside", "inside_decay", "none"]
#: What a profile's framework does with one kind of bad constructor argument: "reject" (a
#: ValueError or TypeError whose message names the argument), "accept" (no error) or "may"
#: (either; the profile sets no rule).
Expectation = Literal["reject", "accept", "may"]
#: The kinds of bad constructor arguments a profile has a rule for (clause V-args).
ArgumentRuleKind = Literal[
    "hyperparameter_range",      # lr < 0 or NaN, b1 or b2 outside [0, 1) or NaN, eps < 0
    "unknown_argument",          # a keyword the constructor does not have
    "negative_clip",             # clipvalue, clipnorm or global_clipnorm < 0
    "clipnorm_and_global_clipnorm",
    "clipvalue_and_clipnorm",
]
ARGUMENT_RULE_KINDS: tuple[ArgumentRuleKind, ...] = (
    "hyperparameter_range", "unknown_argument", "negative_clip",
    "clipnorm_and_global_clipnorm", "clipvalue_and_clipnorm",
)


@dataclass(frozen=True)
class Profile:
    """One Adamax variant.

    Records are written with keyword fields; the fields up to ``sparse_magnitude`` may also be
    given by position (older callers), the later ones only by keyword.

    ``name``
        The profile's name (``--profile NAME``, ``Adamax(profile=NAME)``), also the reference
        variant's name.
    ``epsilon``
        ``"outside"``: ``u = max(b2*u, |g|)``, ``w -= lr_t * m / (u + eps)`` (Keras).
        ``"inside"``: ``u = max(b2*u, |g| + eps)``, ``w -= lr_t * m / u`` (torch, optax).
        ``"inside_decay"``: ``u = max(b2*u + eps, |g|)``, ``w -= lr_t * m / u`` (Paddle).
        ``"none"``: ``u = max(b2*u, |g|)``, ``w -= lr_t * m / u`` (MXNet's Python optimizer).
    ``bias_correction``
        ``True``: ``lr_t = lr / (1 - b1**t)``; ``False``: ``lr_t = lr`` (MLX).
    ``sparse``
        ``"lazy"``: a sparse gradient changes only the rows it names (Keras 2.9);
        ``"dense"``: it is densified, so every row's m and u decay (Keras 3).
    ``hyper_rounding``
        How the framework itself rounds lr, b1, b2 before use: ``"float32"`` (stored
        as float32 then cast to the weight dtype, Keras 2.9), ``"keras3"`` (lr and the b1
        of ``b1**t`` so, but b2 cast straight to the dtype and the moment weight
        ``1 - b1`` formed from the Python double, then cast: Keras 3 on TensorFlow) or
        ``"dtype"`` (used as Python doubles, rounded by the weight-dtype arithmetic,
        torch/optax).  All
        are conformant to every profile (clause H-2); this records what the
        framework does, and what *our* implementation does under the profile.
    ``nan_in_max``
        What the dense ``max`` does with a NaN ``|g|`` (clause N-1): ``"keep_decayed"``
        keeps ``u = b2*u`` (Eigen's ``cwiseMax``, Keras dense kernel), ``"propagate"``
        gives ``u = NaN``.  ``m`` and ``w`` become NaN under both.
    ``clipping``
        The framework's built-in clipping arguments (clause C-*), applied to ``g`` before the
        step, and the argument rules that come with them (clause V-args):
        ``"keras2"``: clipvalue, then clipnorm, then global_clipnorm, each may be set
        (clipvalue together with clipnorm is accepted); a negative one is rejected, and so
        is clipnorm together with global_clipnorm;
        ``"keras3"``: at most one of them, any two together are rejected (a negative one
        has no rule);
        ``"none"``: the framework has no built-in clipping arguments (the clipping
        properties and rules do not apply).
    ``learning_rate``, ``beta_1``, ``beta_2``, ``epsilon_value``
        The framework's defaults for ``lr``, ``b1``, ``b2``, ``eps``.
    ``description``
        One line: which framework's optimizer this is and what sets it apart.
    ``sparse_magnitude``
        What ``u`` sees for a row that a sparse gradient names more than once (slices ``v_j``):
        ``"abs_of_sum"``: ``|sum_j v_j|``, the magnitude of the summed gradient (Keras 2.9,
        clause SP-1); ``"sum_of_abs"``: ``sum_j |v_j|`` (Keras 3 takes ``|values|`` slice by
        slice before its ``maximum`` densifies them; ``m`` still sees ``sum_j v_j``).  Rows
        named once, and dense gradients, are the same under both.
    ``global_clipnorm_densifies``
        ``True``: ``global_clipnorm`` turns a sparse gradient into a dense one (Keras 3 multiplies
        each gradient by the global scale, and an ``IndexedSlices`` times a tensor is dense), so
        its duplicate rows are summed there and ``u`` sees ``|sum_j v_j|`` whatever
        ``sparse_magnitude`` says (clause SP-1); ``False``: it scales the slices' values and they
        stay slices (Keras 2.9).  The norm is that of the values as given under both (C-1).
    ``step_counter``
        Whose ``t`` the step uses (clause S-2): ``"optimizer"``: one counter, advanced by
        every step, so a parameter without a gradient at step ``k`` sees ``t = k`` at its next
        step; ``"parameter"``: one per parameter, advanced only by the steps that give it a
        gradient (torch.optim's ``state[p]["step"]``).  A parameter without a gradient stays
        bit-identical (w, m, u) under both.
    ``validates_hyperparameters``
        ``True``: the constructor rejects (ValueError naming the argument) ``lr < 0`` or NaN,
        ``b1`` or ``b2`` outside ``[0, 1)`` or NaN, ``eps < 0`` (torch.optim); ``False``: it
        may accept them (clause V-args).
    ``rejects_unknown_kwargs``
        ``True``: a keyword argument the constructor does not have is rejected (TypeError or
        ValueError naming it); ``False``: it may be ignored (clause V-args).
    ``words``
        The short phrase a diagnosis uses for this variant ("the failing case fits variant
        X (<words>)"): what sets its update rule apart, in the notation above.
    ``epsilon_fallback``
        What the constructor makes of ``epsilon=None`` or ``epsilon=0`` (clause H-1): Keras 2.9
        writes ``epsilon or backend.epsilon()``, so both become ``1e-7``; ``None``: the profile
        gives them no meaning (the suite does not pass them).
    ``legacy_decay``
        ``True``: the constructor takes Keras 2.9's legacy ``decay`` argument, which divides
        each step's learning rate by ``1 + decay * iterations`` (clause LR-3); ``False``: the
        framework has no such argument (the suite does not pass it).
    ``selectable``
        ``True``: a profile users select for conformance runs (a ``--profile`` choice of
        ``adamax-conformance``, a column of the ``make report`` matrix), because its
        framework's own optimizer is checked against it; ``False``: a variant known for
        ``--identify`` and diagnoses (and ``Adamax(profile=...)``) only.
    """

    name: str
    epsilon: EpsilonPlacement
    bias_correction: bool
    sparse: Literal["lazy", "dense"]
    hyper_rounding: Literal["float32", "keras3", "dtype"]
    nan_in_max: Literal["keep_decayed", "propagate"]
    clipping: Literal["keras2", "keras3", "none"]
    learning_rate: float
    beta_1: float
    beta_2: float
    epsilon_value: float
    description: str = ""
    sparse_magnitude: Literal["abs_of_sum", "sum_of_abs"] = "abs_of_sum"
    step_counter: Literal["optimizer", "parameter"] = field(default="optimizer", kw_only=True)
    global_clipnorm_densifies: bool = field(default=False, kw_only=True)
    validates_hyperparameters: bool = field(default=False, kw_only=True)
    rejects_unknown_kwargs: bool = field(default=False, kw_only=True)
    words: str = field(default="", kw_only=True)
    epsilon_fallback: float | None = field(default=None, kw_only=True)
    legacy_decay: bool = field(default=False, kw_only=True)
    selectable: bool = field(default=False, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def argument_rule(self, kind: ArgumentRuleKind) -> Expectation:
        """What this profile's constructor does with one kind of bad argument (clause V-args),
        read from ``validates_hyperparameters``, ``rejects_unknown_kwargs`` and ``clipping``."""
        if kind == "hyperparameter_range":
            return "reject" if self.validates_hyperparameters else "may"
        if kind == "unknown_argument":
            return "reject" if self.rejects_unknown_kwargs else "may"
        if kind == "negative_clip":
            return "reject" if self.clipping == "keras2" else "may"
        if kind == "clipnorm_and_global_clipnorm":
            return "may" if self.clipping == "none" else "reject"
        if kind == "clipvalue_and_clipnorm":
            if self.clipping == "keras2":
                return "accept"
            return "reject" if self.clipping == "keras3" else "may"
        raise ValueError(f"kind must be one of {ARGUMENT_RULE_KINDS}, got kind={kind!r}")


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="keras", epsilon="outside", bias_correction=True, sparse="lazy",
            sparse_magnitude="abs_of_sum", hyper_rounding="float32", nan_in_max="keep_decayed",
            clipping="keras2", step_counter="optimizer",
            validates_hyperparameters=False, rejects_unknown_kwargs=True,
            learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon_value=1e-7,
            description="Keras 2.9 tf.keras.optimizers.Adamax (optimizer_v2), = tf_keras legacy",
            words="epsilon outside the max (w -= lr_t*m/(u+eps)), lazy sparse rows",
            epsilon_fallback=1e-7, legacy_decay=True,
            selectable=True,
        ),
        Profile(
            name="keras3", epsilon="outside", bias_correction=True, sparse="dense",
            sparse_magnitude="sum_of_abs", hyper_rounding="keras3", nan_in_max="propagate",
            clipping="keras3", step_counter="optimizer", global_clipnorm_densifies=True,
            validates_hyperparameters=False, rejects_unknown_kwargs=True,
            learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon_value=1e-7,
            description="Keras 3 keras.optimizers.Adamax: sparse gradients are densified, "
                        "u sees the sum of |values|",
            words="epsilon outside the max, sparse gradients densified",
            selectable=True,
        ),
        Profile(
            name="torch", epsilon="inside", bias_correction=True, sparse="dense",
            sparse_magnitude="abs_of_sum", hyper_rounding="dtype", nan_in_max="propagate",
            clipping="none", step_counter="parameter",
            validates_hyperparameters=True, rejects_unknown_kwargs=True,
            learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon_value=1e-8,
            description="torch.optim.Adamax: epsilon inside the max",
            words="epsilon inside the max (u = max(b2*u, |g|+eps))",
            selectable=True,
        ),
        Profile(
            name="optax", epsilon="inside", bias_correction=True, sparse="dense",
            sparse_magnitude="abs_of_sum", hyper_rounding="dtype", nan_in_max="propagate",
            clipping="none", step_counter="optimizer",
            validates_hyperparameters=False, rejects_unknown_kwargs=False,
            learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon_value=1e-8,
            description="optax.adamax: epsilon inside the max (no default learning rate in optax)",
            words="epsilon inside the max (u = max(b2*u, |g|+eps))",
            selectable=True,
        ),
        # Variants found elsewhere: Adamax(profile=...), --identify and diagnoses know them.
        Profile(
            name="paddle", epsilon="inside_decay", bias_correction=True, sparse="dense",
            sparse_magnitude="abs_of_sum", hyper_rounding="dtype", nan_in_max="propagate",
            clipping="none", step_counter="optimizer",
            validates_hyperparameters=False, rejects_unknown_kwargs=False,
            learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon_value=1e-8,
            description="Paddle Adamax: epsilon added to b2*u inside the max (accumulates)",
            words="epsilon added to b2*u inside the max (u = max(b2*u+eps, |g|))",
        ),
        Profile(
            name="mxnet", epsilon="none", bias_correction=True, sparse="dense",
            sparse_magnitude="abs_of_sum", hyper_rounding="dtype", nan_in_max="propagate",
            clipping="none", step_counter="optimizer",
            validates_hyperparameters=False, rejects_unknown_kwargs=False,
            learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon_value=0.0,
            description="MXNet Python Adamax: no epsilon at all",
            words="no epsilon at all",
        ),
        Profile(
            name="mlx", epsilon="outside", bias_correction=False, sparse="dense",
            sparse_magnitude="abs_of_sum", hyper_rounding="dtype", nan_in_max="propagate",
            clipping="none", step_counter="optimizer",
            validates_hyperparameters=False, rejects_unknown_kwargs=False,
            learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon_value=1e-8,
            description="MLX Adamax: no bias correction",
            words="no bias correction",
        ),
    )
}

#: The profiles a user selects for conformance runs (``Profile.selectable``), in record order.
PROFILE_NAMES: tuple[str, ...] = tuple(p.name for p in PROFILES.values() if p.selectable)
#: Every known variant, for identification.
VARIANT_NAMES: tuple[str, ...] = tuple(PROFILES)


def get_profile(profile: str | Profile) -> Profile:
    """Return the profile record for a name (or the record itself)."""
    if isinstance(profile, Profile):
        return profile
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ValueError(
            f"profile must be one of {sorted(PROFILES)}, got profile={profile!r}"
        )
    return PROFILES[profile]
