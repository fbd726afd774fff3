"""The six training distances behind one interface (paper §3.1, §4.4).

``create(name, **kwargs)`` returns an unfitted :class:`Distance`; ``.fit(reference)`` freezes the
reference side and ``dist(gen_features)`` returns a differentiable scalar loss. Names:
``mmd_nystrom`` (iRDM, eq. 3), ``mmd_exact``, ``mmd_rff``, ``frechet``, ``sliced_wasserstein``,
``drifting``.
"""

from __future__ import annotations

from typing import Any

from ._base import Distance
from .drifting import Drifting, drifting_field, drifting_loss
from .frechet import Frechet, frechet_distance, sqrtm_psd
from .mmd_exact import MMDExact, mmd_exact_loss
from .mmd_nystrom import MMDNystrom, mmd_nystrom_loss
from .mmd_rff import MMDRFF, rff_features
from .sliced_wasserstein import SlicedWasserstein, random_projections, sliced_wasserstein_loss

__all__ = [
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

_REGISTRY: dict[str, type[Distance]] = {
    cls.name: cls for cls in (MMDNystrom, MMDExact, MMDRFF, Frechet, SlicedWasserstein, Drifting)
}
NAMES: tuple[str, ...] = tuple(_REGISTRY)


def create(name: str, **kwargs: Any) -> Distance:
    """An unfitted distance by registry name (one of :data:`NAMES`); kwargs go to its class."""
    if name not in _REGISTRY:
        raise ValueError(f"name must be one of {sorted(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name](**kwargs)
