"""``repmatch sample``: draw images from a trained generator's run directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._args import AUTO, add_common, path_arg, print_json, print_outputs, resolve_device, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="draw images from a trained generator (its run directory)",
        description="Rebuild the generator of --run-dir from its config.json, load its newest "
        "checkpoint (or --checkpoint; EMA weights when the run kept them) and write --num "
        "samples, class-balanced when the run is conditional: to an .npz (uint8 images, labels) "
        "or, for any other --out, as PNG files (one subfolder per class when conditional).",
    )
    p.add_argument("--run-dir", required=True, type=path_arg, help="a training run directory (repmatch train)")
    p.add_argument("--checkpoint", default=None, type=path_arg, help="a checkpoint file (default: the run's newest)")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, type=path_arg, help="FILE.npz, or a directory for PNG files")
    p.add_argument("--no-ema", action="store_true", help="the raw weights even when the run kept an EMA")
    add_common(p, device=AUTO, seed="the noise",
               dry_run="what would be written (the generator is loaded, on the CPU)")
    p.set_defaults(func=run)


def load_generator(run_dir: str, checkpoint: str | None, ema: bool, device: str) -> Any:
    """The run's :class:`repmatch.train.runs.RunGenerator` (its task rebuilt from its
    ``config.json``)."""
    from ..train.runs import load_run_generator

    return load_run_generator(run_dir, checkpoint=checkpoint, ema=ema, device=device)


def run(args: argparse.Namespace) -> int:
    from ..io import atomic_write_json
    from ..progress import bar
    from ..generators import GeneratedImages, write_samples_npz
    from ..images import make_grid, save_png
    from ..train.checkpoint import latest_checkpoint

    progress = show_progress(args)
    # A plan may be meant for another machine: a dry run loads the generator on the CPU.
    device = "cpu" if args.dry_run else resolve_device(args.device)
    run = load_generator(args.run_dir, args.checkpoint, not args.no_ema, device)
    out = Path(args.out)
    if args.dry_run:
        return print_json({
            "run_dir": args.run_dir,
            "checkpoint": str(args.checkpoint or latest_checkpoint(args.run_dir)),
            "weights": "raw" if args.no_ema else "EMA when the run kept one",
            "num": args.num, "seed": args.seed, "num_classes": run.num_classes,
            "text_conditioned": run.captions is not None,
            "out": str(out), "format": "npz" if out.suffix == ".npz" else "png folder",
            "device": args.device,
        })
    kw = {"num_samples": args.num, "num_classes": run.num_classes, "conditions": run.conditions, "seed": args.seed}
    if out.suffix == ".npz":
        write_samples_npz(run.generator, out, progress=progress, **kw)
    else:
        images = GeneratedImages(run.generator, **kw)
        for i in bar(range(len(images)), desc="samples", unit="img", enabled=progress):
            image, label = images[i]
            folder = out / str(label) if run.num_classes else out
            save_png(folder / f"{i:06d}.png", make_grid(image[None], nrow=1, pad=0))
    kind = f"class-balanced over {run.num_classes} classes" if run.num_classes else "unconditional"
    outputs = [("samples", out)]
    if run.captions is not None:
        # Row i was conditioned on caption i mod P of the reference pool.
        used = [run.captions[i % len(run.captions)] for i in range(args.num)]
        captions = atomic_write_json(out.with_name(out.stem + ".captions.json"), used)
        kind = f"conditioned on the references' captions, listed in {captions.name}"
        outputs.append(("captions", captions))
    print(f"wrote {args.num} samples ({kind})")
    print_outputs(*outputs)
    return 0
