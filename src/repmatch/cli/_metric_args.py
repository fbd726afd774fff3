"""Argument groups shared by the ``floors`` and ``eval`` verbs (flags map onto ``EvalConfig``).

Flags default to ``None`` and only given flags are passed on, so ``EvalConfig`` alone holds
the defaults (and ``repmatch --help`` need not import torch to print them).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._args import add_progress_flag


def add_metric_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("metric settings (defaults: EvalConfig, the paper's values)")
    g.add_argument("--num-samples", type=int, help="rows per set for SW (default 16384)")
    g.add_argument("--num-projections", type=int, help="SW projections (default 1024)")
    g.add_argument("--seed", type=int, help="fixes projections, RFF map and subsamples (default 0)")
    g.add_argument(
        "--chunk-size",
        type=int,
        help="projections per chunk; bounds memory, not results (default 128)",
    )
    g.add_argument(
        "--device",
        help="where metrics and extraction run (default: cpu; extraction uses cuda if present)",
    )
    g.add_argument(
        "--batch-size", type=int, help="images per forward pass when extracting (default 256)"
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved settings (EvalConfig, encoders, inputs) and exit")
    add_progress_flag(parser)


def print_dry_run(config: Any, **inputs: Any) -> None:
    """The resolved ``EvalConfig`` and the verb's inputs, as JSON."""
    import dataclasses
    import json

    print(json.dumps({"config": dataclasses.asdict(config), **inputs}, indent=2, default=str))


def config_kwargs(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """The ``EvalConfig`` fields given on the command line."""
    fields = (
        "num_samples",
        "num_projections",
        "seed",
        "chunk_size",
        "device",
        "batch_size",
        *extra,
    )
    return {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
