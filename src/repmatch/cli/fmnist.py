"""``repmatch fmnist``: the Fashion-MNIST job end to end (references, teacher, iRDM, eval, report)."""

from __future__ import annotations

import argparse
import json

from ._args import (
    add_common,
    check_device,
    config_overrides,
    path_arg,
    print_json,
    print_outputs,
    show_progress,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..apps.fmnist.stages import STAGES

    p = subparsers.add_parser(
        "fmnist",
        help="run the Fashion-MNIST job end to end: encoders, teacher, references, floors, "
        "iRDM post-training and from scratch, samples, eval, report (resumable)",
        description="One-step Fashion-MNIST generators trained and post-trained with iRDM. Each stage "
        "writes OUT/stages/<stage>.json when done and is skipped on a rerun; an interrupted stage "
        f"resumes. Stages, in order: {', '.join(STAGES)}.",
    )
    p.add_argument(
        "--preset", default="fmnist-tiny", help="fmnist-tiny (the main job, on the CPU), fmnist-cpu "
        "(the larger CPU recipe) or fmnist (one GPU); their times: docs/fmnist_results.md"
    )
    p.add_argument(
        "--config",
        default=None,
        type=path_arg,
        metavar="FILE",
        help="JSON recipe (the fields of FmnistRecipe) instead of --preset",
    )
    p.add_argument("--out", default=None, type=path_arg, help="output directory (default: runs/<preset>)")
    p.add_argument(
        "--stage",
        action="append",
        default=None,
        choices=STAGES,
        help="run only this stage (repeatable; default: all)",
    )
    p.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        metavar="S,S,...",
        help="run the job with the recipe's seed, rerun its one-step arms with each other seed "
        "in OUT-seed<k> (sharing encoders, teacher, features, floors and references) and write "
        "OUT/seeds.md and OUT/seeds.json: each model's columns as mean ± sd over these seeds",
    )
    p.add_argument(
        "--force",
        action="append",
        default=[],
        choices=STAGES,
        help="rerun this stage even if it finished (repeatable)",
    )
    add_common(p, device="the recipe's", seed="every stage", seed_default="the recipe's",
               dry_run="the resolved recipe")
    p.set_defaults(func=run)


def seed_list(text: str) -> list[int]:
    """An argparse type: comma-separated non-negative integers (``0,1,2``)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers ≥ 0, got {text!r}")
    return seeds


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..apps.fmnist.pipeline import run_pipeline
    from ..apps.fmnist.recipe import FmnistRecipe, get_recipe

    if args.config:
        recipe = FmnistRecipe.from_dict(json.loads(Path(args.config).read_text()))
    else:
        recipe = get_recipe(args.preset)
    if args.device:
        # onnxruntime runs on the CPU: a recipe moved to a GPU scores in torch there.
        backend = "torch" if args.device.startswith("cuda") else recipe.inference_backend
        recipe = recipe.replace(inference_backend=backend)
    recipe = config_overrides(recipe, args)
    out = Path(args.out if args.out is not None else f"runs/{recipe.name}")
    if args.seeds is not None:
        from ..apps.fmnist.seeds import check_seeds, run_seeds

        check_seeds(args.seeds)
        if args.stage or args.force:
            raise ValueError("--seeds runs the whole job and its seeds: drop --stage and --force")
    if args.dry_run:
        return print_json({"out": str(out), "recipe": recipe.to_dict()})
    if not args.device:  # the flag is checked before the verb runs
        source = args.config or f"--preset {args.preset}"
        check_device(recipe.device, label=f"{source} runs on {recipe.device}",
                     hint="; pass --device cpu or --device auto")
    run_pipeline(recipe, out, stages=args.stage, force=args.force, progress=show_progress(args))
    results = out / "results.md"
    if results.exists():
        print(results.read_text())
    outputs = [("results", results), ("report", out / "report.html")]
    if args.seeds is not None:
        print(run_seeds(recipe, out, args.seeds, progress=show_progress(args)))
        outputs.append(("seeds", out / "seeds.md"))
    done = [(label, path) for label, path in outputs if path.exists()]
    print_outputs(("run directory", out), *done)
    return 0
