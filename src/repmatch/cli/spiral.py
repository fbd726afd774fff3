"""``repmatch spiral``: the spiral diagnostic of the comparison axis (paper Fig. 3).

The same study as ``repmatch study spiral`` (one code path); ``--seed`` is kept as a one-seed
form of ``--seeds``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._args import add_seed
from .study import add_study_options, run_named


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "spiral",
        help="run the spiral estimator study (paper Fig. 3): figure, table, results.json "
        "(= repmatch study spiral)",
        description="Train one MLP generator per (batch size, distance) cell against a two-turn "
        "spiral embedded in R^64 and score anchor recall / medDist and the neutral SW_r / MMD_r. "
        "Writes spiral.png, spiral.md, results.json and config.json under --out.",
    )
    add_study_options(p)
    add_seed(p, default="--seeds' default", seeds="every cell: one seed, the same as --seeds N",
             dest="seed_alias")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_named("spiral", args)
