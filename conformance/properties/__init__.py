"""The suite's properties, one per checked clause of ``docs/spec.md``, in the order they run.

Each module holds one chapter of the spec: its :class:`~adamax_spec.conformance.property.Property`
records and their check functions (a property without a check is judged by the reference:
:mod:`.judging`).  A property's ``id`` is the id of the clause it checks; the ids the suite used
before (``U-dense``, ``SP-sparse``, ...) are still accepted where a user types one (``--only``,
an ``--xfails`` file) through :func:`resolve`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..property import Property
from .checkpoints import CK_1
from .clipping import C_1
from .groups import G_1
from .hyperparameters import H_1
from .inputs_dtype_device import D_1, I_1
from .learning_rates import LR_1
from .missing_gradients import S_2
from .nonfinite import N_1
from .sparse import SP_1
from .state_and_step import INV_MOMENTS, T_1, U_1, U_2, U_3
from .validation import V_ARGS

__all__ = ["DEPRECATED_IDS", "IDS", "PROPERTIES", "by_id", "resolve", "resolve_all"]

#: Every property, in the order a run checks them.
PROPERTIES: list[Property] = [U_1, U_2, U_3, H_1, SP_1, T_1, S_2, C_1, LR_1, CK_1, G_1, N_1, INV_MOMENTS, I_1,
                              D_1, V_ARGS]
#: Their ids (each a clause id of docs/spec.md), in that order.
IDS: tuple[str, ...] = tuple(p.id for p in PROPERTIES)

#: Deprecated property ids (before the properties took their clause's id) -> the clause id.
#: The one table of aliases: ``--only``, ``--xfails`` files and :func:`by_id` read it through
#: :func:`resolve`.  Reports and reproducers always print the clause id.
DEPRECATED_IDS: dict[str, str] = {
    "U-dense": "U-1",
    "U-dtypes": "U-2",
    "U-long": "U-3",
    "SP-sparse": "SP-1",
    "T-counter": "T-1",
    "S-none": "S-2",
    "C-clip": "C-1",
    "LR-schedule": "LR-1",
    "CK-checkpoint": "CK-1",
    "G-groups": "G-1",
    "N-nonfinite": "N-1",
    "I-inputs": "I-1",
    "D-dtype": "D-1",
}


def resolve(prop_id: str) -> str:
    """The clause id of a property named by its id or by a deprecated id; ``ValueError`` naming
    ``prop_id`` if no property has it."""
    if prop_id in IDS:
        return prop_id
    if prop_id in DEPRECATED_IDS:
        return DEPRECATED_IDS[prop_id]
    raise ValueError(f"unknown property id {prop_id!r}; known: {', '.join(IDS)}")


def resolve_all(prop_ids: Iterable[str]) -> list[str]:
    """:func:`resolve` of each id, in the order given; one ``ValueError`` naming every unknown id
    (in the order given) and the known ids."""
    ids = list(prop_ids)
    unknown = [i for i in ids if i not in IDS and i not in DEPRECATED_IDS]
    if unknown:
        raise ValueError(f"unknown property id {', '.join(map(repr, unknown))}; known: {', '.join(IDS)}")
    return [resolve(i) for i in ids]


def by_id(prop_id: str) -> Property:
    """The property with this id (or deprecated id); ``ValueError`` if there is none."""
    wanted = resolve(prop_id)
    return next(p for p in PROPERTIES if p.id == wanted)
