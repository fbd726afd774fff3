"""The task registry: ``TrainConfig.task`` names → task config types.

:data:`TASKS` is a :class:`repmatch.registry.Registry` of kind ``"task"``: the library's own
``general`` (:class:`repmatch.train.GeneralTask`), the tasks that installed packages declare in
the entry-point group ``repmatch.tasks`` (the applications' ``toy`` and ``fmnist``), and any
``"module:attribute"``. Each entry is a :class:`repmatch.train.TaskConfig` type: a frozen
dataclass with a ``name`` and ``build(config, device) -> TrainTask``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..registry import Registry
from .general import GeneralTask


def _check_task_type(key: str, obj: Any) -> None:
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj) and callable(getattr(obj, "build", None))
            and isinstance(getattr(obj, "name", None), str)):
        raise TypeError(
            f"{key}: {obj!r} is not a task config type (a dataclass with a name and build(config, device))"
        )


#: Task names → task config types (see the module doc).
TASKS: Registry[type] = Registry("task", check=_check_task_type)
TASKS.register("general", GeneralTask)
