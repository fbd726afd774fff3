"""``repmatch study NAME``: run a controlled study of :data:`repmatch.studies.STUDIES`.

The applications register their studies through the entry-point group ``repmatch.studies``
(``pyproject.toml``). On the spiral (paper Fig. 3, Fig. 4, Table 4; ``repmatch.apps.spiral``):
``spiral``, the Fig. 3 grid (``repmatch spiral`` is short for ``repmatch study spiral``),
``spiral-batch``, the batch axis, and ``spiral-distances``, the distance ranking by two neutral
distances. On Fashion-MNIST (real images, from the ``repmatch fmnist`` job's teacher, encoders
and references; ``repmatch.apps.fmnist.studies``): ``fmnist-batch`` (Fig. 4),
``fmnist-distances`` (Table 4), ``fmnist-controller`` (Table 3), ``fmnist-gaming`` (§3.3,
Fig. 5), ``fmnist-joint`` (Table 2). ``NAME`` may also be ``module:attribute`` naming a study
object. Each writes ``results.json``, ``NAME.md``, ``NAME.png`` and ``config.json`` under
``--out``.

A study's own options are added to the parser once ``NAME`` is read, so that building the
parsers (``repmatch --help``) imports no study: ``repmatch study NAME --help`` lists them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from ..studies import STUDIES
from ._args import add_common, path_arg, print_json, print_outputs, show_progress


def csv_values(kind: type) -> Any:
    """An argparse type: comma-separated values of ``kind``."""
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(t.strip()) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}")
    return parse


def add_study_options(p: argparse.ArgumentParser) -> None:
    """The options every study takes; a study adds its own (:meth:`Study.add_options`)."""
    p.add_argument("--out", required=True, type=path_arg, help="output directory")
    p.add_argument("--quick", action="store_true", help="smoke test: seconds, in-process, small scorers")
    p.add_argument("--seeds", type=csv_values(int), default=None,
                   help="comma-separated seeds (default: the study's; 0 with --quick)")
    p.add_argument("--arms", type=csv_values(str), default=None, help="comma-separated arms (default: all)")
    p.add_argument("--batch-sizes", type=csv_values(int), default=None,
                   help="comma-separated batch sizes (default: the study's, in its description)")
    p.add_argument("--iterations", type=int, default=None,
                   help="training steps per arm (at the study's reference batch size)")
    add_common(p)


class _ParseStudy(argparse.Action):
    """Looks ``NAME`` up and parses the rest of the line with that study's options."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        name, *rest = values
        try:
            study = STUDIES.get(name)
        except (ValueError, TypeError, ImportError) as err:
            parser.error(str(err))
        own = argparse.ArgumentParser(prog=f"{parser.prog} {name}", description=study.help)
        add_study_options(own)
        study.add_options(own)
        own.parse_args(rest, namespace)
        namespace.name, namespace.study = name, study


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "study",
        help="run a controlled study (the paper's, on the spiral and on Fashion-MNIST, or an "
        "installed package's): `repmatch study NAME --help`",
        description="Run one controlled study and write results.json, NAME.md, NAME.png and "
        "config.json under --out. `repmatch study NAME --help` lists its options.",
    )
    p.add_argument("name", nargs=argparse.PARSER, action=_ParseStudy, metavar="NAME",
                   help=f"the study: {', '.join(STUDIES.names()) or 'none installed'}, or "
                   "module:attribute; then its options")
    p.set_defaults(func=run)


def _print_results(paths: Mapping[str, Any]) -> int:
    """Print a finished study's table and name its outputs; exit status 0."""
    with open(paths["table"], encoding="utf-8") as f:
        print(f.read(), end="")
    print_outputs(*paths.items())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return print_json(dict(args.study.resolve(args)))
    return _print_results(args.study.run(args, progress=show_progress(args)))


def expand_alias(argv: Sequence[str]) -> list[str]:
    """``repmatch spiral ...`` is ``repmatch study spiral ...`` (the verb is the first word
    that is not a top-level flag)."""
    argv = list(argv)
    for i, word in enumerate(argv):
        if not word.startswith("-"):
            return [*argv[:i], "study", *argv[i:]] if word == "spiral" else argv
    return argv
