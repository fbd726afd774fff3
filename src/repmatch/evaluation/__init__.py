"""Evaluation I/O: features in, floors and SW_r,k reports out (what ``repmatch floors`` and
``repmatch eval`` run).

The math lives in :mod:`repmatch.metrics` (pure functions of features); this package reads
feature stores, extracts missing features through the encoder battery, stores floors with
their fingerprints, and writes JSON, markdown and PNG reports. It never imports the training
loss path.
"""

from .config import EvalConfig
from .floors import FLOORS_FILE, Floors, load_floors, metric_floors, save_floors
from .report import format_table, plot_ratios
from .run import evaluate, resolve_names
from .sources import FeatureSource, open_source

__all__ = [
    "FLOORS_FILE",
    "EvalConfig",
    "FeatureSource",
    "Floors",
    "evaluate",
    "format_table",
    "load_floors",
    "metric_floors",
    "open_source",
    "plot_ratios",
    "resolve_names",
    "save_floors",
]
