"""Training curves from ``stats.jsonl`` (one JSON object per line), rendered to one PNG.

Nested objects are flattened with ``/`` (``{"score": {"dino": 1.2}}`` → ``score/dino``), and
keys sharing a prefix before ``/`` or ``.`` share a panel (e.g. all per-encoder scores in one,
all per-encoder weights in another). The x axis is ``nimg`` when present, else ``step``, else
the line number.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_X_KEYS = ("nimg", "step")
_NOT_PLOTTED = {"nimg", "step", "time_s", "kimg"}
MAX_PANELS = 12


@dataclass
class Stats:
    """Parsed stats: ``records`` (flattened numeric dicts) and how many lines were unreadable."""

    records: list[dict[str, float]] = field(default_factory=list)
    bad_lines: int = 0


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def read_stats(path: str | os.PathLike[str]) -> Stats:
    """Read a ``stats.jsonl``; lines that are not JSON objects are counted, not fatal."""
    stats = Stats()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            stats.bad_lines += 1
            continue
        if not isinstance(obj, dict):
            stats.bad_lines += 1
            continue
        stats.records.append(_flatten(obj))
    return stats


def group_series(records: list[dict[str, float]]) -> tuple[str, dict[str, list[str]]]:
    """Choose the x key and group the plotted keys into panels: ``(x_key, {panel: [keys]})``.

    ``loss`` (if present) is the first panel; ``x_key`` is ``""`` when the line number is used.
    """
    keys: list[str] = []
    for rec in records:
        keys.extend(k for k in rec if k not in keys)
    x_key = next((k for k in _X_KEYS if any(k in r for r in records)), "")
    panels: dict[str, list[str]] = {}
    for key in keys:
        if key in _NOT_PLOTTED or key == x_key:
            continue
        group = re.split(r"[/.]", key, maxsplit=1)[0] if re.search(r"[/.]", key) else key
        panels.setdefault(group, []).append(key)
    if "loss" in panels:
        panels = {"loss": panels.pop("loss"), **panels}
    return x_key, panels


def curves_png(records: list[dict[str, float]]) -> bytes | None:
    """Plot every series into a grid of panels (at most ``MAX_PANELS``); ``None`` if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, panels = group_series(records)
    names = list(panels)[:MAX_PANELS]
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for key in panels[name]:
            pts = [
                (r.get(x_key, i) if x_key else i, r[key]) for i, r in enumerate(records) if key in r
            ]
            xs, ys = zip(*pts)
            label = key[len(name) + 1 :] if key != name else key
            ax.plot(xs, ys, label=label, linewidth=1.2)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(x_key or "line", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(panels[name]) > 1:
            ax.legend(fontsize=7, ncol=2)
        positive = all(v > 0 for key in panels[name] for r in records if key in r for v in [r[key]])
        if name == "loss" and positive:
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
