"""The command line's one table: its verbs and training presets.

Entries are dotted strings (``"module:attribute"``) so that ``repmatch --help`` imports none of
them (torch stays unloaded); :func:`load` resolves one on use. The applications' studies,
encoders and training tasks are not listed here: they are entry points in ``pyproject.toml``,
found through the library's registries (docs/architecture.md, "Extending repmatch").
"""

from __future__ import annotations

import importlib
from typing import Any

#: Verb modules, in the order ``repmatch --help`` shows them; each has ``register(subparsers)``.
VERBS: tuple[str, ...] = (
    "repmatch.cli.fmnist_encoders",
    "repmatch.cli.features",
    "repmatch.cli.references",
    "repmatch.cli.floors",
    "repmatch.cli.train",
    "repmatch.cli.sample",
    "repmatch.cli.teacher",
    "repmatch.cli.eval",
    "repmatch.cli.report",
    "repmatch.cli.study",
    "repmatch.cli.fmnist",
)

#: ``repmatch train --preset NAME``: a function ``(run_dir=None) -> TrainConfig``.
PRESETS: dict[str, str] = {
    "toy": "repmatch.apps.toy:toy",
    "toy_conditional": "repmatch.apps.toy:toy_conditional",
    "fmnist-tiny": "repmatch.apps.fmnist.task:fmnist_tiny_arm",
    "fmnist-cpu": "repmatch.apps.fmnist.task:fmnist_cpu_arm",
    "fmnist": "repmatch.apps.fmnist.task:fmnist_arm",
}


def load(target: str) -> Any:
    """The object a ``"module:attribute"`` entry names."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
