"""``repmatch teacher``: train (or resume) the few-step Fashion-MNIST flow-matching teacher."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from ._args import AUTO, add_common, path_arg, print_json, print_outputs, resolve_device, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "teacher",
        help="train the class-conditional flow-matching teacher on Fashion-MNIST (resumable)",
        description="Train a class-conditional rectified-flow velocity U-Net on the Fashion-MNIST "
        "train split; its 4-step Euler sampler is the few-step teacher that iRDM post-trains. "
        "Rerunning with the same --out resumes from the newest OUT/checkpoints/ckpt-<step>.pt.",
    )
    p.add_argument(
        "--out",
        default=None,
        type=path_arg,
        help="run directory (default: $REPMATCH_CACHE/fmnist/teacher-<preset>, "
        "$REPMATCH_CACHE defaulting to ~/.cache/repmatch)",
    )
    p.add_argument(
        "--preset",
        default="cpu",
        choices=("tiny", "cpu", "gpu"),
        help="network size (default: cpu)",
    )
    p.add_argument("--steps", type=int, default=2000, help="total optimizer steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    p.add_argument(
        "--lr", type=float, default=1e-3, help="Adam learning rate after warm-up (default: 1e-3)"
    )
    p.add_argument(
        "--warmup-steps", type=int, default=100, help="linear learning-rate warm-up (default: 100)"
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=0.999,
        help="EMA decay of the sampled weights (default: 0.999)",
    )
    p.add_argument(
        "--time-sampling",
        default="uniform",
        choices=("uniform", "logit_normal"),
        help="training-time distribution (default: uniform)",
    )
    p.add_argument(
        "--sample-steps",
        type=int,
        default=4,
        help="Euler steps of the teacher sampler (default: 4)",
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=250, help="steps between checkpoints (default: 250)"
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after this much wall time (checkpointed; rerun to resume)",
    )
    add_common(p, device=AUTO, seed="the model init, the batches, the times and the noise",
               dry_run="the resolved config")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..apps.fmnist.teacher import TeacherConfig, default_teacher_dir, train_teacher

    config = TeacherConfig(
        model=args.preset,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay,
        time_sampling=args.time_sampling,
        sample_steps=args.sample_steps,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    out = Path(args.out) if args.out else default_teacher_dir(args.preset)
    if args.dry_run:
        return print_json({"out": str(out), "device": args.device, "teacher": asdict(config),
                           "model": config.model_config().to_dict()})
    max_seconds = None if args.max_minutes is None else 60.0 * args.max_minutes
    result = train_teacher(config, out, device=resolve_device(args.device), max_seconds=max_seconds,
                           progress=show_progress(args))
    state = "finished" if result.finished else "stopped early (rerun the same command to resume)"
    print(f"teacher {state} at step {result.step}/{config.steps}, last loss {result.last_loss:.4f}")
    print_outputs(("weights", out / "teacher.safetensors"),
                  ("samples", out / "samples" / f"teacher_{config.sample_steps}step.png"))
    return 0
