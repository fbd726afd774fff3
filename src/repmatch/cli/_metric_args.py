"""Argument groups shared by the ``floors`` and ``eval`` verbs (flags map onto ``EvalConfig``).

Flags default to ``None`` and only given flags are passed on, so ``EvalConfig`` alone holds
the defaults (and ``repmatch --help`` need not import torch to print them).
"""

from __future__ import annotations

import argparse
from typing import Any

from ._args import add_common, print_json, resolve_device


def add_metric_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("metric settings (defaults: EvalConfig, the paper's values)")
    g.add_argument("--num-samples", type=int, help="rows per set for SW (default 16384)")
    g.add_argument("--num-projections", type=int, help="SW projections (default 1024)")
    g.add_argument(
        "--chunk-size",
        type=int,
        help="projections per chunk; bounds memory, not results (default 128)",
    )
    g.add_argument(
        "--batch-size", type=int, help="images per forward pass when extracting (default 256)"
    )
    add_common(parser, device="EvalConfig's: metrics on the CPU, extraction on CUDA when available",
               seed="the projections, the RFF map and the subsamples", seed_default="EvalConfig's, 0",
               dry_run="the resolved settings (EvalConfig, encoders, inputs)")


def print_dry_run(config: Any, **inputs: Any) -> int:
    """The resolved ``EvalConfig`` and the verb's inputs, as JSON; exit status 0."""
    import dataclasses

    return print_json({"config": dataclasses.asdict(config), **inputs})


def config_kwargs(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """The ``EvalConfig`` fields given on the command line (``--device auto`` resolved)."""
    fields = (
        "num_samples",
        "num_projections",
        "seed",
        "chunk_size",
        "device",
        "batch_size",
        *extra,
    )
    given = {f: getattr(args, f) for f in fields if getattr(args, f, None) is not None}
    if "device" in given:
        given["device"] = resolve_device(given["device"])
    return given
