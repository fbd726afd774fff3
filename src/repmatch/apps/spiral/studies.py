"""The controlled studies on the spiral, by name: ``spiral`` (the grid of :mod:`.grid`),
``spiral-batch`` (:mod:`.batch_axis`) and ``spiral-distances`` (:mod:`.distance_ranking`).

``run_study(name, out, quick=..., seeds=..., ...)`` runs one study with the shared runner
(:mod:`.runner`) and writes, atomically, under ``out``: ``results.json``, ``{name}.md`` (the
Markdown table), ``{name}.png`` (the figure) and ``config.json`` (the resolved configuration).
``--quick`` sizes finish in seconds (CI); the full sizes are stated in docs/spiral.md.

:data:`SPIRAL`, :data:`SPIRAL_BATCH` and :data:`SPIRAL_DISTANCES` are the studies as
``repmatch study NAME`` runs them (:class:`repmatch.studies.Study`), registered through the
``repmatch.studies`` entry points in ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...io import atomic_write, atomic_write_json, atomic_write_text
from .batch_axis import CURVES, BatchAxisConfig, BatchPoint, best_batch, run_batch_axis
from .distance_ranking import (
    NEUTRAL,
    PAPER_ORDER,
    Scores,
    ranking_summary,
    scores_from_json,
    scores_from_results,
)
from .report import mean_sd, png_writer, write_spiral_outputs
from .grid import SpiralConfig, quick_config, run_spiral_seeds, with_overrides

__all__ = [
    "SPIRAL",
    "SPIRAL_BATCH",
    "SPIRAL_DISTANCES",
    "STUDIES",
    "SpiralStudy",
    "default_seeds",
    "resolve_config",
    "run_study",
]

#: What ``--quick`` changes in every study's cells: few iterations, in-process, small scorers.
_QUICK_NEUTRAL: dict[str, Any] = {"neutral_projections": 64, "neutral_features": 256}


def resolve_config(
    name: str, *, quick: bool = False, seeds: Sequence[int] | None = None, **overrides: Any
) -> Any:
    """The configuration a study runs: a :class:`SpiralConfig` (with ``seeds`` beside it) for
    ``spiral`` and ``spiral-distances``, a :class:`BatchAxisConfig` for ``spiral-batch``.

    ``overrides`` (``None`` values ignored) are :class:`SpiralConfig` fields (``arms``,
    ``batch_sizes``, ``iterations``, ``workers``); for ``spiral-batch``, ``batch_sizes``,
    ``iterations`` and a one-arm ``arms`` set the sweep, its reference iterations and its arm.
    """
    if name not in STUDIES:
        raise ValueError(f"name must be one of {list(STUDIES)}, got {name!r}")
    base = quick_config(**_QUICK_NEUTRAL) if quick else SpiralConfig()
    if name == "spiral-batch":
        sweep: dict[str, Any] = {}
        if overrides.get("batch_sizes") is not None:
            sweep["batch_sizes"] = tuple(overrides["batch_sizes"])
        if overrides.get("iterations") is not None:
            sweep["reference_iterations"] = overrides["iterations"]
        if overrides.get("arms") is not None:
            if len(overrides["arms"]) != 1:
                raise ValueError(f"arms must name exactly one arm for spiral-batch, got {list(overrides['arms'])}")
            sweep["arm"] = overrides["arms"][0]
        if quick:
            sweep = {"batch_sizes": (8, 32, 128), "reference_batch": 32, "reference_iterations": 20,
                     **sweep}
        cell = with_overrides(base, workers=overrides.get("workers"))
        return BatchAxisConfig(base=cell, seeds=tuple(seeds) if seeds else default_seeds(name, quick), **sweep)
    if name == "spiral-distances" and overrides.get("batch_sizes") is None:
        base = replace(base, batch_sizes=(32, 128))
    return with_overrides(base, **overrides)


def default_seeds(name: str, quick: bool) -> tuple[int, ...]:
    """The seeds a study runs when none are given: one for ``spiral`` and ``--quick``, else three."""
    return (0,) if quick or name == "spiral" else (0, 1, 2)


def run_study(
    name: str,
    out: str | os.PathLike[str],
    *,
    quick: bool = False,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    source: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> dict[str, Path]:
    """Run study ``name`` and write its outputs under ``out``; returns the paths by kind.

    ``source`` (``spiral-distances`` only) ranks the cells of an earlier spiral study's
    ``results.json`` (a directory or the file) instead of training them again.
    """
    config = resolve_config(name, quick=quick, seeds=seeds, **overrides)
    if source is not None and name != "spiral-distances":
        raise ValueError(f"source is only accepted by spiral-distances, got it for {name!r}")
    if name == "spiral-batch":
        points, wall = run_batch_axis(config, progress=progress)
        return _write_batch(config, points, wall, Path(out))
    run_seeds = tuple(seeds) if seeds else default_seeds(name, quick)
    if name == "spiral":
        return write_spiral_outputs(run_spiral_seeds(config, run_seeds, progress=progress), out)
    if source is not None:
        path = Path(source)
        document = json.loads((path / "results.json" if path.is_dir() else path).read_text(encoding="utf-8"))
        got_seeds, scores = scores_from_json(document)
        src_config = json.loads(((path if path.is_dir() else path.parent) / "config.json").read_text(encoding="utf-8"))
        arms = list(src_config["arms"])
        sizes = [b for b in src_config["batch_sizes"] if b in config.batch_sizes]
        if not sizes:
            raise ValueError(f"source holds none of the batch sizes {list(config.batch_sizes)}")
        meta = {"source": str(path), "seeds": got_seeds, "iterations": src_config["iterations"],
                "wall_time_s": document.get("wall_time_s")}
        return _write_distances(arms, sizes, scores, meta, src_config, Path(out))
    results = run_spiral_seeds(config, run_seeds, progress=progress)
    meta = {"seeds": list(run_seeds), "iterations": config.iterations, "wall_time_s": results[0].wall_time_s}
    return _write_distances(list(config.arms), list(config.batch_sizes), scores_from_results(results),
                            meta, _grid_dict(config, run_seeds), Path(out))


def _grid_dict(config: SpiralConfig, seeds: Sequence[int]) -> dict[str, Any]:
    """A grid's configuration as printed and saved: the seeds it runs in place of its ``seed``."""
    resolved = config.to_dict()
    resolved.pop("seed")
    return {**resolved, "seeds": list(seeds)}


@dataclass(frozen=True)
class SpiralStudy:
    """A spiral study as ``repmatch study NAME`` runs it (a :class:`repmatch.studies.Study`)."""

    name: str
    help: str

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--workers", type=int, default=None,
                            help="worker processes, one thread each (default: one per usable CPU; "
                            "1 runs in-process)")
        if self.name == "spiral-distances":
            parser.add_argument("--from", dest="source", default=None,
                                help="rank the cells of an earlier spiral study's results.json "
                                "(directory or file) instead of training them")

    def _overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"arms": args.arms, "batch_sizes": args.batch_sizes, "iterations": args.iterations,
                "workers": args.workers}

    def resolve(self, args: argparse.Namespace) -> dict[str, Any]:
        config = resolve_config(self.name, quick=args.quick, seeds=args.seeds, **self._overrides(args))
        if isinstance(config, BatchAxisConfig):
            return config.to_dict()
        return _grid_dict(config, args.seeds or default_seeds(self.name, args.quick))

    def run(self, args: argparse.Namespace, *, progress: bool) -> dict[str, Path]:
        return run_study(self.name, args.out, quick=args.quick, seeds=args.seeds, progress=progress,
                         source=getattr(args, "source", None), **self._overrides(args))


SPIRAL = SpiralStudy(
    "spiral", "The spiral grid (paper Fig. 3): one MLP generator per (batch size, distance) cell "
    "against a two-turn spiral embedded in R^64, scored by anchor recall / medDist and the "
    "neutral SW_r / MMD_r (default: batch sizes 8,32,128, seed 0).")
SPIRAL_BATCH = SpiralStudy(
    "spiral-batch", "The spiral batch axis (paper Fig. 4 / Table 6): one arm at batch sizes "
    "8,...,1024, matched image budget with lr ∝ √B and fixed iterations (--iterations: at the "
    "reference batch size; --arms: one arm; default: seeds 0,1,2).")
SPIRAL_DISTANCES = SpiralStudy(
    "spiral-distances", "The spiral distance ranking (paper Table 4): the grid's arms at batch "
    "sizes 32,128 ranked by two neutral distances, SW_r and MMD_r (default: seeds 0,1,2).")
#: The studies' names (each object's ``name``, as pyproject.toml's entry points register it).
STUDIES: tuple[str, ...] = tuple(study.name for study in (SPIRAL, SPIRAL_BATCH, SPIRAL_DISTANCES))


# ------------------------------------------------------------------------------ spiral-batch


def _batch_table(config: BatchAxisConfig, points: Sequence[BatchPoint], wall: float) -> str:
    several = len(config.seeds) > 1

    def pm(values: list[float], digits: int) -> str:
        m, s = mean_sd(values)
        return f"{m:.{digits}f} ± {s:.{digits}f}" if several else f"{m:.{digits}f}"

    lines = []
    for curve in CURVES:
        title = (f"Matched budget: B × iterations = {config.budget}, lr ∝ √B from lr "
                 f"{config.base.lr:g} at B = {config.reference_batch}" if curve == "matched" else
                 f"Fixed iterations: {config.reference_iterations} at every B, lr {config.base.lr:g}")
        lines += [(f"**{title}** (`{config.arm}`, mean ± sd over seeds "
                   f"{', '.join(map(str, config.seeds))})"), "",
                  "| B | iterations | lr | recall | medDist | SW_r | MMD_r |", "|---|---|---|---|---|---|---|"]
        for p in points:
            if p.curve == curve:
                lines.append(f"| {p.batch_size} | {p.iterations} | {p.lr:.2e} | {pm(p.scores('recall'), 2)} | "
                             f"{pm(p.scores('med_dist'), 3)} | {pm(p.scores('sw_ratio'), 2)} | "
                             f"{pm(p.scores('mmd_ratio'), 1)} |")
        lines += ["", (f"Lowest mean medDist at B = {best_batch(points, curve)}, lowest mean SW_r at "
                       f"B = {best_batch(points, curve, 'sw_ratio')}."), ""]
    lines.append(f"Wall time {wall:.1f} s, {config.base.workers} worker process(es) at most.")
    return "\n".join(lines) + "\n"


def _batch_figure(config: BatchAxisConfig, points: Sequence[BatchPoint]) -> bytes:
    import matplotlib  # deferred: its backend is chosen on use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("recall", "anchor recall"), ("med_dist", "medDist"), ("sw_ratio", "SW_r"),
              ("mmd_ratio", "MMD_r")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0))
    for ax, (score, label) in zip(axes, panels):
        for curve, style in zip(CURVES, ("o-", "s--")):
            on = [p for p in points if p.curve == curve]
            stats = [mean_sd(p.scores(score)) for p in on]
            ax.errorbar([p.batch_size for p in on], [m for m, _ in stats], yerr=[s for _, s in stats],
                        fmt=style, capsize=3, ms=4,
                        label="matched budget, lr ∝ √B" if curve == "matched" else "fixed iterations")
        ax.set_xscale("log", base=2)
        if score in ("sw_ratio", "mmd_ratio"):
            ax.set_yscale("log")
        ax.set_xlabel("batch size B")
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Spiral batch axis ({config.arm}); error bars: sd over seeds "
                 f"{', '.join(map(str, config.seeds))}", fontsize=9)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.93))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _write_batch(config: BatchAxisConfig, points: Sequence[BatchPoint], wall: float, out: Path) -> dict[str, Path]:
    document = {"study": "spiral-batch", "arm": config.arm, "seeds": list(config.seeds),
                "budget": config.budget,
                "reference": {"batch_size": config.reference_batch,
                              "iterations": config.reference_iterations, "lr": config.base.lr},
                "wall_time_s": wall, "points": [p.to_json() for p in points],
                "best_med_dist": {c: best_batch(points, c) for c in CURVES}}
    return {
        "figure": atomic_write(out / "spiral-batch.png", png_writer(_batch_figure(config, points))),
        "table": atomic_write_text(out / "spiral-batch.md", _batch_table(config, points, wall)),
        "results": atomic_write_json(out / "results.json", document),
        "config": atomic_write_json(out / "config.json", config.to_dict()),
    }


# -------------------------------------------------------------------------- spiral-distances


def _distances_table(arms: Sequence[str], sizes: Sequence[int], scores: Sequence[Scores],
                     ranking: dict[str, Any], meta: dict[str, Any]) -> str:
    several = len(scores) > 1

    def pm(arm: str, b: int, field: str, digits: int) -> str:
        m, s = mean_sd([sc[(arm, b)][field] for sc in scores])
        return f"{m:.{digits}f} ± {s:.{digits}f}" if several else f"{m:.{digits}f}"

    lines = []
    for b in sizes:
        r = ranking[str(b)]
        lines += [(f"**B = {b}** (mean ± sd over seeds {', '.join(map(str, meta['seeds']))}; "
                   "arms in SW_r order, best first)"), "",
                  "| arm | SW_r | MMD_r | rank SW_r | rank MMD_r | recall | medDist |",
                  "|---|---|---|---|---|---|---|"]
        for arm in r["SW_r"]["order"]:
            lines.append(f"| `{arm}` | {pm(arm, b, 'sw_ratio', 2)} | {pm(arm, b, 'mmd_ratio', 1)} | "
                         f"{r['SW_r']['order'].index(arm) + 1} | {r['MMD_r']['order'].index(arm) + 1} | "
                         f"{pm(arm, b, 'recall', 2)} | {pm(arm, b, 'med_dist', 3)} |")
        lines.append("")
        for label in NEUTRAL.values():
            e = r[label]
            taus = ", ".join(f"{t:+.2f}" for t in e["tau_seed_vs_mean"])
            paper = "; ".join(f"with `{k}` as the paper's drifting {v:+.2f}" for k, v in e["tau_vs_paper"].items())
            lines.append(f"- {label}: {' ≻ '.join(e['order'])}. Seeds with exactly this order: "
                         f"{e['seeds_matching_mean_order']} of {len(scores)} (Kendall τ of each seed's "
                         f"order to it: {taus}). τ to the paper's order: {paper or 'n/a'}.")
        lines += [f"- Kendall τ between the SW_r and MMD_r orders: {r['tau_sw_vs_mmd']:+.2f}.", ""]
    lines.append(f"Paper (Table 4): {' ≻ '.join(PAPER_ORDER)}.")
    source = f" Cells from {meta['source']}." if meta.get("source") else ""
    wall = meta.get("wall_time_s")
    lines.append(f"{meta['iterations']} iterations per cell.{source}"
                 + (f" Wall time {wall:.1f} s." if isinstance(wall, (int, float)) else ""))
    return "\n".join(lines) + "\n"


def _distances_figure(arms: Sequence[str], sizes: Sequence[int], scores: Sequence[Scores]) -> bytes:
    import matplotlib  # deferred: its backend is chosen on use

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(5.0 * len(sizes), 3.4), squeeze=False)
    width = 0.38
    for ax, b in zip(axes[0], sizes):
        for k, (field, label) in enumerate(NEUTRAL.items()):
            stats = [mean_sd([sc[(a, b)][field] for sc in scores]) for a in arms]
            ax.bar([i + (k - 0.5) * width for i in range(len(arms))], [m for m, _ in stats], width,
                   yerr=[s for _, s in stats], capsize=2, label=label)
        ax.axhline(1.0, color="0.4", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(arms, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"B = {b}: neutral ratios (lower = closer to real; 1 = real)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _write_distances(arms: Sequence[str], sizes: Sequence[int], scores: Sequence[Scores],
                     meta: dict[str, Any], config: dict[str, Any], out: Path) -> dict[str, Path]:
    ranking = ranking_summary(scores, arms, sizes)
    cells = []
    for b in sizes:
        for a in arms:
            entry: dict[str, Any] = {"batch_size": b, "arm": a}
            for field in ("recall", "med_dist", "sw_ratio", "mmd_ratio"):
                values = [sc[(a, b)][field] for sc in scores]
                entry[field], entry[f"{field}_sd"] = mean_sd(values)
                entry[f"{field}_per_seed"] = values
            cells.append(entry)
    document = {"study": "spiral-distances", **meta, "cells": cells, "ranking": ranking,
                "paper_order": list(PAPER_ORDER)}
    return {
        "figure": atomic_write(out / "spiral-distances.png", png_writer(_distances_figure(arms, sizes, scores))),
        "table": atomic_write_text(out / "spiral-distances.md", _distances_table(arms, sizes, scores, ranking, meta)),
        "results": atomic_write_json(out / "results.json", document),
        "config": atomic_write_json(out / "config.json", config),
    }
