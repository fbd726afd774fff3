"""Progress bars: when to draw one, and one way to draw it.

Library functions take ``progress: bool`` and draw a bar exactly when it is true; the command
line decides it with :func:`progress_enabled`, so a bar appears only for a person at a
terminal: never with ``--no-progress``, never when stderr is a pipe or a log file (where
tqdm's carriage returns become one line per refresh), and only on rank 0 under ``torchrun``
(every rank shares the terminal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a ``torchrun`` job (``RANK`` in the environment)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def progress_enabled(flag: bool = True, *, stream: Any = None) -> bool:
    """Whether to draw bars: ``flag`` (``not --no-progress``), ``stream`` (default: stderr,
    where tqdm writes) is a terminal, and this is the main process."""
    if not flag or not is_main_process():
        return False
    isatty = getattr(sys.stderr if stream is None else stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool = True,
    **kwargs: Any,
) -> Any:
    """A tqdm bar (count, rate and ETA) over ``iterable`` or up to ``total``; a silent no-op
    when ``enabled`` is false. Use as an iterable or a context manager (``.update(n)``)."""
    # Deferred: the command line imports this module to build its parsers, and tqdm.auto costs
    # ~40 ms of `repmatch --help`.
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, **kwargs)
