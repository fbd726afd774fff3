"""Training one-step generators against a frozen encoder battery (paper §3.2–3.3).

Public API (imported lazily so that ``repmatch --help`` does not import torch):
``cached_backward`` (gradient caching), ``LagrangianController``/``ControllerConfig``
(per-encoder weights), ``FewStepGenerator``/``Generator`` (generator interface),
``TrainConfig`` and friends, ``train`` (the loop), ``get_preset``.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "cached_backward": ".gradcache",
    "ControllerConfig": ".controller",
    "LagrangianController": ".controller",
    "scale_free": ".controller",
    "Generator": ".generator",
    "FewStepGenerator": ".generator",
    "MLPGenerator": ".generator",
    "distributed_cached_backward": ".distributed",
    "gather_features": ".distributed",
    "TrainConfig": ".config",
    "OptimConfig": ".config",
    "IntervalConfig": ".config",
    "JointConfig": ".config",
    "TrainTask": ".task",
    "register_task": ".task",
    "train": ".loop",
    "get_preset": ".presets",
    "PRESETS": ".presets",
    "joint_features": ".joint",
    "ConditionPool": ".joint",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605  (a list at run time)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
