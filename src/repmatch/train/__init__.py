"""Training one-step generators against a frozen encoder battery (paper §3.2–3.3).

Public API (imported lazily so that ``repmatch --help`` does not import torch):
``cached_backward`` (gradient caching), ``LagrangianController``/``ControllerConfig``
(per-encoder weights), ``FewStepGenerator``/``Generator`` (generator interface),
``TrainConfig`` and friends, ``train`` (the loop), ``get_preset``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "cached_backward": "gradcache",
    "ControllerConfig": "controller",
    "LagrangianController": "controller",
    "scale_free": "controller",
    "Generator": "generator",
    "FewStepGenerator": "generator",
    "MLPGenerator": "generator",
    "distributed_cached_backward": "distributed",
    "gather_features": "distributed",
    "TrainConfig": "config",
    "OptimConfig": "config",
    "IntervalConfig": "config",
    "TrainTask": "task",
    "register_task": "task",
    "train": "loop",
    "get_preset": "presets",
    "PRESETS": "presets",
    "JointFeatures": "joint",
    "ConditionPool": "joint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
