"""Profiles: the named variants of Adamax, as small declarative records.

Every variant shares the skeleton (clauses S-* of ``docs/spec.md``)::

    t  = t + 1
    m  = b1 * m + (1 - b1) * g
    u  = <infinity-norm rule>            # ``Profile.infinity_norm``
    w  = w - lr * c(t) * m / <denominator>  # ``c(t) = 1 / (1 - b1**t)`` or 1

and differ only in where epsilon goes, whether the step is bias corrected, how
sparse gradients are applied, how hyperparameters are rounded, and their
defaults.  Adding a variant is one record here plus nothing else: the
implementation and the independent reference both read these fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["PROFILES", "PROFILE_NAMES", "VARIANT_NAMES", "Profile", "get_profile"]

EpsilonPlacement = Literal["outside", "inside", "inside_decay", "none"]


@dataclass(frozen=True)
class Profile:
    """One Adamax variant.

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
    ``sparse_magnitude``
        What ``u`` sees for a row that a sparse gradient names more than once (slices ``v_j``):
        ``"abs_of_sum"``: ``|sum_j v_j|``, the magnitude of the summed gradient (Keras 2.9,
        clause SP-1); ``"sum_of_abs"``: ``sum_j |v_j|`` (Keras 3 takes ``|values|`` slice by
        slice before its ``maximum`` densifies them; ``m`` still sees ``sum_j v_j``).  Rows
        named once, and dense gradients, are the same under both.
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
        What the dense ``max`` does with a NaN ``|g|``: ``"keep_decayed"`` keeps
        ``b2*u`` (Eigen's ``cwiseMax``, Keras dense kernel), ``"propagate"`` gives NaN.
    ``clipping``
        ``"keras2"``: clipvalue, then clipnorm, then global_clipnorm, each may be set;
        ``"keras3"``: at most one of them; ``"none"``: the framework has no built-in clipping.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "keras", "outside", True, "lazy", "float32", "keep_decayed", "keras2",
            0.001, 0.9, 0.999, 1e-7,
            "Keras 2.9 tf.keras.optimizers.Adamax (optimizer_v2), = tf_keras legacy",
        ),
        Profile(
            "keras3", "outside", True, "dense", "keras3", "propagate", "keras3",
            0.001, 0.9, 0.999, 1e-7,
            "Keras 3 keras.optimizers.Adamax: sparse gradients are densified, u sees the sum of |values|",
            sparse_magnitude="sum_of_abs",
        ),
        Profile(
            "torch", "inside", True, "dense", "dtype", "propagate", "none",
            0.002, 0.9, 0.999, 1e-8,
            "torch.optim.Adamax: epsilon inside the max",
        ),
        Profile(
            "optax", "inside", True, "dense", "dtype", "propagate", "none",
            0.002, 0.9, 0.999, 1e-8,
            "optax.adamax: epsilon inside the max (no default learning rate in optax)",
        ),
        # Variants found elsewhere; used by --identify, selectable like any other.
        Profile(
            "paddle", "inside_decay", True, "dense", "dtype", "propagate", "none",
            0.001, 0.9, 0.999, 1e-8,
            "Paddle Adamax: epsilon added to b2*u inside the max (accumulates)",
        ),
        Profile(
            "mxnet", "none", True, "dense", "dtype", "propagate", "none",
            0.002, 0.9, 0.999, 0.0,
            "MXNet Python Adamax: no epsilon at all",
        ),
        Profile(
            "mlx", "outside", False, "dense", "dtype", "propagate", "none",
            0.001, 0.9, 0.999, 1e-8,
            "MLX Adamax: no bias correction",
        ),
    )
}

#: The four profiles a user selects for conformance runs.
PROFILE_NAMES: tuple[str, ...] = ("keras", "keras3", "torch", "optax")
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
