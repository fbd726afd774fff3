"""The ``repmatch`` command line: one verb per module, listed in :mod:`repmatch.cli.table`.

Each verb module exposes ``register(subparsers)``, which adds a parser and sets
``func(args) -> int``. Verb modules defer their heavy imports into ``func`` so that
``repmatch --help`` stays fast (it never imports torch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ._args import prepare
from .study import expand_alias
from .table import VERBS

#: What bad input or a failed run raises (the library's errors name the parameter or file and
#: what is accepted; OSError covers a missing file and a full disk, whose message names the file
#: being written; FloatingPointError a run that went non-finite): shown as one line, like
#: argparse's own errors, unless --debug asks for the traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, FloatingPointError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repmatch",
        description="Representation Distribution Matching (iRDM): train, evaluate and study "
        "one-step generators against frozen encoder batteries.",
        epilog="`repmatch spiral ...` is short for `repmatch study spiral ...`.",
    )
    parser.add_argument("--version", action="version", version=f"repmatch {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (default: one line naming the cause); "
                        "also accepted after the verb")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in VERBS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``repmatch`` with ``argv`` (default: the command line); the exit status.

    A reader that stops reading (``repmatch ... --dry-run | head -1``) ends the run quietly,
    with status 1: stdout goes to the null device, so the interpreter's final flush cannot
    fail a second time (the recipe of the Python documentation's ``signal`` page)."""
    try:
        return _main(argv)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(expand_alias(sys.argv[1:] if argv is None else argv))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        prepare(args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the verb's run, not at exit
    except BrokenPipeError:
        raise
    except USER_ERRORS as exc:
        if getattr(args, "debug", False):
            raise
        print(f"repmatch {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    if "torch.distributed" in sys.modules:  # never import torch just to say goodbye
        from ..train.distributed import close_distributed

        # Under torchrun every rank leaves the process group together (a no-op otherwise).
        close_distributed()
    return code


if __name__ == "__main__":
    sys.exit(main())
