"""The spiral diagnostic of the comparison axis (paper §3.1, Fig. 3), as a fast batched study.

One MLP generator (2-D Gaussian noise → R^64, four hidden ReLU layers of 256) is trained per
cell of a grid, rows = batch size ``B``, columns = training distance (an *arm*), against a
two-turn spiral buried in R^64 by a fixed orthonormal map (:mod:`.spiral_data`). Every arm is a
:func:`repmatch.compare.distances.create` distance fitted on the same 2000-point reference: the study
is a client of the library, with no private copy of any distance. Each cell is scored in the
plane by anchor recall and medDist (:class:`.spiral_data.SpiralScorer`).

Speed without changing what a cell computes: the cells of one batch size share a
:class:`.stacked_mlp.StackedMLP` (one batched matmul per layer), all cells share one fused Adam
(elementwise, hence per-cell exact), the per-cell losses are summed for one backward (cells do
not share parameters, so gradients do not mix), gradient clipping is per cell, and the grid is
split across worker processes of one thread each. Every random stream (initial weights,
training noise, the distance's resampling, evaluation noise) is a per-cell generator seeded
from ``(seed, arm, batch size)``, so a cell's result does not depend on how cells are grouped,
up to float rounding: the stacked matmuls block differently for another number of cells, and
8000 Adam steps amplify the rounding (docs/spiral.md). The same grid and split reproduce bit
for bit.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue as queue_module
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from ..._validate import check_choice, check_positive
from ...compare import distances
from ...compare.kernels import median_bandwidth
from .data import SpiralScorer, SpiralSpec, orthonormal_embedding, sample_spiral
from .stacked_mlp import StackedMLP, clip_grad_norm_per_cell

__all__ = [
    "ARMS",
    "SpiralCell",
    "SpiralConfig",
    "SpiralResult",
    "make_arm_distance",
    "quick_config",
    "run_spiral",
    "spiral_reference",
    "train_cells",
    "usable_cpus",
    "with_overrides",
]

#: The six arms of Fig. 3, in column order (registry names of :mod:`repmatch.compare.distances`).
ARMS: tuple[str, ...] = (
    "frechet",
    "sliced_wasserstein",
    "drifting",
    "mmd_rff",
    "mmd_exact",
    "mmd_nystrom",
)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one, else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


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
    # scoring
    num_eval: int = 4000
    num_anchors: int = 60
    anchor_radius: float = 0.15
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
                     "num_eval", "num_anchors", "workers"):
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
    entropy = [seed, ARMS.index(arm), batch_size, stream]
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
    elif arm == "drifting":
        dist = distances.create("drifting", bank_size=config.drift_bank, radii=config.drift_radii, seed=config.seed)
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
) -> dict[tuple[str, int], torch.Tensor]:
    """Train the generators of ``cells`` (``(arm, batch_size)`` pairs) together.

    Returns, per cell, ``num_eval`` generated points mapped back to the plane, (num_eval, 2).
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
                results[cell] = out @ q
    return results


#: Relative per-row cost of each arm's distance call + backward, in units of one generator row
#: (forward + backward through the MLP), and a fixed per-cell cost in the same units; measured
#: single-threaded with ``benchmarks/bench_spiral.py`` (per-call CPU at B = 8 and 128).
#: Only the work split between processes uses them: results do not depend on the split.
_ARM_ROW_COST = {
    "frechet": 1.2,
    "sliced_wasserstein": 2.0,
    "drifting": 1.25,
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


def _worker(config: SpiralConfig, cells: list[tuple[str, int]], queue: Any) -> None:
    """Worker-process entry: one thread, report progress and results through ``queue``."""
    try:
        torch.set_num_threads(1)
        out = train_cells(config, cells, on_progress=lambda n: queue.put(("tick", n * len(cells))))
        queue.put(("done", {c: v.numpy() for c, v in out.items()}))
    except Exception:
        queue.put(("error", traceback.format_exc()))


def _run_workers(config: SpiralConfig, bar: Any) -> dict[tuple[str, int], torch.Tensor]:

    ctx = mp.get_context("spawn")  # fork after torch's thread pools exist can deadlock
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(config, part, queue), daemon=True)
             for part in _partition(config.cells, config.workers)]
    for p in procs:
        p.start()
    try:
        return _collect(queue, procs, bar)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()


def _collect(queue: Any, procs: Sequence[Any], bar: Any, poll_s: float = 1.0) -> dict[tuple[str, int], torch.Tensor]:
    """Gather the workers' ticks and results; raise if a worker fails or dies without reporting.

    A worker killed from outside (out of memory, a signal) never sends "done", so the queue is
    polled and the processes checked between reads instead of blocking forever.
    """

    results: dict[tuple[str, int], torch.Tensor] = {}
    remaining = len(procs)
    while remaining:
        try:
            kind, payload = queue.get(timeout=poll_s)
        except queue_module.Empty:
            dead = [p.exitcode for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
            if dead:
                raise RuntimeError(
                    f"a spiral worker exited with code {dead[0]} without reporting "
                    "(killed by a signal if negative, e.g. -9 when out of memory)"
                ) from None
            continue
        if kind == "tick":
            bar.update(payload)
        elif kind == "done":
            results.update({c: torch.from_numpy(v) for c, v in payload.items()})
            remaining -= 1
        else:
            raise RuntimeError(f"a spiral worker failed:\n{payload}")
    return results


@dataclass
class SpiralCell:
    """One trained cell: its scores and its planar evaluation samples (num_eval, 2)."""

    batch_size: int
    arm: str
    recall: float
    med_dist: float
    samples: torch.Tensor


@dataclass
class SpiralResult:
    """A finished study: cells in row-major order, real-data floor, timing and machine load."""

    config: SpiralConfig
    cells: list[SpiralCell]
    real_floor: float
    real_recall: float
    wall_time_s: float
    load_avg: tuple[float, float, float]

    def to_json(self) -> dict[str, Any]:
        """``{"real_floor", "wall_time_s", "cells": [{"batch_size", "arm", "recall", "med_dist"}]}``."""
        return {
            "real_floor": self.real_floor,
            "wall_time_s": self.wall_time_s,
            "cells": [
                {"batch_size": c.batch_size, "arm": c.arm, "recall": c.recall, "med_dist": c.med_dist}
                for c in self.cells
            ],
        }

    def cell(self, arm: str, batch_size: int) -> SpiralCell:
        for c in self.cells:
            if c.arm == arm and c.batch_size == batch_size:
                return c
        raise KeyError(f"no cell (arm={arm!r}, batch_size={batch_size}) in this result")


def run_spiral(config: SpiralConfig = SpiralConfig(), *, progress: bool = True) -> SpiralResult:
    """Train and score every cell of ``config``'s grid; the wall time covers the whole study."""

    start = time.perf_counter()
    total = config.iterations * len(config.cells)
    with tqdm(total=total, disable=not progress, unit="it", unit_scale=True, desc="spiral") as bar:
        if config.workers == 1:
            # One thread, like each worker: at these sizes a second OpenMP thread gains little
            # on a quiet machine and spin-waits badly on a busy one.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                samples = train_cells(
                    config, config.cells, on_progress=lambda n: bar.update(n * len(config.cells))
                )
            finally:
                torch.set_num_threads(threads)
        else:
            samples = _run_workers(config, bar)
    scorer = SpiralScorer(config.spiral, num_anchors=config.num_anchors, radius=config.anchor_radius)
    cells = []
    for arm, b in config.cells:
        recall, med = scorer.score(samples[(arm, b)])
        cells.append(SpiralCell(batch_size=b, arm=arm, recall=recall, med_dist=med, samples=samples[(arm, b)]))
    # The floor: fresh real data scored like a generator (its own stream, not the reference set).
    real = sample_spiral(config.num_eval, spec=config.spiral,
                         generator=torch.Generator().manual_seed(config.seed + 1))
    real_recall, real_floor = scorer.score(real)
    wall = time.perf_counter() - start
    return SpiralResult(config=config, cells=cells, real_floor=real_floor, real_recall=real_recall,
                        wall_time_s=wall, load_avg=os.getloadavg())


def with_overrides(config: SpiralConfig, **overrides: Any) -> SpiralConfig:
    """``config`` with the non-``None`` ``overrides`` applied (CLI flags left unset keep defaults)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
