"""Training curves from ``stats.jsonl`` files (one JSON object per line), rendered to one PNG.

Nested objects are flattened with ``/`` (``{"score": {"dino": 1.2}}`` → ``score/dino``), and
keys sharing a prefix before ``/`` or ``.`` share a panel (e.g. all per-encoder scores in one,
all per-encoder weights in another). The x axis is ``nimg`` when present, else ``step``, else
the line number. Several runs (e.g. the two arms of a job) share the panels: one colour per
series within a panel, one line style per run.

The iRDM loop's keys (``repmatch.train``) get titles that say what they are: ``score`` the
raw distance D_φ of each encoder (eq. 3), ``excess`` its excess over the real floor,
``weight`` the controller's λ_φ, ``objective`` Σ_φ λ_φ·D_φ. Its ``loss`` is Σ_φ λ_φ·D_φ/|D_φ|,
a scale-free surrogate whose value only counts the active weights: it is plotted apart, and
like every series that never changes it is dropped from the figure and reported as a note. A
panel whose positive values span a decade or more is drawn on a log scale.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_X_KEYS = ("nimg", "step")
_NOT_PLOTTED = {"nimg", "step", "time_s", "kimg"}
MAX_PANELS = 12
# Panels of the iRDM loop's log, in reading order, with what each one is.
_TITLES = {
    "objective": "objective Σ λ_φ·D_φ",
    "score": "raw distance D_φ per encoder (eq. 3)",
    "excess": "excess over the real floor, D_φ − b_φ",
    "heldout_excess": "held-out encoders: excess over floor",
    "weight": "controller weight λ_φ",
    "loss": "loss",
    "surrogate_loss": "surrogate loss Σ λ_φ·D_φ/|D_φ|",
    "grad_norm": "gradient norm",
    "lr": "learning rate",
    "img_per_s": "throughput (images/s)",
    "skipped": "skipped steps (cumulative)",
}
_LAST = ("grad_norm", "lr", "img_per_s", "skipped")
_STYLES = ("-", "--", ":", "-.")


@dataclass
class Stats:
    """Parsed stats: ``records`` (flattened numeric dicts) and how many lines were unreadable."""

    records: list[dict[str, float]] = field(default_factory=list)
    bad_lines: int = 0


@dataclass
class Series:
    """One line of a panel: ``label`` (series within its run), ``run`` (display name or "")."""

    label: str
    run: str
    xs: list[float]
    ys: list[float]

    @property
    def constant(self) -> bool:
        return len(set(self.ys)) <= 1


@dataclass
class Panel:
    """A subplot: its log key, title, y scale (``"linear"``/``"log"``) and series."""

    key: str
    title: str
    x_label: str
    series: list[Series]
    scale: str = "linear"


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


def _order(key: str) -> tuple[int, int]:
    names = list(_TITLES)
    if key in _LAST:
        return (2, names.index(key))
    return (0, names.index(key)) if key in _TITLES else (1, 0)


def _scale(panel_key: str, series: list[Series]) -> str:
    values = [y for s in series for y in s.ys]
    if panel_key == "weight" or not values or min(values) <= 0:
        return "linear"
    return "log" if max(values) / min(values) >= 10 else "linear"


def curve_panels(
    runs: Sequence[tuple[str, list[dict[str, float]]]],
) -> tuple[list[Panel], list[str]]:
    """The panels to plot for ``runs`` (``[(run display name, records), ...]``) and a note per
    series left out because it never changes (``"loss = 1 (iRDM post-trained)"``).

    A run whose log has per-encoder weights is an iRDM loop run: its ``loss`` is the
    scale-free surrogate and goes to the ``surrogate_loss`` panel.
    """
    panels: dict[str, Panel] = {}
    notes: list[str] = []
    for run, records in runs:
        x_key, groups = group_series(records)
        if "weight" in groups and "loss" in groups:
            groups["surrogate_loss"] = groups.pop("loss")
        x_label = {"nimg": "images seen (nimg)", "step": "step", "": "log line"}[x_key]
        for group, keys in groups.items():
            for key in keys:
                pts = [
                    (r.get(x_key, i) if x_key else float(i), r[key])
                    for i, r in enumerate(records)
                    if key in r and math.isfinite(r[key])
                ]
                if not pts:
                    continue
                xs, ys = (list(v) for v in zip(*pts))
                label = key[len(group) + 1 :] if key != group else ""
                s = Series(label=label, run=run, xs=xs, ys=ys)
                if s.constant and len(ys) > 1:
                    what = _TITLES.get(group, group) + (f" [{label}]" if label else "")
                    notes.append(f"{what} = {ys[0]:.4g}" + (f" ({run})" if run else ""))
                    continue
                panel = panels.setdefault(
                    group, Panel(key=group, title=_TITLES.get(group, group), x_label=x_label, series=[])
                )
                panel.series.append(s)
    out = sorted(panels.values(), key=lambda p: _order(p.key))[:MAX_PANELS]
    for p in out:
        p.scale = _scale(p.key, p.series)
    return out, notes


def _text(s: str) -> str:
    """``s`` as literal text: matplotlib would parse ``$...$`` in a label as mathtext."""
    return s.replace("$", r"\$")


def curves_png(panels: list[Panel]) -> bytes | None:
    """Draw ``panels`` into one PNG, three per row; ``None`` if there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.2 * rows), squeeze=False)
    runs = list(dict.fromkeys(s.run for p in panels for s in p.series))
    for ax, panel in zip(axes.flat, panels):
        colours = list(dict.fromkeys(s.label for s in panel.series))
        for s in panel.series:
            label = " · ".join(x for x in (s.run if len(runs) > 1 else "", s.label) if x)
            ax.plot(
                s.xs,
                s.ys,
                label=_text(label or panel.key),
                color=f"C{colours.index(s.label) % 10}",
                linestyle=_STYLES[runs.index(s.run) % len(_STYLES)],
                linewidth=1.3,
                marker="." if len(s.xs) < 8 else None,
            )
        ax.set_title(_text(panel.title), fontsize=10)
        ax.set_xlabel(_text(panel.x_label), fontsize=8)
        ax.set_yscale(panel.scale)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both" if panel.scale == "log" else "major")
        if len(panel.series) > 1 or any(s.label for s in panel.series):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
