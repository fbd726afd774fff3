"""Outputs of the spiral study: the 3×6 grid figure, the Markdown table and ``results.json``.

``write_spiral_outputs(result, out_dir)`` writes, atomically:
- ``spiral.png``: rows = batch size, columns = arm; generated samples over the noiseless curve,
  ``recall / medDist`` in each panel's corner;
- ``spiral.md``: the same numbers as a table, with the real-data floor and the wall time;
- ``results.json``: ``{"real_floor", "wall_time_s", "cells": [{"batch_size", "arm", "recall",
  "med_dist"}, ...]}``;
- ``config.json``: the resolved configuration and the machine load during the run.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from ..._io import atomic_write, atomic_write_json, atomic_write_text
from .data import spiral_curve
from .study import SpiralResult

__all__ = ["format_table", "render_figure", "write_spiral_outputs"]


def format_table(result: SpiralResult) -> str:
    """Markdown table, rows = batch size, columns = arm, entries ``recall / medDist``."""
    arms, sizes = result.config.arms, result.config.batch_sizes
    lines = [
        "| B | " + " | ".join(f"`{a}`" for a in arms) + " |",
        "|---|" + "---|" * len(arms),
    ]
    for b in sizes:
        row = [f"{result.cell(a, b).recall:.2f} / {result.cell(a, b).med_dist:.3f}" for a in arms]
        lines.append(f"| {b} | " + " | ".join(row) + " |")
    load = ", ".join(f"{x:.2f}" for x in result.load_avg)
    lines += [
        "",
        (
            f"Entries: anchor recall / medDist. Real data: recall {result.real_recall:.2f}, "
            f"medDist {result.real_floor:.3f} (the floor)."
        ),
        (
            f"{result.config.iterations} iterations per cell, {len(result.cells)} cells, "
            f"{min(result.config.workers, len(result.cells))} worker process(es); wall time {result.wall_time_s:.1f} s "
            f"(load average at the end: {load})."
        ),
    ]
    return "\n".join(lines) + "\n"


def render_figure(result: SpiralResult, *, max_points: int = 2000) -> bytes:
    """The grid figure as PNG bytes (at most ``max_points`` samples drawn per panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            ax.text(0.03, 0.97, f"{cell.recall:.2f} / {cell.med_dist:.3f}", transform=ax.transAxes,
                    ha="left", va="top", fontsize=7, bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(arm, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"B = {b}", fontsize=8)
    fig.suptitle(
        f"Spiral in R^{result.config.dim}: recall / medDist (real floor {result.real_floor:.3f})",
        fontsize=9,
    )
    fig.tight_layout(pad=0.3, rect=(0.0, 0.0, 1.0, 0.95))  # room for the suptitle
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_spiral_outputs(result: SpiralResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write figure, table, results and config under ``out_dir``; returns the paths by kind."""
    out = Path(out_dir)
    png = render_figure(result)

    def write_png(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(png)

    config = result.config.to_dict()
    config["load_avg"] = list(result.load_avg)
    return {
        "figure": atomic_write(out / "spiral.png", write_png),
        "table": atomic_write_text(out / "spiral.md", format_table(result)),
        "results": atomic_write_json(out / "results.json", result.to_json()),
        "config": atomic_write_json(out / "config.json", config),
    }
