"""``repmatch train --config FILE | --preset NAME [--run-dir DIR] [--dry-run]``.

The config file is JSON (or TOML on Python ≥ 3.11) holding the fields of
:class:`repmatch.train.TrainConfig`, the task's in its ``task`` section; the resolved config is
printed by ``--dry-run`` and saved as ``<run_dir>/config.json`` by a real run. Under
``torchrun`` every rank runs this command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..progress import is_main_process
from ._args import add_common, check_device, config_overrides, path_arg, print_outputs, show_progress
from .table import PRESETS, load

DESCRIPTION = """\
Train (or resume) a one-step generator by iRDM.

--config FILE is JSON (or TOML) with the fields of repmatch.train.TrainConfig and a "task"
section: {"name": "general", ...} is your generator ("generator": "module:callable",
"noise_shape") against the references that `repmatch references` wrote ("references": DIR),
see docs/your_data.md; other names are the tasks of repmatch.train.TASKS (toy, fmnist).
--preset NAME runs a built-in run (toy, toy_conditional, or an arm of the Fashion-MNIST job).
--dry-run prints the resolved config; a real run saves it as RUN_DIR/config.json and resumes
from RUN_DIR's newest checkpoint. Under torchrun every rank runs this command; rank 0 alone
draws the progress bar and prints the closing lines."""


def _load_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config: no such file {path!r}")
    if p.suffix == ".toml":
        import tomllib

        return tomllib.loads(p.read_text())
    return json.loads(p.read_text())


def resolve_config(args: argparse.Namespace) -> Any:
    from ..train import TrainConfig

    if args.config:
        config = TrainConfig.from_dict(_load_file(args.config))
    else:  # argparse has checked the name against PRESETS
        config = load(PRESETS[args.preset])()
    if args.run_dir is not None:
        config = config.replace(run_dir=args.run_dir)
    if getattr(args, "no_progress", False):
        config = config.replace(progress=False)
    return config_overrides(config, args)


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        return 0
    source = args.config or f"--preset {args.preset}"
    check_device(config.device, label=f"device {config.device} (in {source})",
                 hint='; set "device" to "auto" or "cpu"')
    from ..train import latest_checkpoint, train

    # A bar only for a person at a terminal (and rank 0, which the loop checks too).
    config = config.replace(progress=config.progress and show_progress(args))
    summary = train(config)
    if is_main_process():
        print(f"trained to nimg={summary['nimg']} ({summary['step']} steps, {summary['skipped']} skipped)")
    checkpoint = latest_checkpoint(config.run_dir)
    print_outputs(("run directory", config.run_dir), *([("checkpoint", checkpoint)] if checkpoint else []))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train or post-train a one-step generator (iRDM)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", type=path_arg,
                     help="JSON/TOML file: the TrainConfig fields and a task section")
    src.add_argument("--preset", metavar="NAME", choices=sorted(PRESETS),
                     help=f"a named preset: {', '.join(PRESETS)}")
    p.add_argument("--run-dir", metavar="DIR", type=path_arg, help="override run_dir")
    add_common(p, device="the config's", seed="the weight init, the noise and condition stream and dropout",
               seed_default="the config's", dry_run="the resolved config (a config file)")
    p.set_defaults(func=run)
