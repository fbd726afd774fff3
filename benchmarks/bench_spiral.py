"""Spiral study speed: the batched harness vs cell-after-cell training (like the paper's release).

Both paths run the same cells, distances and optimiser settings for ``--iterations`` steps per
cell on one thread; the baseline trains one ``nn.Sequential`` per cell with its own Adam and
``clip_grad_norm_``, one cell after the other. Prints per-step times, the ratio, CPU time
(``time.process_time``, robust to other load on the machine) and the load average, and the
projected time of the full 8000-iteration grid on W single-thread workers.

The last table runs the W workers concurrently, as ``repmatch spiral`` does, twice: with the
library's distances and with every distance replaced by a zero-cost loss ``mean(x²)``. The
second row is the harness's floor (generator forward/backward, clipping, Adam: the work the
setup prescribes for every arm, with the workers sharing the machine's caches and memory);
its projection bounds from below what any distance implementation can reach.

    PYTHONPATH=src python benchmarks/bench_spiral.py [--iterations 30] [--workers 2] [--concurrent-iterations 300]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any

import torch
from torch import nn

from repmatch.apps.spiral import grid as sp


def _sequential(config: sp.SpiralConfig) -> float:
    """CPU seconds of cell-after-cell training of the whole grid (setup excluded)."""
    reference, _ = sp.spiral_reference(config)
    fitted = {a: sp.make_arm_distance(a, reference, config) for a in config.arms}
    total = 0.0
    for arm, b in config.cells:
        widths = [config.noise_dim] + [config.hidden_width] * config.hidden_layers + [config.dim]
        layers: list[nn.Module] = []
        for i, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Linear(fi, fo)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
        model = nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        gen = torch.Generator().manual_seed(0)
        start = time.process_time()
        for step in range(config.iterations):
            opt.param_groups[0]["lr"] = sp._cosine_lr(config, step)
            loss = fitted[arm](model(torch.randn(b, config.noise_dim, generator=gen)), generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
        total += time.process_time() - start
    return total


def _split_by_rows(cells: list[tuple[str, int]], workers: int) -> list[list[tuple[str, int]]]:
    """The naive split: balance the summed batch size only."""
    parts: list[list[tuple[str, int]]] = [[] for _ in range(workers)]
    for cell in sorted(cells, key=lambda c: -c[1]):
        min(parts, key=lambda p: sum(b for _, b in p)).append(cell)
    return parts


def _batched(config: sp.SpiralConfig, cells: list[tuple[str, int]] | None = None) -> float:
    """CPU seconds of the batched harness over the whole grid, setup (fits, scoring) excluded.

    The steps are timed between the progress callbacks after the first and the last step
    (``iterations - 1`` steps), so the setup's own variance does not leak into the result.
    """
    ticks: list[float] = []
    sp.train_cells(config, config.cells if cells is None else cells,
                   on_progress=lambda _: ticks.append(time.process_time()), progress_every=1)
    return (ticks[-1] - ticks[0]) * config.iterations / (config.iterations - 1)


def _per_arm(config: sp.SpiralConfig, calls: int = 30) -> dict[tuple[str, int], float]:
    """CPU ms of one distance call + backward, per (arm, batch size): the harness's floor."""
    reference, _ = sp.spiral_reference(config)
    out = {}
    for arm in config.arms:
        dist = sp.make_arm_distance(arm, reference, config)
        gen = torch.Generator().manual_seed(0)
        for b in config.batch_sizes:
            x = torch.randn(b, config.dim, requires_grad=True)
            dist(x, generator=gen).backward()
            start = time.process_time()
            for _ in range(calls):
                dist(x, generator=gen).backward()
            out[(arm, b)] = 1e3 * (time.process_time() - start) / calls
    return out


class _ZeroCost:
    """A stand-in distance with no distance work: ``mean(x²)``."""

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return x.square().mean()


_LIBRARY_DISTANCE = sp.make_arm_distance


def _worker_ms_per_step(config: sp.SpiralConfig, cells: list[tuple[str, int]], zero_cost: bool, queue: Any) -> None:
    """Child process: wall ms per step of ``cells`` (the first tenth of steps skipped as warm-up)."""
    torch.set_num_threads(1)
    # train_cells looks the factory up at call time, so this swaps every arm's distance.
    sp.make_arm_distance = (lambda *_: _ZeroCost()) if zero_cost else _LIBRARY_DISTANCE
    ticks: list[float] = []
    sp.train_cells(config, cells, on_progress=lambda _: ticks.append(time.perf_counter()), progress_every=1)
    skip = len(ticks) // 10
    queue.put(1e3 * (ticks[-1] - ticks[skip]) / (len(ticks) - 1 - skip))


def _concurrent(config: sp.SpiralConfig, workers: int, zero_cost: bool) -> list[float]:
    """Per-worker wall ms per step with the harness's split, all workers running at once."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker_ms_per_step, args=(config, part, zero_cost, queue))
             for part in sp._partition(config.cells, workers)]
    for p in procs:
        p.start()
    times = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrent-iterations", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = sp.SpiralConfig(iterations=args.iterations, num_eval=100)
    seq = _sequential(config)
    bat = _batched(config)
    full = sp.SpiralConfig().iterations
    print(f"load average {os.getloadavg()}, threads 1, {len(config.cells)} cells, {args.iterations} it/cell")
    print(f"{'path':<28}{'CPU ms/grid-step':>18}{'ratio':>8}{'full grid CPU s':>17}")
    for name, t in (("cell after cell (baseline)", seq), ("batched harness", bat)):
        ms = 1e3 * t / args.iterations
        print(f"{name:<28}{ms:>18.1f}{seq / t:>8.2f}{ms * full / 1e3:>17.0f}")
    print(f"\nper-worker CPU s of the batched harness ({args.workers} workers, {args.iterations} it)")
    for name, parts in (("split by summed B", _split_by_rows(config.cells, args.workers)),
                        ("split by cost model", sp._partition(config.cells, args.workers))):
        times = [_batched(sp.with_overrides(config, arms=tuple(dict.fromkeys(a for a, _ in p))), p)
                 for p in parts]
        print(f"  {name:<22}" + " ".join(f"{t:7.2f}" for t in times) + f"   max/mean {max(times) / (sum(times) / len(times)):.2f}")
    costs = _per_arm(config)
    print(f"\ndistance call + backward, CPU ms (sum over the grid: {sum(costs.values()):.1f} ms/grid-step)")
    print(f"{'arm':<20}" + "".join(f"{'B=' + str(b):>9}" for b in config.batch_sizes))
    for arm in config.arms:
        print(f"{arm:<20}" + "".join(f"{costs[(arm, b)]:>9.2f}" for b in config.batch_sizes))
    print(f"projected full-grid wall on {args.workers} idle cores: "
          f"{bat / args.iterations * full / args.workers:.0f} s (batched), "
          f"{seq / args.iterations * full / args.workers:.0f} s (baseline split over the same cores)")

    conc = sp.with_overrides(config, iterations=args.concurrent_iterations)
    print(f"\n{args.workers} concurrent workers ({args.concurrent_iterations} it): wall ms per grid step of each worker")
    print(f"{'loss':<34}{'workers':>18}{'full grid s (slowest)':>24}")
    for name, zero in (("library distances", False), ("zero-cost mean(x²): harness floor", True)):
        ms = _concurrent(conc, args.workers, zero)
        print(f"{name:<34}{' '.join(f'{t:8.1f}' for t in ms):>18}{ms[-1] * full / 1e3:>24.0f}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
