"""Per-class samples of any generator (``g(noise, labels) -> [0, 1]`` with ``noise_shape``).

Noise is drawn on the CPU from a generator seeded with ``seed``, so every model sampled with
the same seed (teacher at 4 steps, the same network at 1 step, an iRDM-post-trained copy, a
scratch generator with the same ``noise_shape``) sees the same noise, row for row: side-by-side
grids compare models under matched noise, and results do not depend on the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .._validate import check_positive
from ..report.grid import class_grid, save_png


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
        (len(labels), *generator.noise_shape), generator=torch.Generator().manual_seed(seed)
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
