"""Evaluation I/O: features in, floors and SW_r,k reports out (the ``floors``/``eval`` verbs).

The math lives in :mod:`repmatch.metrics` (pure functions of features); this package reads
feature stores, extracts missing features through the encoder battery, stores floors with
their fingerprints, and writes JSON, markdown and PNG reports.

Exports are resolved lazily so that the CLI verb modules in this package can be imported by
``repmatch --help`` without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalConfig": "config",
    "FeatureSource": "sources",
    "Floors": "floors",
    "compute_floors": "floors",
    "evaluate": "run",
    "format_table": "report",
    "load_floors": "floors",
    "open_source": "sources",
    "plot_ratios": "report",
    "save_floors": "floors",
}

__all__ = [
    "EvalConfig",
    "FeatureSource",
    "Floors",
    "compute_floors",
    "evaluate",
    "format_table",
    "load_floors",
    "open_source",
    "plot_ratios",
    "save_floors",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
