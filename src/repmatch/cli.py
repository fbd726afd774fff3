"""The ``repmatch`` command line: one verb per module.

Each verb lives in its own module exposing ``register(subparsers)``, which adds a parser and
sets ``func(args) -> int``. Verb modules keep heavy imports inside ``func`` so that
``repmatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._version import __version__

# (verb module, in the order shown by --help)
VERB_MODULES: tuple[str, ...] = (
    "repmatch.encoders.fmnist_cli",
    "repmatch.reference.cli",
    "repmatch.evaluation.cli_floors",
    "repmatch.train.command",
    "repmatch.models.teacher_cli",
    "repmatch.evaluation.cli_eval",
    "repmatch.report.cli",
    "repmatch.studies.spiral_cli",
    "repmatch.pipelines.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repmatch",
        description="Representation Distribution Matching (iRDM): train, evaluate and study "
        "one-step generators against frozen encoder batteries.",
    )
    parser.add_argument("--version", action="version", version=f"repmatch {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in VERB_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
