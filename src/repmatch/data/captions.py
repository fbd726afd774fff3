"""Captions beside an image folder, for text-conditioned runs (eq. 4 with a text encoder).

A CSV file with a header naming the columns ``file`` and ``caption``, or a JSON Lines file of
objects with those keys; ``file`` is the image's path relative to the folder (POSIX
separators), as :class:`ImageFolder` lists it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def read_captions(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative file path: caption}`` from a ``.csv`` or ``.jsonl`` file (see module doc)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"captions: no such file {str(p)!r}")
    rows: list[Mapping[str, object]]
    if p.suffix.lower() == ".csv":
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif p.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"captions: {str(p)!r} line {n} is not JSON ({exc.msg})") from exc
    else:
        raise ValueError(f"captions: {str(p)!r} must be a .csv or .jsonl file")
    out: dict[str, str] = {}
    for n, row in enumerate(rows, 1):
        if not isinstance(row, Mapping) or not isinstance(row.get("file"), str) or not isinstance(row.get("caption"), str):
            raise ValueError(f"captions: {str(p)!r} entry {n} needs string 'file' and 'caption', got {row!r}")
        out[str(row["file"])] = str(row["caption"])
    if not out:
        raise ValueError(f"captions: {str(p)!r} holds no captions")
    return out


def captions_in_order(files: Sequence[str], captions: Mapping[str, str], *, source: str = "captions") -> list[str]:
    """The caption of each file of ``files`` (relative paths, in row order)."""
    missing = [f for f in files if f not in captions]
    if missing:
        raise ValueError(f"{source}: no caption for {len(missing)} image(s), e.g. {missing[0]!r}")
    return [captions[f] for f in files]
