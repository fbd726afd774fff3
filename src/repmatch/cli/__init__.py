"""The ``repmatch`` command line: one verb per module, listed in :mod:`repmatch.cli.table`.

Each verb module exposes ``register(subparsers)``, which adds a parser and sets
``func(args) -> int``. Verb modules defer their heavy imports into ``func`` so that
``repmatch --help`` stays fast (it never imports torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__
from .table import VERBS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repmatch",
        description="Representation Distribution Matching (iRDM): train, evaluate and study "
        "one-step generators against frozen encoder batteries.",
    )
    parser.add_argument("--version", action="version", version=f"repmatch {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in VERBS:
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
