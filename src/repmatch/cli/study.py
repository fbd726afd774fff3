"""``repmatch study NAME``: the controlled studies, on the spiral and on Fashion-MNIST.

Spiral (paper Fig. 3, Fig. 4, Table 4): ``spiral`` is the Fig. 3 grid (``repmatch spiral`` is the
same study), ``spiral-batch`` the batch axis, ``spiral-distances`` the distance ranking by two
neutral distances. Fashion-MNIST (real images, from the ``repmatch fmnist`` job's teacher,
encoders and references; ``repmatch.apps.fmnist.studies``): ``fmnist-batch`` (Fig. 4),
``fmnist-distances`` (Table 4), ``fmnist-controller`` (Table 3), ``fmnist-gaming`` (§3.3, Fig. 5),
``fmnist-joint`` (Table 2). Each writes ``results.json``, ``NAME.md``, ``NAME.png`` and
``config.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._args import add_common, path_arg, print_outputs, show_progress


def csv_values(kind: type) -> Any:
    """An argparse type: comma-separated values of ``kind``."""
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
    return parse

#: The study names (repeated from repmatch.apps.spiral.studies.STUDIES and
#: repmatch.apps.fmnist.studies.STUDIES so that --help imports no torch; tests check they agree).
SPIRAL_STUDIES: tuple[str, ...] = ("spiral", "spiral-batch", "spiral-distances")
FMNIST_STUDIES: tuple[str, ...] = (
    "fmnist-batch", "fmnist-distances", "fmnist-controller", "fmnist-gaming", "fmnist-joint"
)
STUDY_NAMES: tuple[str, ...] = SPIRAL_STUDIES + FMNIST_STUDIES


def add_study_options(p: Any) -> None:
    """The options every study takes (``repmatch spiral`` shares them)."""
    p.add_argument("--out", required=True, type=path_arg, help="output directory")
    p.add_argument("--quick", action="store_true", help="smoke test: seconds, in-process, small scorers")
    p.add_argument("--seeds", type=csv_values(int), default=None,
                   help="comma-separated seeds (default: 0 for spiral, 0,1,2 for the others; 0 with --quick)")
    p.add_argument("--arms", type=csv_values(str), default=None, help="comma-separated arms (default: all)")
    p.add_argument("--batch-sizes", type=csv_values(int), default=None,
                   help="comma-separated batch sizes (spiral: 8,32,128; spiral-distances: 32,128; "
                   "spiral-batch: 8,...,1024)")
    p.add_argument("--iterations", type=int, default=None,
                   help="training steps per cell (spiral-batch: at the reference batch size)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes, one thread each (default: one per usable CPU; 1 runs in-process)")
    add_common(p, dry_run="the resolved configuration")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "study",
        help="run a controlled study: on the spiral (spiral, spiral-batch, spiral-distances) or "
        "on Fashion-MNIST (fmnist-batch, fmnist-distances, fmnist-controller, fmnist-gaming, "
        "fmnist-joint)",
        description="Run one controlled study and write results.json, NAME.md, NAME.png and "
        "config.json under --out.",
    )
    p.add_argument("name", choices=STUDY_NAMES, help="the study")
    add_study_options(p)
    p.add_argument("--from", dest="source", default=None, type=path_arg,
                   help="spiral-distances only: rank the cells of an earlier spiral study's "
                   "results.json (directory or file) instead of training them")
    p.add_argument("--base", default=None, type=path_arg,
                   help="fmnist studies only: a `repmatch fmnist` output directory whose stages "
                   "encoders..references to start from (fmnist-tiny preset; --quick: a smoke "
                   "recipe); missing stages are run there (default: OUT/base)")
    p.add_argument("--lr", type=float, default=None,
                   help="fmnist studies only: the learning rate at the study's reference batch size "
                   "(fmnist-batch scales it by sqrt(N / reference))")
    p.add_argument("--generator", choices=("post", "scratch"), default=None,
                   help="fmnist studies only: post-train the teacher's one-step start (post; the "
                   "default but for fmnist-gaming) or train fresh ConvGenerators (scratch)")
    p.set_defaults(func=run)


def run_fmnist(name: str, args: argparse.Namespace) -> int:
    """Run Fashion-MNIST study ``name`` with the parsed options; the exit status."""
    from ..apps.fmnist.studies import resolve_config, run_study

    overrides = {"seeds": args.seeds, "arms": args.arms, "batch_sizes": args.batch_sizes,
                 "iterations": args.iterations, "lr": args.lr, "generator": args.generator}
    try:
        if args.workers is not None:
            raise ValueError("--workers applies to the spiral studies; the fmnist studies run "
                             "in-process (set their threads with --threads)")
        if args.source is not None:
            raise ValueError("--from applies to spiral-distances only")
        config = resolve_config(name, out=args.out, base=args.base, quick=args.quick, **overrides)
        if args.dry_run:
            print(json.dumps(config.to_dict(), indent=2))
            return 0
        paths = run_study(config, args.out, progress=show_progress(args))
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"repmatch study: error: {err}", file=sys.stderr)
        return 2
    return _print_results(paths)


def _print_results(paths: dict[str, Any]) -> int:
    """Print a finished study's table and name its outputs; exit status 0."""
    with open(paths["table"], encoding="utf-8") as f:
        print(f.read(), end="")
    print_outputs(*paths.items())
    return 0


def run_named(name: str, args: argparse.Namespace, source: str | None = None) -> int:
    """Run study ``name`` with the parsed options; the exit status."""
    from ..apps.spiral.studies import default_seeds, resolve_config, run_study

    prog = f"repmatch {'spiral' if getattr(args, 'verb', None) == 'spiral' else 'study'}"
    overrides = {"arms": args.arms, "batch_sizes": args.batch_sizes, "iterations": args.iterations,
                 "workers": args.workers}
    try:
        if args.seed_alias is not None:
            if args.seeds is not None:
                raise ValueError("pass --seed or --seeds, not both")
            args.seeds = (args.seed_alias,)
        config = resolve_config(name, quick=args.quick, seeds=args.seeds, **overrides)
        if args.dry_run:
            resolved = config.to_dict()
            if "seed" in resolved:  # a spiral grid: the seeds it runs replace the one seed field
                resolved.pop("seed")
                resolved["seeds"] = list(args.seeds or default_seeds(name, args.quick))
            print(json.dumps(resolved, indent=2))
            return 0
        paths = run_study(name, args.out, quick=args.quick, seeds=args.seeds,
                          progress=show_progress(args), source=source, **overrides)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return _print_results(paths)


def run(args: argparse.Namespace) -> int:
    if args.name in FMNIST_STUDIES:
        return run_fmnist(args.name, args)
    for flag, value in (("--base", args.base), ("--lr", args.lr), ("--generator", args.generator)):
        if value is not None:
            print(f"repmatch study: error: {flag} applies to the fmnist studies only", file=sys.stderr)
            return 2
    args.seed_alias = None
    return run_named(args.name, args, source=args.source)
