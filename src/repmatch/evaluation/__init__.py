"""Evaluation I/O: features in, floors and SW_r,k reports out (the ``floors``/``eval`` verbs).

The math lives in :mod:`repmatch.metrics` (pure functions of features); this package reads
feature stores, extracts missing features through the encoder battery, stores floors with
their fingerprints, and writes JSON, markdown and PNG reports.

Exports are resolved lazily so that the CLI verb modules in this package can be imported by
``repmatch --help`` without importing torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "EvalConfig": ".config",
    "FeatureSource": ".sources",
    "Floors": ".floors",
    "compute_floors": ".floors",
    "evaluate": ".run",
    "format_table": ".report",
    "load_floors": ".floors",
    "open_source": ".sources",
    "plot_ratios": ".report",
    "save_floors": ".floors",
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
assert set(__all__) == set(_EXPORTS)  # one list of public names, checked at import
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
