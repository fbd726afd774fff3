"""The one runner of the spiral studies: jobs over worker processes, with a progress bar.

A *job* is a group of cells trained together by one call of a training function
``train(config, cells, on_progress=...) -> {cell: (num_eval, D) tensor}`` (the studies pass
:func:`.grid.train_cells`). Jobs are split over ``workers`` processes of one thread each,
longest-processing-time-first on their estimated cost; each process runs its jobs one after the
other and reports ticks (cell-iterations done) and results through a queue. With ``workers=1``
the jobs run in-process on one thread. The runner knows nothing of distances or scores, so every
study (the grid, the batch axis, the distance ranking) shares it.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
import traceback
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]

__all__ = ["Job", "TrainFn", "partition_jobs", "run_jobs"]

#: ``train(config, cells, on_progress=callback) -> {cell: samples}``; must be picklable by name
#: (a module-level function) because spawned workers receive it.
TrainFn = Callable[..., dict[Any, torch.Tensor]]


@dataclass(frozen=True)
class Job:
    """Cells trained together under one configuration; ``cost`` only steers the split."""

    key: Hashable
    config: Any
    cells: tuple[Any, ...]
    iterations: int
    cost: float

    @property
    def ticks(self) -> int:
        """Cell-iterations of this job (the progress bar's unit)."""
        return self.iterations * len(self.cells)


def partition_jobs(jobs: Sequence[Job], workers: int) -> list[list[Job]]:
    """Split ``jobs`` over at most ``workers`` parts, longest-processing-time-first on cost."""
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    parts: list[list[Job]] = [[] for _ in range(min(workers, len(jobs)))]
    load = [0.0] * len(parts)
    for job in sorted(jobs, key=lambda j: -j.cost):
        i = load.index(min(load))
        parts[i].append(job)
        load[i] += job.cost
    return parts


def _run_part(train: TrainFn, part: Sequence[Job], tick: Callable[[int], None]) -> dict[Hashable, Any]:
    out: dict[Hashable, Any] = {}
    for job in part:
        n_cells = len(job.cells)
        out[job.key] = train(job.config, list(job.cells), on_progress=lambda n, k=n_cells: tick(n * k))
    return out


def _worker(train: TrainFn, part: list[Job], queue: Any) -> None:
    """Worker-process entry: one thread; ticks and results through ``queue``."""
    try:
        torch.set_num_threads(1)
        out = _run_part(train, part, lambda n: queue.put(("tick", n)))
        queue.put(("done", {k: {c: v.numpy() for c, v in r.items()} for k, r in out.items()}))
    except Exception:  # noqa: BLE001 - any failure goes back to the parent, which raises it
        queue.put(("error", traceback.format_exc()))


def _collect(queue: Any, procs: Sequence[Any], bar: Any, poll_s: float = 1.0) -> dict[Hashable, Any]:
    """Gather the workers' ticks and results; raise if a worker fails or dies without reporting.

    A worker killed from outside (out of memory, a signal) never sends "done", so the queue is
    polled and the processes checked between reads instead of blocking forever.
    """
    results: dict[Hashable, Any] = {}
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
            for key, cells in payload.items():
                results[key] = {c: torch.from_numpy(v) for c, v in cells.items()}
            remaining -= 1
        else:
            raise RuntimeError(f"a spiral worker failed:\n{payload}")
    return results


def run_jobs(
    jobs: Sequence[Job], train: TrainFn, *, workers: int, progress: bool = True, desc: str = "spiral"
) -> dict[Hashable, dict[Any, torch.Tensor]]:
    """Run every job; returns ``{job.key: {cell: samples}}``.

    ``workers=1`` runs in-process on one thread (like each worker: at these sizes a second
    OpenMP thread gains little on a quiet machine and spin-waits badly on a busy one).
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"job keys must be unique, got {keys}")
    parts = partition_jobs(jobs, workers)
    total = sum(j.ticks for j in jobs)
    with tqdm(total=total, disable=not progress, unit="it", unit_scale=True, desc=desc) as bar:
        if len(parts) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return _run_part(train, list(jobs), bar.update)
            finally:
                torch.set_num_threads(threads)
        ctx = mp.get_context("spawn")  # fork after torch's thread pools exist can deadlock
        queue = ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(train, part, queue), daemon=True) for part in parts]
        for p in procs:
            p.start()
        try:
            return _collect(queue, procs, bar)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
                p.join()
