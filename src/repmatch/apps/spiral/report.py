"""Outputs of the spiral study: the grid figure, the Markdown table and ``results.json``.

``write_spiral_outputs(results, out_dir)`` (one :class:`SpiralResult` per seed) writes, atomically:
- ``spiral.png``: rows = batch size, columns = arm; the first seed's generated samples over the
  noiseless curve, ``recall / medDist`` in each panel's corner (mean ± sd over seeds when
  there are several);
- ``spiral.md``: the same numbers as a table (mean ± sd per cell over seeds), the neutral
  distances SW_r / MMD_r, the real-data floor and the wall time;
- ``results.json``: ``{"study", "seeds", "real_floor", "wall_time_s", "cells": [{"batch_size",
  "arm", "recall", "med_dist", "sw_ratio", "mmd_ratio"} (means over seeds), each with its
  ``*_sd`` and ``per_seed`` values], "runs": [one per seed, :meth:`SpiralResult.to_json`]}``;
- ``config.json``: the resolved configuration, the seeds and the machine load during the run.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ...io import atomic_write, atomic_write_json, atomic_write_text
from .data import spiral_curve
from .grid import SpiralResult

__all__ = [
    "SCORES",
    "format_table",
    "mean_sd",
    "png_writer",
    "render_figure",
    "summarize_cells",
    "write_spiral_outputs",
]

#: The per-cell scores, as ``SpiralCell`` attributes.
SCORES: tuple[str, ...] = ("recall", "med_dist", "sw_ratio", "mmd_ratio")


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("values must hold at least one number, got none")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def summarize_cells(results: Sequence[SpiralResult]) -> list[dict[str, Any]]:
    """Per cell (row-major, the first result's order): each score's mean, ``*_sd`` and per-seed values."""
    summary = []
    for c in results[0].cells:
        entry: dict[str, Any] = {"batch_size": c.batch_size, "arm": c.arm}
        per_seed: dict[str, list[float]] = {}
        for score in SCORES:
            values = [getattr(r.cell(c.arm, c.batch_size), score) for r in results]
            entry[score], entry[f"{score}_sd"] = mean_sd(values)
            per_seed[score] = values
        entry["per_seed"] = per_seed
        summary.append(entry)
    return summary


def _pm(mean: float, sd: float, digits: int, several: bool) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if several else f"{mean:.{digits}f}"


def _grid_rows(results: Sequence[SpiralResult], cell_text: Callable[[dict[str, Any]], str]) -> list[str]:
    config = results[0].config
    by_cell = {(e["arm"], e["batch_size"]): e for e in summarize_cells(results)}
    lines = ["| B | " + " | ".join(f"`{a}`" for a in config.arms) + " |",
             "|---|" + "---|" * len(config.arms)]
    for b in config.batch_sizes:
        lines.append(f"| {b} | " + " | ".join(cell_text(by_cell[(a, b)]) for a in config.arms) + " |")
    return lines


def format_table(results: SpiralResult | Sequence[SpiralResult]) -> str:
    """Markdown tables, rows = batch size, columns = arm: ``recall / medDist``, then SW_r / MMD_r.

    With several seeds each entry is the mean ± sample sd over the seeds.
    """
    runs = [results] if isinstance(results, SpiralResult) else list(results)
    several = len(runs) > 1
    first = runs[0]
    lines = _grid_rows(runs, lambda e: f"{_pm(e['recall'], e['recall_sd'], 2, several)} / "
                       f"{_pm(e['med_dist'], e['med_dist_sd'], 3, several)}")
    floors = [r.real_floor for r in runs]
    real_recalls = [r.real_recall for r in runs]
    seeds = ", ".join(str(r.config.seed) for r in runs)
    load = ", ".join(f"{x:.2f}" for x in first.load_avg)
    lines += [
        "",
        (
            f"Entries: anchor recall / medDist{' (mean ± sd over seeds ' + seeds + ')' if several else ''}. "
            f"Real data: recall {min(real_recalls):.2f}, medDist "
            f"{min(floors):.3f}{'–' + format(max(floors), '.3f') if several else ''} (the floor)."
        ),
        "",
        "Neutral distances in R^64 against held-out real data (no arm trains on them): SW_r / MMD_r",
        "(1 ≈ a fresh real draw):",
        "",
    ]
    lines += _grid_rows(runs, lambda e: f"{_pm(e['sw_ratio'], e['sw_ratio_sd'], 2, several)} / "
                        f"{_pm(e['mmd_ratio'], e['mmd_ratio_sd'], 1, several)}")
    real = [v for r in runs for v in r.real_neutral]
    if real:
        lines += ["", (f"Fresh real draws score SW_r {min(v[0] for v in real):.2f}–{max(v[0] for v in real):.2f}, "
                       f"MMD_r {min(v[1] for v in real):.2f}–{max(v[1] for v in real):.2f}.")]
    lines += [
        "",
        (
            f"{first.config.iterations} iterations per cell, {len(first.cells)} cells per seed, "
            f"{len(runs)} seed(s), {min(first.config.workers, len(first.cells) * len(runs))} worker "
            f"process(es); wall time {first.wall_time_s:.1f} s (load average at the end: {load})."
        ),
    ]
    return "\n".join(lines) + "\n"


def render_figure(results: SpiralResult | Sequence[SpiralResult], *, max_points: int = 2000) -> bytes:
    """The grid figure as PNG bytes: the first seed's samples (at most ``max_points`` per panel),
    the corner text ``recall / medDist`` (mean ± sd of medDist over the seeds when several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [results] if isinstance(results, SpiralResult) else list(results)
    result = runs[0]
    several = len(runs) > 1
    summary = {(e["arm"], e["batch_size"]): e for e in summarize_cells(runs)}
    arms, sizes = result.config.arms, result.config.batch_sizes
    curve = spiral_curve(torch.linspace(0, 1, 2000), result.config.spiral).numpy()
    lim = result.config.spiral.radius_end + 0.6
    fig, axes = plt.subplots(
        len(sizes), len(arms), figsize=(1.75 * len(arms), 1.8 * len(sizes)), squeeze=False
    )
    for i, b in enumerate(sizes):
        for j, arm in enumerate(arms):
            ax = axes[i][j]
            cell = result.cell(arm, b)
            pts = cell.samples[:max_points].numpy()
            ax.plot(curve[:, 0], curve[:, 1], color="0.6", lw=0.8, zorder=1)
            ax.scatter(pts[:, 0], pts[:, 1], s=0.6, color="tab:blue", alpha=0.5, lw=0, zorder=2)
            e = summary[(arm, b)]
            text = (f"{e['recall']:.2f} / {e['med_dist']:.3f}±{e['med_dist_sd']:.3f}" if several
                    else f"{cell.recall:.2f} / {cell.med_dist:.3f}")
            ax.text(0.03, 0.97, text, transform=ax.transAxes, ha="left", va="top", fontsize=6 if several else 7, bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(arm, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"B = {b}", fontsize=8)
    seeds = ", ".join(str(r.config.seed) for r in runs)
    fig.suptitle(
        f"Spiral in R^{result.config.dim}: recall / medDist (real floor {result.real_floor:.3f})"
        + (f"; samples of seed {result.config.seed}, scores mean (± sd) over seeds {seeds}" if several else ""),
        fontsize=9,
    )
    fig.tight_layout(pad=0.3, rect=(0.0, 0.0, 1.0, 0.95))  # room for the suptitle
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def png_writer(png: bytes) -> Callable[[str], None]:
    """A writer for :func:`repmatch.io.atomic_write` that puts ``png`` in the temporary file."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(png)
    return write


def results_json(results: Sequence[SpiralResult], study: str = "spiral") -> dict[str, Any]:
    """The ``results.json`` document of the module docstring."""
    return {
        "study": study,
        "seeds": [r.config.seed for r in results],
        "real_floor": sum(r.real_floor for r in results) / len(results),
        "wall_time_s": results[0].wall_time_s,
        "cells": summarize_cells(results),
        "runs": [r.to_json() for r in results],
    }


def write_spiral_outputs(
    results: SpiralResult | Sequence[SpiralResult], out_dir: str | os.PathLike[str], *, name: str = "spiral"
) -> dict[str, Path]:
    """Write ``{name}.png``, ``{name}.md``, ``results.json`` and ``config.json`` under ``out_dir``."""
    runs = [results] if isinstance(results, SpiralResult) else list(results)
    out = Path(out_dir)
    config = runs[0].config.to_dict()
    config.pop("seed")
    config["seeds"] = [r.config.seed for r in runs]
    config["load_avg"] = list(runs[0].load_avg)
    return {
        "figure": atomic_write(out / f"{name}.png", png_writer(render_figure(runs))),
        "table": atomic_write_text(out / f"{name}.md", format_table(runs)),
        "results": atomic_write_json(out / "results.json", results_json(runs, name)),
        "config": atomic_write_json(out / "config.json", config),
    }
