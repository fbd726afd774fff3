"""Training one-step generators against a frozen encoder battery (paper §3.2–3.3).

:func:`train` runs one readable loop (intervals counted in images, resume-from-latest) over a
:class:`TrainTask` it receives: generator, training encoders, distances, floors. Around it:
``cached_backward`` (gradient caching), ``LagrangianController``/``ControllerConfig``
(per-encoder weights), ``distributed_cached_backward``/``gather_features``
(``torch.distributed``), the run-state toolkit of :mod:`repmatch.train.checkpoint`, and the
configuration dataclasses: :class:`TrainConfig` (the loop) holding a task section
(:class:`GeneralTask`, or an application's, found by name in :data:`TASKS`). The references and
real floors a task trains against are built by :mod:`repmatch.references`.
"""

from .checkpoint import (
    append_stats,
    ema_update_,
    latest_checkpoint,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
    truncate_stats,
)
from .config import (
    TASKS,
    IntervalConfig,
    JointConfig,
    LoopConfig,
    OptimConfig,
    TaskBuilder,
    TaskConfig,
    TrainConfig,
)
from .controller import ControllerConfig, LagrangianController, scale_free
from .distributed import close_distributed, distributed_cached_backward, gather_features
from .general import GeneralTask, general_task
from .gradcache import cached_backward
from .loop import NonFiniteTrainingError, train
from .runs import load_run_generator
from .task import TrainTask

__all__ = [
    "ControllerConfig",
    "GeneralTask",
    "IntervalConfig",
    "JointConfig",
    "LagrangianController",
    "LoopConfig",
    "OptimConfig",
    "TASKS",
    "TaskBuilder",
    "TaskConfig",
    "TrainConfig",
    "TrainTask",
    "append_stats",
    "cached_backward",
    "close_distributed",
    "distributed_cached_backward",
    "ema_update_",
    "gather_features",
    "general_task",
    "latest_checkpoint",
    "load_checkpoint",
    "load_latest_checkpoint",
    "load_run_generator",
    "save_checkpoint",
    "scale_free",
    "train",
    "NonFiniteTrainingError",
    "truncate_stats",
]
