"""Flag types, checks and closing lines shared by the verbs.

Torch-free at import (``repmatch --help`` builds every parser); :func:`check_device` imports
torch when it runs. Flag types raise ``argparse.ArgumentTypeError``, so argparse reports
``repmatch VERB: error: argument --flag: ...`` (exit 2); the checks raise ``ValueError``,
which :func:`repmatch.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

from ..progress import is_main_process, progress_enabled


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1 (a thread count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 1, got {value}")
    return value


def idle_cpus(before: Sequence[int], after: Sequence[int], cpus: int) -> float:
    """CPUs left idle between two ``/proc/stat`` ``cpu`` lines (user nice system idle iowait irq
    softirq steal, in ticks): ``cpus · Δ(idle + iowait) / Δ(all)``; steal (time the hypervisor
    gave to other guests) counts as busy."""
    total = sum(after[:8]) - sum(before[:8])
    if total <= 0:
        return float(cpus)
    return cpus * (after[3] + after[4] - before[3] - before[4]) / total


def _proc_stat() -> tuple[list[int], int]:
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    return [int(v) for v in lines[0].split()[1:9]], sum(
        1 for line in lines[1:] if line.startswith("cpu"))


def cpu_threads_for_now(window_s: float = 0.5) -> tuple[int, float | None]:
    """``(threads, idle)``: as many torch threads as CPUs idle over ``window_s`` (rounded, at least
    1, at most this process's CPUs) and that idle count; all of them where ``/proc/stat`` is
    missing (``idle`` None).

    Why not always all: two jobs with two threads each on 2 cores ran an iRDM step 4–5× slower
    than with one thread each (OpenMP threads spin-wait for a core that is busy), while alone,
    two threads ran it 2× faster than one.
    """
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        before, cpus = _proc_stat()
        time.sleep(window_s)
        after, _ = _proc_stat()
    except (OSError, ValueError, IndexError):
        return mine, None
    idle = idle_cpus(before, after, cpus)
    return max(1, min(mine, round(idle))), idle


def path_arg(text: str) -> str:
    """An argparse type: a non-empty path (``""`` would silently mean the current directory or
    a default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (give a path)")
    return text


def add_progress_flag(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--no-progress``, which every verb accepts (so a script can pass it to any)."""
    parser.add_argument("--no-progress", action="store_true",
                        help=help or "no progress bars (they are drawn only when stderr is a terminal)")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether this verb draws progress bars (see :func:`repmatch.progress.progress_enabled`)."""
    return progress_enabled(not getattr(args, "no_progress", False))


def print_outputs(*pairs: tuple[str, Any]) -> None:
    """The closing lines ``label: path``, one per main output; printed by rank 0 alone."""
    if is_main_process():
        for label, path in pairs:
            print(f"{label}: {path}")


def check_device(value: str | None, *, flag: str = "--device", label: str | None = None,
                 also: Sequence[str] = (), hint: str = "") -> None:
    """Refuse a device this machine cannot run on, in a message that starts with ``label``
    (default ``"--device VALUE"``) and lists what is accepted here, then ``hint``.

    ``None``, ``"cpu"`` and the names in ``also`` (e.g. ``auto``) always pass."""
    if value is None or value == "cpu" or value in also:
        return
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    accepted = ["cpu", *also]
    if cuda:
        accepted += ["cuda", *(f"cuda:{i}" for i in range(cuda))]
    if mps is not None and mps.is_available():
        accepted.append("mps")
    where = f"(accepted: {', '.join(accepted)}){hint}"
    label = label or f"{flag} {value}"
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError(f"{label}: not a torch device {where}") from None
    if device.type == "cuda" and not cuda:
        raise ValueError(f"{label}: CUDA is not available on this machine {where}")
    if device.type == "cuda" and device.index is not None and device.index >= cuda:
        raise ValueError(f"{label}: this machine has {cuda} CUDA device(s) {where}")
    if device.type == "mps" and "mps" not in accepted:
        raise ValueError(f"{label}: MPS is not available on this machine {where}")
