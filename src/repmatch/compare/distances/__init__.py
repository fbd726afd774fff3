"""The six training distances behind one interface (paper §3.1, §4.4).

``create(name, **kwargs)`` returns an unfitted :class:`Distance`; ``.fit(reference)`` freezes the
reference side and ``dist(gen_features)`` returns a differentiable scalar loss. Names:
``mmd_nystrom`` (iRDM, eq. 3), ``mmd_exact``, ``mmd_rff``, ``frechet``, ``sliced_wasserstein``,
``drifting``. They are the library's entries of :data:`DISTANCES`, a
:class:`repmatch.registry.Registry`; an installed package adds a :class:`Distance` subclass
through the entry-point group ``repmatch.distances``, and ``"module:Class"`` is accepted
wherever a name is.
"""

from __future__ import annotations

from typing import Any

from ...registry import Registry
from ._base import Distance
from .drifting import Drifting, drifting_field, drifting_loss
from .frechet import Frechet, frechet_distance, sqrtm_psd
from .mmd_exact import MMDExact, mmd_exact_loss
from .mmd_nystrom import MMDNystrom, mmd_nystrom_loss
from .mmd_rff import MMDRFF, rff_features
from .sliced_wasserstein import SlicedWasserstein, random_projections, sliced_wasserstein_loss

__all__ = [
    "DISTANCES",
    "MMDRFF",
    "NAMES",
    "Distance",
    "Drifting",
    "Frechet",
    "MMDExact",
    "MMDNystrom",
    "SlicedWasserstein",
    "create",
    "drifting_field",
    "drifting_loss",
    "frechet_distance",
    "mmd_exact_loss",
    "mmd_nystrom_loss",
    "random_projections",
    "rff_features",
    "sliced_wasserstein_loss",
    "sqrtm_psd",
]

def _check_distance(key: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Distance)):
        raise TypeError(f"{key}: expected a Distance subclass, got {obj!r}")


#: Distance name -> its :class:`Distance` subclass (entry-point group ``repmatch.distances``).
DISTANCES: Registry[type[Distance]] = Registry("distance", group="repmatch.distances", check=_check_distance)
#: The library's six distances (a plugin's are in :data:`DISTANCES`).
NAMES: tuple[str, ...] = tuple(
    DISTANCES.register(cls.name, cls).name
    for cls in (MMDNystrom, MMDExact, MMDRFF, Frechet, SlicedWasserstein, Drifting)
)


def create(name: str, **kwargs: Any) -> Distance:
    """An unfitted distance by registry name (:data:`NAMES`, a plugin's, or ``"module:Class"``);
    kwargs go to its class."""
    return DISTANCES.get(name, key="name")(**kwargs)
