"""``repmatch eval``: score a generator on the SW_r,k panel with MMD and FD cross-checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._args import path_arg, print_outputs, show_progress
from ._metric_args import add_metric_args, config_kwargs, print_dry_run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="SW_r,k panel (paper eq. 5, Table 1) plus MMD/FD ratio cross-checks for generated images",
        description="Floor-normalised per-encoder ratios SW(gen, train)/SW(val, train), their mean "
        "SW_r,k and the held-out mean, with RFF-MMD² and Fréchet ratios as cross-checks. Prints a "
        "Table-1-style table and writes eval.json, eval.md and sw_ratios.png to --out.",
    )
    p.add_argument(
        "--gen",
        required=True,
        type=path_arg,
        help="generated images: an image folder, an .npz, a feature store directory, or a "
        "training run directory (its generator is sampled batch by batch, nothing written)",
    )
    p.add_argument("--gen-samples", type=int, default=10000,
                   help="with a run directory as --gen: how many samples to draw (default 10000)")
    p.add_argument("--gen-checkpoint", default=None, type=path_arg,
                   help="with a run directory as --gen: a checkpoint (default: the run's newest)")
    p.add_argument("--train", required=True, type=path_arg, help="train feature store directory (or dataset spec)")
    p.add_argument(
        "--val",
        default=None,
        type=path_arg,
        help="val feature store directory (or dataset spec); optional when stored floors match",
    )
    p.add_argument(
        "--encoders",
        default=None,
        help="panel name or 'a,b,c' (default: every encoder of the train store)",
    )
    p.add_argument("--out", required=True, type=path_arg, help="output directory")
    p.add_argument(
        "--floors", default=None, type=path_arg, help="floors JSON (default: TRAIN/floors.json when present)"
    )
    p.add_argument(
        "--held-out",
        default=None,
        help="'a,b' encoders to mark held out (default: the specs' held_out flags)",
    )
    p.add_argument(
        "--cross-checks",
        default="mmd,fd",
        help="subset of 'mmd,fd', or 'none' (default: %(default)s)",
    )
    p.add_argument(
        "--cross-check-samples", type=int, help="rows per set for MMD/FD (default 50000)"
    )
    p.add_argument("--num-rff", type=int, help="random Fourier features for MMD (default 4096)")
    add_metric_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.config import EvalConfig
    from ..evaluation.report import format_table
    from ..evaluation.run import evaluate

    checks = (
        ()
        if args.cross_checks.strip() == "none"
        else tuple(c.strip() for c in args.cross_checks.split(",") if c.strip())
    )
    config = EvalConfig(
        cross_checks=checks, **config_kwargs(args, "cross_check_samples", "num_rff")
    )
    held = (
        None
        if args.held_out is None
        else [n.strip() for n in args.held_out.split(",") if n.strip()]
    )
    if args.dry_run:
        from ..evaluation.run import resolve_names

        print_dry_run(config, encoders=resolve_names(args.encoders, args.train), gen=args.gen,
                      train=args.train, val=args.val, out=args.out, held_out=held)
        return 0
    progress = show_progress(args)
    gen: Any = args.gen
    if (Path(args.gen) / "config.json").is_file():  # a training run: sample its generator
        from ..generators import GeneratedImages
        from .sample import load_generator

        run = load_generator(args.gen, args.gen_checkpoint, True, config.metric_device)
        gen = GeneratedImages(run.generator, num_samples=args.gen_samples, num_classes=run.num_classes,
                              conditions=run.conditions, seed=config.seed, spec=f"run:{args.gen}")
    result = evaluate(
        gen,
        args.train,
        args.val,
        encoders=args.encoders,
        out_dir=args.out,
        config=config,
        floors_path=args.floors,
        held_out=held,
        progress=progress,
    )
    print(f"{result['floors']}; {result['num_samples']} samples per set")
    print(format_table(result), end="")
    out = Path(args.out)
    print_outputs(("eval", out / "eval.json"), ("table", out / "eval.md"), ("figure", out / "sw_ratios.png"))
    return 0
