"""``repmatch spiral``: the spiral diagnostic of the comparison axis (paper Fig. 3)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _csv(kind: type) -> Any:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
    return parse


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "spiral",
        help="run the spiral estimator study (paper Fig. 3): figure, table, results.json",
        description="Train one MLP generator per (batch size, distance) cell against a two-turn "
        "spiral embedded in R^64 and score anchor recall / medDist. Writes spiral.png, spiral.md, "
        "results.json and config.json under --out.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--arms", type=_csv(str), default=None,
                   help="comma-separated arms (default: all six: frechet,sliced_wasserstein,"
                   "drifting,mmd_rff,mmd_exact,mmd_nystrom)")
    p.add_argument("--batch-sizes", type=_csv(int), default=None, help="comma-separated (default 8,32,128)")
    p.add_argument("--iterations", type=int, default=None, help="training steps per cell (default 8000)")
    p.add_argument("--seed", type=int, default=None, help="seed of every random stream (default 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes, one thread each (default: one per usable CPU, at most one "
                   "per cell; 1 runs in-process)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 40 iterations, in-process, 1000 evaluation samples")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..apps.spiral.report import write_spiral_outputs
    from ..apps.spiral.study import SpiralConfig, quick_config, run_spiral, with_overrides

    try:
        base = quick_config() if args.quick else SpiralConfig()
        config = with_overrides(
            base, arms=args.arms, batch_sizes=args.batch_sizes, iterations=args.iterations,
            seed=args.seed, workers=args.workers,
        )
    except (ValueError, TypeError) as err:
        print(f"repmatch spiral: error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    result = run_spiral(config, progress=not args.no_progress)
    paths = write_spiral_outputs(result, args.out)
    with open(paths["table"], encoding="utf-8") as f:
        print(f.read(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
