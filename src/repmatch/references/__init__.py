"""A run's references, frozen once over a feature store (paper §3.1, eq. 3; App. E.1).

Per encoder ``φ``, one Nyström reference per kernel scale over the pool ``φ(x_j)``, or the
joint features of eq. 4 when the run is conditional, ``Φ(x_j, c_j) = φ(x_j) ⊕ β·τ(c_j)``
(:class:`ClassCondition`, :class:`TextCondition`); with a validation set, the controller's
real floors ``b_φ`` (:func:`training_floors`). Modules, one job each:

- :mod:`.conditions`: ``τ(c)`` and the join of eq. 4 (through
  :func:`repmatch.represent.joint_features`);
- :mod:`.captions`: captions of a store's rows and their text embeddings;
- :mod:`.build`: one encoder's references over an in-memory or streamed pool;
- :mod:`.saved`: one encoder's references on disk, and the eq.-3 loss against them;
- :mod:`.floors`: the training floors and their reliability;
- :mod:`.manifest`, :mod:`.directory`, :mod:`.build_directory`: the references directory
  that ``repmatch references`` writes and the general training task reads.
"""

from .build import build_references, check_scales_tuple
from .build_directory import build_reference_dir
from .captions import embed_captions, store_captions
from .conditions import ClassCondition, Condition, TextCondition
from .directory import References
from .floors import FloorEstimate, training_floors
from .manifest import write_manifest
from .saved import load_references, reference_distance, save_references

__all__ = [
    "ClassCondition",
    "Condition",
    "FloorEstimate",
    "References",
    "TextCondition",
    "build_reference_dir",
    "build_references",
    "check_scales_tuple",
    "embed_captions",
    "load_references",
    "reference_distance",
    "save_references",
    "store_captions",
    "training_floors",
    "write_manifest",
]
