"""The batch axis on the spiral (paper Fig. 4 / Table 6): one arm against the batch size B.

Two curves, each cell a one-arm spiral run (:func:`.grid.train_cells`, scored like the grid):

- **matched budget**: a fixed number of generated samples, ``B × iterations = B_ref × T_ref``,
  with the learning rate scaled as ``√B`` from the reference point (Malladi et al., as the
  paper's sweep): ``lr(B) = lr_ref √(B / B_ref)``, ``lr_final`` likewise, ``T(B) = B_ref T_ref / B``;
- **fixed iterations**: ``T_ref`` iterations and ``lr_ref`` at every B (how the released toy
  sweeps B; a larger B then also sees more samples).

The two curves share the reference cell (``B_ref``, ``T_ref``, ``lr_ref``), trained once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ...validate import check_choice, check_positive
from .report import mean_sd
from .runner import Job, run_jobs
from .grid import ARMS, SpiralConfig, SpiralResult, cell_cost, score_samples, train_cells_ambient

__all__ = ["CURVES", "BatchAxisConfig", "BatchPoint", "batch_axis_jobs", "run_batch_axis"]

CURVES: tuple[str, ...] = ("matched", "fixed")


@dataclass(frozen=True, kw_only=True)
class BatchAxisConfig:
    """The sweep: ``arm`` at each of ``batch_sizes``, both curves, every seed of ``seeds``."""

    arm: str = "mmd_nystrom"
    batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024)
    reference_batch: int = 128
    reference_iterations: int = 2000
    seeds: tuple[int, ...] = (0, 1, 2)
    #: everything else of a cell (generator, optimiser at B_ref, scoring, workers)
    base: SpiralConfig = field(default_factory=SpiralConfig)

    def __post_init__(self) -> None:
        check_choice("arm", self.arm, ARMS)
        if not self.batch_sizes or len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError(f"batch_sizes must list distinct batch sizes, got {list(self.batch_sizes)}")
        for b in self.batch_sizes:
            check_positive("batch_sizes[i]", b, integer=True)
        check_positive("reference_batch", self.reference_batch, integer=True)
        check_positive("reference_iterations", self.reference_iterations, integer=True)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must list distinct seeds, got {list(self.seeds)}")

    @property
    def budget(self) -> int:
        """Generated samples per cell on the matched curve, ``B_ref × T_ref``."""
        return self.reference_batch * self.reference_iterations

    def cell_config(self, curve: str, batch_size: int, seed: int) -> SpiralConfig:
        """The one-cell spiral configuration of ``(curve, batch_size, seed)``."""
        check_choice("curve", curve, CURVES)
        base = replace(self.base, arms=(self.arm,), batch_sizes=(batch_size,), seed=seed)
        if curve == "fixed":
            return replace(base, iterations=self.reference_iterations)
        scale = math.sqrt(batch_size / self.reference_batch)
        return replace(base, iterations=max(1, round(self.budget / batch_size)),
                       lr=self.base.lr * scale, lr_final=self.base.lr_final * scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _identity(c: SpiralConfig) -> tuple[Any, ...]:
    return (c.batch_sizes, c.iterations, c.lr, c.lr_final, c.seed)


def batch_axis_jobs(config: BatchAxisConfig) -> list[Job]:
    """One job per distinct cell configuration (the curves' shared reference cell once)."""
    jobs: dict[tuple[Any, ...], Job] = {}
    for curve in CURVES:
        for b in config.batch_sizes:
            for s in config.seeds:
                c = config.cell_config(curve, b, s)
                cells = tuple(c.cells)
                jobs.setdefault(_identity(c), Job(key=_identity(c), config=c, cells=cells,
                                                  iterations=c.iterations, cost=cell_cost(c, cells)))
    return list(jobs.values())


@dataclass
class BatchPoint:
    """One (curve, B): its settings and the per-seed results (one cell each)."""

    curve: str
    batch_size: int
    iterations: int
    lr: float
    runs: list[SpiralResult]

    def scores(self, name: str) -> list[float]:
        return [getattr(r.cells[0], name) for r in self.runs]

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"curve": self.curve, "batch_size": self.batch_size,
                                 "iterations": self.iterations, "lr": self.lr,
                                 "seeds": [r.config.seed for r in self.runs]}
        for name in ("recall", "med_dist", "sw_ratio", "mmd_ratio"):
            values = self.scores(name)
            entry[name], entry[f"{name}_sd"] = mean_sd(values)
            entry[f"{name}_per_seed"] = values
        return entry


def run_batch_axis(config: BatchAxisConfig, *, progress: bool = True) -> tuple[list[BatchPoint], float]:
    """Train and score every (curve, B, seed); returns the points (curve-major) and the wall time."""
    start = time.perf_counter()
    jobs = batch_axis_jobs(config)
    out = run_jobs(jobs, train_cells_ambient, workers=config.base.workers, progress=progress,
                   desc="spiral-batch")
    wall = time.perf_counter() - start
    scored = {j.key: score_samples(j.config, out[j.key], wall_time_s=wall) for j in jobs}
    points = []
    for curve in CURVES:
        for b in config.batch_sizes:
            first = config.cell_config(curve, b, config.seeds[0])
            runs = [scored[_identity(config.cell_config(curve, b, s))] for s in config.seeds]
            points.append(BatchPoint(curve=curve, batch_size=b, iterations=first.iterations,
                                     lr=first.lr, runs=runs))
    return points, time.perf_counter() - start


def best_batch(points: Sequence[BatchPoint], curve: str, score: str = "med_dist") -> int:
    """The batch size with the lowest mean ``score`` on ``curve``."""
    on_curve = [p for p in points if p.curve == curve]
    return min(on_curve, key=lambda p: mean_sd(p.scores(score))[0]).batch_size
