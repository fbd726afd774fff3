"""How many CPU threads a run should use now: the CPUs that other processes leave idle.

On a shared machine, OpenMP threads that find no free core spin-wait for one, so a job with as
many threads as cores runs far slower beside another busy job than one with fewer threads;
alone, it runs faster with all of them (the measurements are in docs/fmnist_results.md). The
count of idle CPUs comes from two samples of the ``cpu`` line of ``/proc/stat``.

Torch-free (the command line imports it to build its parsers); the caller hands the count to
``torch.set_num_threads``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

__all__ = ["cpu_threads_for_now", "idle_cpus", "usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one, else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def idle_cpus(before: Sequence[int], after: Sequence[int], cpus: int) -> float:
    """CPUs left idle between two ``/proc/stat`` ``cpu`` lines (user nice system idle iowait irq
    softirq steal, in ticks): ``cpus · Δ(idle + iowait) / Δ(all)``; steal (time the hypervisor
    gave to other guests) counts as busy. ``cpus`` when no tick passed (nothing known busy)."""
    total = sum(after[:8]) - sum(before[:8])
    if total <= 0:
        return float(cpus)
    return cpus * (after[3] + after[4] - before[3] - before[4]) / total


def _proc_stat() -> tuple[list[int], int]:
    """The first 8 fields of the aggregate ``cpu`` line and the number of ``cpuN`` lines."""
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    return [int(v) for v in lines[0].split()[1:9]], sum(
        1 for line in lines[1:] if line.startswith("cpu"))


def cpu_threads_for_now(window_s: float = 0.5) -> tuple[int, float | None]:
    """``(threads, idle)``: as many threads as CPUs idle over ``window_s`` seconds (rounded, at
    least 1, at most this process's CPUs) and that idle count; all of this process's CPUs where
    ``/proc/stat`` is missing (``idle`` None)."""
    mine = usable_cpus()
    try:
        before, cpus = _proc_stat()
        time.sleep(window_s)
        after, _ = _proc_stat()
    except (OSError, ValueError, IndexError):
        return mine, None
    idle = idle_cpus(before, after, cpus)
    return max(1, min(mine, round(idle))), idle
