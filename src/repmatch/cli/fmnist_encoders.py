"""``repmatch fmnist-encoders``: train the in-project Fashion-MNIST encoders into the weight cache."""

from __future__ import annotations

import argparse
import json

from ._args import add_common, path_arg, print_json, print_outputs, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fmnist-encoders",
        help="train the in-project Fashion-MNIST encoders (fmnist_classifier, fmnist_autoencoder)",
        description="Train the Fashion-MNIST encoders on the 60k train split (seeded, CPU-friendly) "
        "and write <name>.safetensors to --out (default $REPMATCH_CACHE/fmnist or "
        "~/.cache/repmatch/fmnist). Non-default recipe flags produce weights that load only with "
        "create(name, options=<recipe>).",
    )
    p.add_argument("--encoders", default="fmnist_classifier,fmnist_autoencoder", help="comma-separated subset to train")
    p.add_argument("--epochs", type=int, default=None, help="passes over the train split (default: the registered recipe)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the registered recipe")
    p.add_argument("--lr", type=float, default=None, help="peak Adam learning rate (default: the registered recipe)")
    p.add_argument("--train-rows", type=int, default=None, help="train on the first N rows only (default: all 60000)")
    p.add_argument("--out", default=None, type=path_arg, help="output directory (default: the weight cache create() reads)")
    # The encoders train on the CPU: no --device.
    add_common(p, seed="the weight init and the batch order", seed_default="the registered recipe's",
               dry_run="the resolved recipe")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..validate import check_choice
    from ..apps.fmnist.encoders import (
        FMNIST_ENCODERS,
        FmnistTrainConfig,
        fmnist_cache_dir,
        train_fmnist_encoder,
    )

    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    for n in names:
        check_choice("encoders", n, FMNIST_ENCODERS)
    overrides = {
        k: getattr(args, k)
        for k in ("epochs", "batch_size", "lr", "seed", "train_rows")
        if getattr(args, k) is not None
    }
    config = dataclasses.replace(FmnistTrainConfig(), **overrides)
    out = args.out if args.out is not None else str(fmnist_cache_dir())
    if args.dry_run:
        return print_json({"encoders": names, "recipe": config.recipe(), "out": out})
    weights = []
    for name in names:
        report = train_fmnist_encoder(name, config, out_dir=out, progress=show_progress(args))
        print(json.dumps(report))
        weights.append(("weights", report["path"]))
    print_outputs(*weights)
    return 0
