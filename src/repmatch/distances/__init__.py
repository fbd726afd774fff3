"""The six training distances behind one interface (paper §3.1, §4.4).

``create(name, **kwargs)`` returns an unfitted :class:`Distance`; ``.fit(reference)`` freezes the
reference side and ``dist(gen_features)`` returns a differentiable scalar loss.
"""

from __future__ import annotations

from typing import Any

from ._base import Distance
from .mmd_nystrom import MMDNystrom, mmd_nystrom_loss

__all__ = ["Distance", "create", "NAMES", "MMDNystrom", "mmd_nystrom_loss"]

_REGISTRY: dict[str, type[Distance]] = {cls.name: cls for cls in (MMDNystrom,)}
NAMES: tuple[str, ...] = tuple(_REGISTRY)


def create(name: str, **kwargs: Any) -> Distance:
    """An unfitted distance by registry name (one of :data:`NAMES`); kwargs go to its class."""
    if name not in _REGISTRY:
        raise ValueError(f"name must be one of {sorted(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name](**kwargs)
