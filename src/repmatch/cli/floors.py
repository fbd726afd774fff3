"""``repmatch floors``: compute and store the real floors SW(val, train) per encoder."""

from __future__ import annotations

import argparse
from typing import Any

from ._args import path_arg, print_outputs, show_progress
from ._metric_args import add_metric_args, config_kwargs, print_dry_run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "floors",
        help="compute the real floors SW(val, train) per encoder and store them with fingerprints",
        description="Compute SW(val, train) per encoder (the denominators of the SW_r,k ratio, paper "
        "eq. 5) on seeded subsamples and store them, with the feature fingerprints and settings, "
        "as JSON. `repmatch eval` reuses them when everything matches.",
    )
    p.add_argument("--train", required=True, type=path_arg, help="train feature store directory (or dataset spec)")
    p.add_argument("--val", required=True, type=path_arg, help="val feature store directory (or dataset spec)")
    p.add_argument(
        "--encoders",
        default=None,
        help="panel name or 'a,b,c' (default: every encoder of the train store)",
    )
    p.add_argument("--out", default=None, type=path_arg, help="floors JSON path (default: TRAIN/floors.json)")
    p.add_argument(
        "--cache-dir",
        default=None,
        type=path_arg,
        help="where missing features are extracted (default: next to --out)",
    )
    add_metric_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluation.config import EvalConfig
    from ..evaluation.floors import FLOORS_FILE, metric_floors, save_floors
    from ..evaluation.run import resolve_names
    from ..evaluation.sources import open_source

    config = EvalConfig(cross_checks=(), **config_kwargs(args))
    names = resolve_names(args.encoders, args.train)
    out = Path(args.out) if args.out else Path(args.train) / FLOORS_FILE
    if args.dry_run:
        return print_dry_run(config, encoders=names, train=args.train, val=args.val, out=out)
    progress = show_progress(args)
    kw: dict[str, Any] = {
        "cache_dir": Path(args.cache_dir) if args.cache_dir else out.parent / "features",
        "batch_size": config.batch_size,
        "device": config.device,
        "progress": progress,
    }
    train = open_source(args.train, names, role="train", **kw)
    val = open_source(args.val, names, role="val", **kw)
    floors = metric_floors(train, val, names, config, progress=progress)
    save_floors(out, floors)
    width = max(len(n) for n in names)
    print(
        f"SW(val, train) floors, {floors.num_samples} samples per set, {floors.num_projections} projections, seed {floors.seed}:"
    )
    for name in names:
        print(f"  {name:<{width}}  {floors.values[name]:.6g}")
    print_outputs(("floors", out))
    return 0
