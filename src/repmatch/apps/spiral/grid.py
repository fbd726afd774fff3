"""The spiral diagnostic of the comparison axis (paper §3.1, Fig. 3), as a fast batched study.

One MLP generator (2-D Gaussian noise → R^64, four hidden ReLU layers of 256) is trained per
cell of a grid, rows = batch size ``B``, columns = training distance (an *arm*), against a
two-turn spiral buried in R^64 by a fixed orthonormal map (:mod:`.data`). Every arm is a
:func:`repmatch.compare.distances.create` distance fitted on the same 2000-point reference: the study
is a client of the library, with no private copy of any distance. Each cell is scored in the
plane by anchor recall and medDist (:class:`.data.SpiralScorer`) and in R^64 by two neutral
distances no arm trains on, SW_r and MMD_r (:class:`.neutral.NeutralScorer`).

Speed without changing what a cell computes: the cells of one batch size share a
:class:`.stacked_mlp.StackedMLP` (one batched matmul per layer), all cells share one fused Adam
(elementwise, hence per-cell exact), the per-cell losses are summed for one backward (cells do
not share parameters, so gradients do not mix), gradient clipping is per cell, and the grid is
split across worker processes of one thread each (:mod:`.runner`). Every random stream (initial weights,
training noise, the distance's resampling, evaluation noise) is a per-cell generator seeded
from ``(seed, arm, batch size)``, so a cell's result does not depend on how cells are grouped,
up to float rounding: the stacked matmuls block differently for another number of cells, and
8000 Adam steps amplify the rounding (docs/spiral.md). The same grid and split reproduce bit
for bit.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ...threads import usable_cpus
from ...validate import check_choice, check_positive
from ...compare import distances
from ...compare.kernels import median_bandwidth
from .data import SpiralScorer, SpiralSpec, orthonormal_embedding, sample_spiral
from .neutral import NeutralScorer
from .runner import Job, run_jobs
from .stacked_mlp import StackedMLP, clip_grad_norm_per_cell

__all__ = [
    "ARMS",
    "SpiralCell",
    "SpiralConfig",
    "SpiralResult",
    "cell_cost",
    "grid_jobs",
    "make_arm_distance",
    "quick_config",
    "run_spiral",
    "run_spiral_seeds",
    "score_samples",
    "spiral_reference",
    "train_cells",
    "train_cells_ambient",
    "usable_cpus",
    "with_overrides",
]

#: The arms, in column order: the six of Fig. 3 (registry names of
#: :mod:`repmatch.compare.distances`) and ``drifting_floor``, the drifting distance with the
#: released port's affinity floor (``SpiralConfig.drift_floor``), beside ``drifting``.
ARMS: tuple[str, ...] = (
    "frechet",
    "sliced_wasserstein",
    "drifting",
    "drifting_floor",
    "mmd_rff",
    "mmd_exact",
    "mmd_nystrom",
)

#: Random-stream index of each arm. The six arms of Fig. 3 keep the indices they had before
#: ``drifting_floor`` existed; ``drifting_floor`` shares ``drifting``'s streams (initial weights,
#: noise, bank draws), so within a seed the floor is the only difference between the two cells.
_STREAM_ARM = {"frechet": 0, "sliced_wasserstein": 1, "drifting": 2, "drifting_floor": 2,
               "mmd_rff": 3, "mmd_exact": 4, "mmd_nystrom": 5}


@dataclass(frozen=True, kw_only=True)
class SpiralConfig:
    """Everything that fixes a spiral study run. Defaults are the paper's Fig. 3 settings."""

    arms: tuple[str, ...] = ARMS
    batch_sizes: tuple[int, ...] = (8, 32, 128)
    iterations: int = 8000
    seed: int = 0
    # data and embedding
    dim: int = 64
    num_reference: int = 2000
    spiral: SpiralSpec = field(default_factory=SpiralSpec)
    # generator and optimiser (identical for every arm)
    noise_dim: int = 2
    hidden_width: int = 256
    hidden_layers: int = 4
    lr: float = 1e-3
    lr_final: float = 1e-4
    grad_clip: float = 2.0
    # arms
    bandwidth_factors: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6)
    num_features: int = 512  # random features (mmd_rff) / landmarks (mmd_nystrom) per scale
    num_projections: int = 1000  # sliced_wasserstein
    drift_bank: int = 128  # drifting: reference samples per step
    drift_radii: tuple[float, ...] = (0.06, 0.2)  # drifting: × mean pairwise distance
    drift_floor: float = 1e-6  # drifting_floor: the released port's affinity floor
    # scoring
    num_eval: int = 4000
    num_anchors: int = 60
    anchor_radius: float = 0.15
    neutral_projections: int = 1024  # SW_r (the paper's M = 1024)
    neutral_features: int = 4096  # MMD_r (the paper's 4096 random Fourier features)
    # execution: one single-thread process per usable CPU (the split caps it at the cell count)
    workers: int = field(default_factory=usable_cpus)

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("arms must name at least one arm, got ()")
        for arm in self.arms:
            check_choice("arms[i]", arm, ARMS)
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms must not repeat, got {list(self.arms)}")
        if not self.batch_sizes:
            raise ValueError("batch_sizes must list at least one batch size, got ()")
        for b in self.batch_sizes:
            check_positive("batch_sizes[i]", b, integer=True)
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError(f"batch_sizes must not repeat, got {list(self.batch_sizes)}")
        for name in ("iterations", "dim", "num_reference", "noise_dim", "hidden_width",
                     "hidden_layers", "num_features", "num_projections", "drift_bank",
                     "num_eval", "num_anchors", "workers", "neutral_projections", "neutral_features"):
            check_positive(name, getattr(self, name), integer=True)
        for name in ("lr", "lr_final", "grad_clip", "anchor_radius"):
            check_positive(name, getattr(self, name))
        if self.lr_final > self.lr:
            raise ValueError(f"lr_final must be <= lr ({self.lr}), got {self.lr_final}")
        if self.dim < 2:
            raise ValueError(f"dim must be >= 2 to hold the planar spiral, got {self.dim}")
        for f in self.bandwidth_factors:
            check_positive("bandwidth_factors[i]", f)
        for r in self.drift_radii:
            check_positive("drift_radii[i]", r)
        check_positive("drift_floor", self.drift_floor)
        if self.drift_floor >= 1.0:
            raise ValueError(f"drift_floor must be in (0, 1), got {self.drift_floor}")

    @property
    def cells(self) -> list[tuple[str, int]]:
        """The grid's ``(arm, batch_size)`` cells, row-major (batch size, then arm)."""
        return [(arm, b) for b in self.batch_sizes for arm in self.arms]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_config(**overrides: Any) -> SpiralConfig:
    """A seconds-long smoke-test configuration (few iterations, in-process, small evaluation)."""
    base: dict[str, Any] = {"iterations": 40, "workers": 1, "num_eval": 1000}
    base.update(overrides)
    return SpiralConfig(**base)


def _cell_seed(seed: int, arm: str, batch_size: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one cell, independent of the grid's layout."""
    entropy = [seed, _STREAM_ARM[arm], batch_size, stream]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


_INIT, _NOISE, _RESAMPLE, _EVAL = range(4)


def spiral_reference(config: SpiralConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(reference (num_reference, dim), Q (dim, 2))``: the embedded data set and the map."""
    q = orthonormal_embedding(config.dim, seed=config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    points = sample_spiral(config.num_reference, spec=config.spiral, generator=gen)
    return points @ q.T, q


def make_arm_distance(arm: str, reference: torch.Tensor, config: SpiralConfig) -> Any:
    """The fitted :mod:`repmatch.compare.distances` distance of ``arm`` on ``reference`` (N, D).

    The arms that resample (``sliced_wasserstein``, ``mmd_exact``: B rows; ``drifting``: a
    bank) draw from ``reference`` with the ``generator`` passed at each call.
    """

    check_choice("arm", arm, ARMS)
    if arm.startswith("mmd_"):
        # One bandwidth for the whole MMD family, so the three arms share one kernel.
        sigma = median_bandwidth(reference, seed=config.seed)
        kernel: dict[str, Any] = {"bandwidth": sigma, "scales": config.bandwidth_factors}
    if arm == "frechet":
        dist = distances.create("frechet")
    elif arm == "sliced_wasserstein":
        # Each call draws fresh projections and B fresh reference rows (B = the batch's size).
        dist = distances.create("sliced_wasserstein", num_projections=config.num_projections, seed=config.seed)
    elif arm in ("drifting", "drifting_floor"):
        floor = config.drift_floor if arm == "drifting_floor" else 0.0
        dist = distances.create("drifting", bank_size=config.drift_bank, radii=config.drift_radii,
                                affinity_floor=floor, seed=config.seed)
    elif arm == "mmd_rff":
        dist = distances.create("mmd_rff", num_features=config.num_features, seed=config.seed, **kernel)
    elif arm == "mmd_exact":
        # sample_size=None: B fresh reference rows per call, B = the batch's size.
        dist = distances.create("mmd_exact", seed=config.seed, **kernel)
    else:
        dist = distances.create("mmd_nystrom", num_landmarks=config.num_features, seed=config.seed, **kernel)
    return dist.fit(reference)


def _cosine_lr(config: SpiralConfig, step: int) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr_final`` at the last step."""
    frac = step / max(1, config.iterations - 1)
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1.0 + math.cos(math.pi * frac))


@dataclass
class _Group:
    """The cells of one batch size inside one process."""

    batch_size: int
    cells: list[tuple[str, int]]
    mlp: StackedMLP
    distances: list[Any]
    noise: list[torch.Generator]
    resample: list[torch.Generator]


def train_cells(
    config: SpiralConfig,
    cells: Sequence[tuple[str, int]],
    *,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 50,
    ambient: bool = False,
) -> dict[tuple[str, int], torch.Tensor]:
    """Train the generators of ``cells`` (``(arm, batch_size)`` pairs) together.

    Returns, per cell, ``num_eval`` generated points mapped back to the plane, (num_eval, 2), or
    with ``ambient=True`` the generated features themselves, (num_eval, dim).
    ``on_progress(n)`` is called every ``progress_every`` iterations with the iterations done
    since the last call. Raises ``FloatingPointError`` naming the cell if a gradient goes
    non-finite (NaN never reaches the optimizer).
    """
    reference, q = spiral_reference(config)
    widths = [config.noise_dim] + [config.hidden_width] * config.hidden_layers + [config.dim]
    # A distance does not depend on the batch size (resampling follows the call's batch), so each
    # arm is fitted once and shared by its cells.
    fitted = {arm: make_arm_distance(arm, reference, config) for arm in dict.fromkeys(a for a, _ in cells)}
    groups: list[_Group] = []
    for b in sorted({b for _, b in cells}):
        members = [c for c in cells if c[1] == b]
        groups.append(
            _Group(
                batch_size=b,
                cells=members,
                mlp=StackedMLP(widths, [_cell_seed(config.seed, a, b, _INIT) for a, _ in members]),
                distances=[fitted[a] for a, _ in members],
                noise=[torch.Generator().manual_seed(_cell_seed(config.seed, a, b, _NOISE)) for a, _ in members],
                resample=[torch.Generator().manual_seed(_cell_seed(config.seed, a, b, _RESAMPLE)) for a, _ in members],
            )
        )
    params = [p for g in groups for p in g.mlp.parameters()]
    # Fused Adam: one kernel over all stacked tensors; a foreach/for-loop Adam costs more than
    # the whole forward-backward at this size.
    opt = torch.optim.Adam(params, lr=config.lr, fused=True)
    pending = 0
    for step in range(config.iterations):
        opt.param_groups[0]["lr"] = _cosine_lr(config, step)
        total = torch.zeros(())
        for g in groups:
            z = torch.stack([torch.randn(g.batch_size, config.noise_dim, generator=r) for r in g.noise])
            for out, dist, r in zip(g.mlp(z).unbind(0), g.distances, g.resample):
                total = total + dist(out, generator=r)
        opt.zero_grad(set_to_none=True)
        total.backward()
        norms = [clip_grad_norm_per_cell(list(g.mlp.parameters()), config.grad_clip) for g in groups]
        if not bool(torch.isfinite(torch.cat(norms)).all()):
            bad = [c for g, n in zip(groups, norms) for c, v in zip(g.cells, n.tolist()) if not math.isfinite(v)]
            raise FloatingPointError(f"non-finite gradient at step {step} in cells {bad}")
        opt.step()
        pending += 1
        if on_progress is not None and (pending == progress_every or step == config.iterations - 1):
            on_progress(pending)
            pending = 0
    results: dict[tuple[str, int], torch.Tensor] = {}
    with torch.no_grad():
        for g in groups:
            z = torch.stack([
                torch.randn(config.num_eval, config.noise_dim,
                            generator=torch.Generator().manual_seed(_cell_seed(config.seed, a, b, _EVAL)))
                for a, b in g.cells
            ])
            for cell, out in zip(g.cells, g.mlp(z)):
                results[cell] = out if ambient else out @ q
    return results


def train_cells_ambient(
    config: SpiralConfig, cells: Sequence[tuple[str, int]], *, on_progress: Callable[[int], None] | None = None
) -> dict[tuple[str, int], torch.Tensor]:
    """:func:`train_cells` returning features in R^dim (the runner's training function)."""
    return train_cells(config, cells, on_progress=on_progress, ambient=True)


#: Relative per-row cost of each arm's distance call + backward, in units of one generator row
#: (forward + backward through the MLP), and a fixed per-cell cost in the same units; measured
#: single-threaded with ``benchmarks/bench_spiral.py`` (per-call CPU at B = 8 and 128).
#: Only the work split between processes uses them: results do not depend on the split.
_ARM_ROW_COST = {
    "frechet": 1.2,
    "sliced_wasserstein": 2.0,
    "drifting": 1.25,
    "drifting_floor": 1.25,
    "mmd_rff": 1.7,
    "mmd_exact": 1.25,
    "mmd_nystrom": 1.35,
}
_CELL_FIXED_COST = 28.0


def _cell_cost(cell: tuple[str, int]) -> float:
    arm, batch_size = cell
    return _CELL_FIXED_COST + _ARM_ROW_COST[arm] * batch_size


def _partition(cells: Sequence[tuple[str, int]], workers: int) -> list[list[tuple[str, int]]]:
    """Split cells over ``workers`` (longest-processing-time-first on the estimated cost)."""
    parts: list[list[tuple[str, int]]] = [[] for _ in range(min(workers, len(cells)))]
    load = [0.0] * len(parts)
    for cell in sorted(cells, key=lambda c: -_cell_cost(c)):
        i = load.index(min(load))
        parts[i].append(cell)
        load[i] += _cell_cost(cell)
    return parts


@dataclass
class SpiralCell:
    """One trained cell: its scores and its planar evaluation samples (num_eval, 2)."""

    batch_size: int
    arm: str
    recall: float
    med_dist: float
    samples: torch.Tensor
    sw_ratio: float = math.nan  # SW_r in R^dim vs held-out real (1 ≈ a fresh real draw)
    mmd_ratio: float = math.nan  # MMD_r (RFF-MMD² ratio) likewise


@dataclass
class SpiralResult:
    """A finished study: cells in row-major order, real-data floor, timing and machine load."""

    config: SpiralConfig
    cells: list[SpiralCell]
    real_floor: float
    real_recall: float
    wall_time_s: float
    load_avg: tuple[float, float, float]
    #: fresh real draws scored by the neutral distances: (SW_r, MMD_r) each (≈ 1 on average)
    real_neutral: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"seed", "real_floor", "real_neutral", "wall_time_s", "cells": [{"batch_size", "arm",
        "recall", "med_dist", "sw_ratio", "mmd_ratio"}]}``."""
        return {
            "seed": self.config.seed,
            "real_floor": self.real_floor,
            "real_neutral": [list(r) for r in self.real_neutral],
            "wall_time_s": self.wall_time_s,
            "cells": [
                {"batch_size": c.batch_size, "arm": c.arm, "recall": c.recall, "med_dist": c.med_dist,
                 "sw_ratio": c.sw_ratio, "mmd_ratio": c.mmd_ratio}
                for c in self.cells
            ],
        }

    def cell(self, arm: str, batch_size: int) -> SpiralCell:
        for c in self.cells:
            if c.arm == arm and c.batch_size == batch_size:
                return c
        raise KeyError(f"no cell (arm={arm!r}, batch_size={batch_size}) in this result")


def grid_jobs(config: SpiralConfig, key: Any = None) -> list[Job]:
    """``config``'s grid as runner jobs: the cells split over ``config.workers`` by cost."""
    parts = _partition(config.cells, config.workers)
    return [
        Job(key=(key, i), config=config, cells=tuple(part), iterations=config.iterations,
            cost=cell_cost(config, part))
        for i, part in enumerate(parts)
    ]


def cell_cost(config: SpiralConfig, cells: Sequence[tuple[str, int]]) -> float:
    """Estimated cost of training ``cells`` for ``config.iterations`` (the runner's split key)."""
    return config.iterations * sum(_cell_cost(c) for c in cells)


@functools.lru_cache(maxsize=8)
def _neutral_scorer(seed: int, dim: int, num_samples: int, num_projections: int, num_features: int,
                    spec: SpiralSpec) -> NeutralScorer:
    # Its real draws depend on the seed and sizes only: studies that score many configurations
    # of one seed (the batch axis) build it once.
    return NeutralScorer(orthonormal_embedding(dim, seed=seed), seed, num_samples=num_samples,
                         num_projections=num_projections, num_features=num_features, spec=spec)


def score_samples(
    config: SpiralConfig, features: dict[tuple[str, int], torch.Tensor], *, wall_time_s: float
) -> SpiralResult:
    """Score trained cells (``{cell: (num_eval, dim) features}``) into a :class:`SpiralResult`.

    Recall and medDist in the plane (features mapped back by Qᵀ); SW_r and MMD_r in R^dim against
    held-out real features of the same seed.
    """
    _, q = spiral_reference(config)
    scorer = SpiralScorer(config.spiral, num_anchors=config.num_anchors, radius=config.anchor_radius)
    neutral = _neutral_scorer(config.seed, config.dim, config.num_eval, config.neutral_projections,
                              config.neutral_features, config.spiral)
    order = [c for c in config.cells if c in features]
    ratios = neutral.score([features[c] for c in order])
    cells = []
    for (arm, b), (sw_r, mmd_r) in zip(order, ratios):
        planar = features[(arm, b)] @ q
        recall, med = scorer.score(planar)
        cells.append(SpiralCell(batch_size=b, arm=arm, recall=recall, med_dist=med, samples=planar,
                                sw_ratio=sw_r, mmd_ratio=mmd_r))
    # The floor: fresh real data scored like a generator (its own stream, not the reference set).
    real = sample_spiral(config.num_eval, spec=config.spiral,
                         generator=torch.Generator().manual_seed(config.seed + 1))
    real_recall, real_floor = scorer.score(real)
    return SpiralResult(config=config, cells=cells, real_floor=real_floor, real_recall=real_recall,
                        wall_time_s=wall_time_s, load_avg=os.getloadavg(),
                        real_neutral=neutral.real_ratios)


def run_spiral_seeds(
    config: SpiralConfig, seeds: Sequence[int], *, progress: bool = True
) -> list[SpiralResult]:
    """The grid of ``config`` once per seed (``config.seed`` replaced), all seeds' jobs in one
    pool of ``config.workers`` processes; each seed's cells are split as a single-seed run
    splits them, so a seed's cells do not depend on how many seeds run beside it."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must list at least one seed, without repeats, got {list(seeds)}")
    start = time.perf_counter()
    configs = {s: replace(config, seed=s) for s in seeds}
    jobs = [j for s, c in configs.items() for j in grid_jobs(c, key=s)]
    out = run_jobs(jobs, train_cells_ambient, workers=config.workers, progress=progress, desc="spiral")
    features: dict[int, dict[tuple[str, int], torch.Tensor]] = {s: {} for s in seeds}
    for key, cells in out.items():
        assert isinstance(key, tuple)  # grid_jobs keys are (seed, part)
        features[key[0]].update(cells)
    wall = time.perf_counter() - start
    return [score_samples(configs[s], features[s], wall_time_s=wall) for s in seeds]


def run_spiral(config: SpiralConfig = SpiralConfig(), *, progress: bool = True) -> SpiralResult:
    """Train and score every cell of ``config``'s grid; the wall time covers the whole study."""
    return run_spiral_seeds(config, (config.seed,), progress=progress)[0]


def with_overrides(config: SpiralConfig, **overrides: Any) -> SpiralConfig:
    """``config`` with the non-``None`` ``overrides`` applied (CLI flags left unset keep defaults)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
