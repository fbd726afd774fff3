"""The run-state toolkit every training loop uses: checkpoints, weight EMA, the stats log.

- A checkpoint is ``<run_dir>/checkpoints/ckpt-<count:012d>.pt`` (``torch.save`` of a dict of
  tensors and plain data; ``count`` is the loop's progress counter, images for iRDM, steps for
  the teacher) written through :func:`repmatch.io.atomic_torch_save`, so a crash never leaves
  a truncated file; the newest complete file is the one to resume from. Loading refuses
  anything but tensors and plain containers (``weights_only=True``): a planted pickle cannot
  run code.
- :func:`ema_update_`: ``θ_ema ← θ_ema + (1 − β)(θ − θ_ema)``; buffers are copied.
- ``stats.jsonl``: one JSON object per line (:func:`append_stats`); on resume,
  :func:`truncate_stats` drops the lines logged after the checkpoint, which the resumed run
  logs again.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import atomic_torch_save, atomic_write_text, exclusive_lock

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


def save_checkpoint(run_dir: str | Path, count: int, state: dict[str, Any], keep: int) -> Path:
    """Atomically write ``state`` as the checkpoint at progress ``count``; keep the newest ``keep``."""
    path = atomic_torch_save(checkpoint_dir(run_dir) / f"ckpt-{count:012d}.pt", state)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state saved at ``path``, on the CPU (RNG states must stay CPU tensors)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_latest_checkpoint(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """``(path, state)`` of the newest checkpoint that loads (``None`` without any).

    A newer file that does not load (torn by a crash outside the atomic writer, corrupted, or
    not a weights-only file) is skipped with a warning naming it, so a run resumes from the
    newest intact state; when none loads, the error names every file tried.
    """
    tried = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path)
        except Exception as exc:  # torch raises several types for a damaged file
            tried.append(f"{path} ({type(exc).__name__}: {exc})")
            warnings.warn(f"checkpoint {path} does not load ({type(exc).__name__}); trying an older one",
                          RuntimeWarning, stacklevel=2)
    if tried:
        raise ValueError(f"no checkpoint of {run_dir} loads: {'; '.join(tried)}")
    return None


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


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``θ_ema ← θ_ema + (1 − decay)·(θ − θ_ema)`` for every parameter; buffers are copied."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


def _json_safe(value: Any) -> Any:
    """Non-finite floats become ``None``: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def append_stats(path: Path, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line to the stats log ``path`` (valid JSON Lines:
    non-finite numbers are written as ``null``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(_json_safe(record), sort_keys=True, allow_nan=False) + "\n")


def truncate_stats(path: Path, key: str, upto: int) -> None:
    """Keep the lines of ``path`` whose ``record[key] <= upto`` (atomically; no file: no-op).

    A torn last line (a kill mid-append) is dropped with a warning; a damaged line before it
    is an error naming the file and the line.
    """
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                warnings.warn(f"{path}: dropping a torn last line ({exc.msg})", RuntimeWarning, stacklevel=2)
                break
            raise ValueError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
        if record[key] <= upto:
            kept.append(line)
    atomic_write_text(path, "".join(ln + "\n" for ln in kept))


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold ``<run_dir>/lock`` for the body: a second writer of the same run directory fails at
    once with an error naming the holder (its pid, host and start time, from ``lock.owner``)."""
    root = Path(run_dir)
    with exclusive_lock(root / "lock", name="run_dir", target=root):
        yield
