"""adamax_spec: one Adamax, written once against the Python array API standard.

Default semantics: Keras 2.9 ``tf.keras.optimizers.Adamax``; other frameworks'
variants are named profiles (:mod:`adamax_spec.profiles`).  The normative
specification is ``docs/spec.md``.
"""

from . import schedules
from .core import AdamaxState, Hyper, apply_gradients, init
from .optimizer import Adamax
from .profiles import PROFILES, Profile, get_profile
from .sparse import IndexedSlices
from .state_file import load_state, save_state

__version__ = "0.1.0"

__all__ = [
    "PROFILES",
    "Adamax",
    "AdamaxState",
    "Hyper",
    "IndexedSlices",
    "Profile",
    "apply_gradients",
    "get_profile",
    "init",
    "load_state",
    "save_state",
    "schedules",
]
