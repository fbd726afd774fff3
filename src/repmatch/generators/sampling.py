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

import os
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from .._io import atomic_write
from .._validate import check_positive
from ..images import class_grid, save_png
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

    The file is what ``repmatch report`` shows for ``RUN_DIR/samples/<model>.png``.
    """
    images, labels = sample_per_class(
        generator, num_classes=num_classes, per_class=per_class, seed=seed
    )
    return save_png(path, class_grid(images, labels, per_class=per_class), scale=scale)


@torch.no_grad()
def write_samples_npz(
    generator: nn.Module,
    path: str | os.PathLike[str],
    *,
    num_samples: int,
    num_classes: int = 10,
    seed: int = 0,
    batch_size: int = 500,
) -> Path:
    """Write ``num_samples`` class-balanced samples to ``path`` as ``.npz`` (call in eval mode).

    Arrays: ``images`` uint8 ``(N, C, H, W)`` (``round(255·x)``), ``labels`` int64 ``(N,)`` with
    ``labels[i] = i mod num_classes``. The noise ``(N, *noise_shape)`` is drawn at once on the
    CPU from ``seed`` (held in memory: N·prod(noise_shape) floats), so the file does not depend
    on ``batch_size`` or the device, and two generators with one ``noise_shape`` sampled with
    one seed share their noise row for row.
    """
    check_positive("num_samples", num_samples, integer=True)
    check_positive("num_classes", num_classes, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    if not hasattr(generator, "noise_shape"):
        raise TypeError("generator must have a noise_shape attribute (the Generator protocol)")
    device = next(generator.parameters()).device
    # One draw for all rows: torch's CPU randn fills small and large tensors in different
    # orders, so chunked draws would make the noise depend on batch_size.
    noise = torch.randn(
        (num_samples, *cast("Generator", generator).noise_shape),
        generator=torch.Generator().manual_seed(seed),
    )
    labels = torch.arange(num_samples) % num_classes
    chunks = []
    for start in range(0, num_samples, batch_size):
        rows = slice(start, start + batch_size)
        images = generator(noise[rows].to(device), labels[rows].to(device)).clamp(0, 1)
        chunks.append((images * 255 + 0.5).floor().to(torch.uint8).cpu())
    images_u8, labels_i64 = torch.cat(chunks).numpy(), labels.numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, images=images_u8, labels=labels_i64)

    return atomic_write(path, write)
