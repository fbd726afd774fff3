"""The studies that ``repmatch study NAME`` runs: one :class:`Study` object per name.

:data:`STUDIES` is a :class:`repmatch.registry.Registry` that the library leaves empty: the
applications add their studies through the entry-point group ``repmatch.studies``, e.g. in a
package's ``pyproject.toml``::

    [project.entry-points."repmatch.studies"]
    my-study = "mypkg.studies:MY_STUDY"

and ``repmatch study mypkg.studies:MY_STUDY`` runs one that is not installed. Listing the
names imports no study, so ``repmatch --help`` stays fast.

The command line gives every study the options they share (``--out``, ``--quick``, ``--seeds``,
``--arms``, ``--batch-sizes``, ``--iterations``, ``--dry-run``, ``--no-progress``; ``None`` when
not given) and the study adds its own in ``add_options``; a study refuses, with a
``ValueError`` naming the option, a value it cannot use.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .registry import Registry

__all__ = ["STUDIES", "Study"]


@runtime_checkable
class Study(Protocol):
    """A controlled study the command line can run.

    Attributes:
        name: the name it is registered under (``repmatch study NAME``).
        help: one line saying what it measures (``repmatch study NAME --help``).
    """

    name: str
    help: str

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        """Add this study's own options to ``parser``."""

    def resolve(self, args: argparse.Namespace) -> Mapping[str, Any]:
        """The resolved configuration the parsed ``args`` run (what ``--dry-run`` prints); raises
        ``ValueError`` naming a bad option."""

    def run(self, args: argparse.Namespace, *, progress: bool) -> Mapping[str, Path]:
        """Run the study and write its outputs under ``args.out``; the paths by kind, the
        Markdown ``"table"`` among them."""


def _check_study(key: str, obj: Any) -> None:
    if not isinstance(obj, Study):
        raise TypeError(f"{key}: expected a Study (name, help, add_options, resolve, run), got {obj!r}")


#: Study name -> :class:`Study` (entry-point group ``repmatch.studies``).
STUDIES: Registry[Study] = Registry("study", group="repmatch.studies", check=_check_study)
