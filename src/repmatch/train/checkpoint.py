"""Checkpoints: atomic writes, resume-from-latest, RNG capture for exact continuation.

A checkpoint is ``<run_dir>/checkpoints/ckpt-<nimg:012d>.pt`` (``torch.save`` of a dict)
written through :func:`repmatch._io.atomic_torch_save`, so a crash never leaves a truncated
file; the newest complete file is the one to resume from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_torch_save

_NAME = re.compile(r"^ckpt-(\d{12})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def save_checkpoint(run_dir: str | Path, nimg: int, state: dict[str, Any], keep: int) -> Path:
    """Atomically write ``state`` as the checkpoint at ``nimg``; keep the newest ``keep``."""
    path = atomic_torch_save(checkpoint_dir(run_dir) / f"ckpt-{nimg:012d}.pt", state)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    # weights_only=False: checkpoints hold RNG states and plain-Python controller state that we wrote.
    return torch.load(path, map_location="cpu", weights_only=False)


def capture_rng(noise_rng: torch.Generator) -> dict[str, Any]:
    """Global CPU/CUDA RNG (dropout streams) and the noise/condition generator state."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "noise": noise_rng.get_state(),
    }


def restore_rng(state: dict[str, Any], noise_rng: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    noise_rng.set_state(state["noise"])
