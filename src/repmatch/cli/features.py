"""``repmatch features``: extract a dataset's features under a set of encoders into a feature store."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import AUTO, add_common, path_arg, print_json, print_outputs, resolve_device, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="extract encoder features of a dataset into a sharded, resumable store",
        description="Run every encoder on every image of --data in one pass and write "
        "shard-NNNNN.safetensors files plus manifest.json to --out. Re-running the same command "
        "after an interruption keeps the finished shards and computes the rest.",
    )
    p.add_argument("--data", required=True, type=path_arg, help="fmnist:train | fmnist:test | path/to/image_folder | path/to/images.npz")
    p.add_argument("--labels", choices=["subfolder"], default=None,
                   help="image folders only: take each image's class from its subfolder name (default: unlabelled)")
    p.add_argument("--encoders", required=True, help="comma-separated encoder names, or one panel name (e.g. fmnist)")
    p.add_argument("--out", required=True, type=path_arg, help="output store directory (resumed if it holds the same extraction)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--shard-size", type=int, default=10000, help="rows per shard file, the unit of resumption (default 10000)")
    p.add_argument("--num-workers", type=int, default=2, help="DataLoader worker processes (default 2; 0 = load in-process)")
    p.add_argument("--limit", type=int, default=None, help="use only the first LIMIT images")
    add_common(p, device=AUTO, dry_run="the resolved settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import open_dataset
    from ..features.extract import extract_features, resolve_encoder_names

    if args.labels is not None and not Path(args.data).expanduser().is_dir():
        raise ValueError(
            f"--labels {args.labels}: only for an image folder, and --data {args.data!r} is not one "
            "(an .npz carries its own 'labels' array; fmnist splits are labelled)"
        )
    dataset = open_dataset(args.data, labels=args.labels)
    names = resolve_encoder_names(args.encoders)
    if args.dry_run:
        resolved = {
            "data": getattr(dataset, "spec", args.data),
            "rows": len(dataset) if args.limit is None else min(args.limit, len(dataset)),
            "encoders": names,
            **{k: getattr(args, k) for k in ("out", "batch_size", "shard_size", "num_workers", "limit", "device")},
        }
        return print_json(resolved)
    store = extract_features(
        dataset,
        names,
        args.out,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        num_workers=args.num_workers,
        limit=args.limit,
        device=resolve_device(args.device),
        progress=show_progress(args),
    )
    print(store)
    print_outputs(("features", args.out))
    return 0
