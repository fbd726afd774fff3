"""Per-class samples of any generator (``g(noise, labels) -> [0, 1]`` with ``noise_shape``).

Two products: a per-class grid PNG (``RUN_DIR/samples/<model>.png`` for ``repmatch report``)
and a class-balanced ``.npz`` of uint8 images + labels (the format ``repmatch.data.NpzImages``
reads, hence what ``repmatch eval`` scores and what the report tiles).

Noise is drawn on the CPU from a generator seeded with ``seed``, so every model sampled with
the same seed (teacher at 4 steps, the same network at 1 step, an iRDM-post-trained copy, a
scratch generator with the same ``noise_shape``) sees the same noise, row for row: side-by-side
grids compare models under matched noise, and results do not depend on the device.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..io import atomic_write
from ..progress import bar
from ..validate import check_nonnegative_int, check_positive
from ..images import GRID_ROWS_KEY, class_grid, save_png
from .base import Generator


@torch.no_grad()
def sample_per_class(
    generator: nn.Module,
    *,
    num_classes: int = 10,
    per_class: int = 10,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` samples of each class ``0..num_classes-1`` (call with the model in eval mode).

    Returns ``(images (num_classes·per_class, C, H, W) in [0, 1], labels (num_classes·per_class,))``
    on the CPU, sorted by class.
    """
    check_positive("num_classes", num_classes, integer=True)
    check_positive("per_class", per_class, integer=True)
    if not hasattr(generator, "noise_shape"):
        raise TypeError("generator must have a noise_shape attribute (the Generator protocol)")
    device = next(generator.parameters()).device
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    noise = torch.randn(
        # cast: nn.Module types its attributes as Tensor | Module.
        (len(labels), *cast("Generator", generator).noise_shape),
        generator=torch.Generator().manual_seed(seed),
    )
    images = generator(noise.to(device), labels.to(device))
    return images.clamp(0, 1).cpu(), labels


def write_sample_grid(
    generator: nn.Module,
    path: str | os.PathLike[str],
    *,
    num_classes: int = 10,
    per_class: int = 10,
    seed: int = 0,
    scale: int = 2,
) -> Path:
    """Write a per-class grid (one row per class) of :func:`sample_per_class` to ``path`` (PNG).

    The file is what ``repmatch report`` shows for ``RUN_DIR/samples/<model>.png``; its
    :data:`~repmatch.images.GRID_ROWS_KEY` text chunk lists each row's class, so the report can
    name the rows.
    """
    images, labels = sample_per_class(
        generator, num_classes=num_classes, per_class=per_class, seed=seed
    )
    rows = json.dumps([int(c) for c in np.unique(labels.numpy())])
    grid = class_grid(images, labels, per_class=per_class)
    return save_png(path, grid, scale=scale, text={GRID_ROWS_KEY: rows})


class GeneratedImages(Dataset[tuple[torch.Tensor, int]]):
    """``num_samples`` images of ``generator`` as a dataset, produced block by block on first
    access, so a generator can be evaluated without writing its images first.

    Row ``i`` is exactly row ``i`` of :func:`write_samples_npz` with the same ``seed``,
    ``num_classes`` and ``conditions`` (the same noise and conditions, rounded to uint8 the
    same way), returned as float ``(C, H, W)`` in [0, 1] with its label (``-1`` unless
    class-conditional). Read it in order (``num_workers=0``): each block of ``block_size`` rows
    is generated once.
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        num_samples: int,
        num_classes: int = 0,
        conditions: torch.Tensor | None = None,
        seed: int = 0,
        block_size: int = 500,
        spec: str = "generator",
    ) -> None:
        check_positive("num_samples", num_samples, integer=True)
        check_positive("block_size", block_size, integer=True)
        self.generator, self.num_samples, self.num_classes = generator, num_samples, num_classes
        self.block_size = block_size
        self.noise, self.labels, self.rows = _inputs(generator, num_samples, num_classes, conditions, seed)
        self.spec = f"{spec}[n={num_samples},classes={num_classes},seed={seed}]"
        self._block: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        block = index // self.block_size
        if self._block is None or self._block[0] != block:
            rows = slice(block * self.block_size, (block + 1) * self.block_size)
            cond = None if self.rows is None else self.rows[rows]
            self._block = (block, _generate_u8(self.generator, self.noise[rows], cond).float() / 255.0)
        label = int(self.labels[index]) if self.num_classes else -1
        return self._block[1][index - block * self.block_size], label


def _inputs(
    generator: nn.Module, num_samples: int, num_classes: int, conditions: torch.Tensor | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(noise, labels, condition rows)``: the generator's condition of row ``i`` is
    ``i mod num_classes`` (class), ``conditions[i mod P]`` (a pool of ``P`` condition rows, e.g.
    caption embeddings), or ``None``; labels are ``-1`` unless class-conditional."""
    check_nonnegative_int("num_classes", num_classes)
    if num_classes and conditions is not None:
        raise ValueError("give num_classes (class labels) or conditions (a pool of rows), not both")
    if not hasattr(generator, "noise_shape"):
        raise TypeError("generator must have a noise_shape attribute (the Generator protocol)")
    # One draw for all rows: torch's CPU randn fills small and large tensors in different
    # orders, so chunked draws would make the noise depend on batch_size.
    noise = torch.randn(
        (num_samples, *cast("Generator", generator).noise_shape),
        generator=torch.Generator().manual_seed(seed),
    )
    labels = torch.arange(num_samples) % num_classes if num_classes else torch.full((num_samples,), -1)
    rows = labels if num_classes else None
    if conditions is not None:
        rows = conditions[torch.arange(num_samples) % conditions.shape[0]]
    return noise, labels, rows


@torch.no_grad()
def _generate_u8(generator: nn.Module, noise: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    """``round(255·clamp(g(noise, condition)))`` as uint8 on the CPU."""
    device = next(generator.parameters()).device
    cond = None if condition is None else condition.to(device)
    images = generator(noise.to(device), cond).clamp(0, 1)
    return (images * 255 + 0.5).floor().to(torch.uint8).cpu()


@torch.no_grad()
def write_samples_npz(
    generator: nn.Module,
    path: str | os.PathLike[str],
    *,
    num_samples: int,
    num_classes: int = 10,
    conditions: torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 500,
    progress: bool = False,
) -> Path:
    """Write ``num_samples`` class-balanced samples to ``path`` as ``.npz`` (call in eval mode).

    Arrays: ``images`` uint8 ``(N, C, H, W)`` (``round(255·x)``), ``labels`` int64 ``(N,)`` with
    ``labels[i] = i mod num_classes``; ``num_classes=0`` samples an unconditional generator
    (``condition=None``, labels ``-1``), or with ``conditions`` ``(P, ...)`` one conditioned on
    row ``i mod P`` of that pool (e.g. caption embeddings; labels ``-1``). The noise ``(N, *noise_shape)`` is drawn at once on the
    CPU from ``seed`` (held in memory: N·prod(noise_shape) floats), so the file does not depend
    on ``batch_size`` or the device, and two generators with one ``noise_shape`` sampled with
    one seed share their noise row for row. ``progress`` draws a bar over the samples.
    """
    check_positive("num_samples", num_samples, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    if conditions is not None:
        num_classes = 0
    noise, labels, rows = _inputs(generator, num_samples, num_classes, conditions, seed)
    chunks = []
    with bar(total=num_samples, desc="samples", unit="img", enabled=progress) as shown:
        for i in range(0, num_samples, batch_size):
            cond = None if rows is None else rows[i : i + batch_size]
            chunks.append(_generate_u8(generator, noise[i : i + batch_size], cond))
            shown.update(len(chunks[-1]))
    images_u8, labels_i64 = torch.cat(chunks).numpy(), labels.numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, images=images_u8, labels=labels_i64)

    return atomic_write(path, write)
