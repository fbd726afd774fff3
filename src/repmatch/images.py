"""Image grids: tile a batch ``(N, C, H, W)`` in [0, 1] into one PNG, optionally one row per class."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .io import atomic_write

#: PNG text chunk of a :func:`class_grid` file: the class label of each grid row, as a JSON
#: list (``repmatch report`` names the rows from it).
GRID_ROWS_KEY = "repmatch:rows"


def _to_uint8_nchw(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Accept ``(N, H, W)``, ``(N, C, H, W)`` (C in 1, 3) or ``(N, H, W, C)``; uint8 or float in [0, 1]."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(
            f"images must have shape (N, H, W), (N, C, H, W) or (N, H, W, C), got {a.shape}"
        )
    if a.shape[1] not in (1, 3) and a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"images must be uint8 or floating point in [0, 1], got dtype {a.dtype}")
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def make_grid(images: torch.Tensor | np.ndarray, nrow: int, *, pad: int = 2) -> np.ndarray:
    """Tile images into ``ceil(N / nrow)`` rows of ``nrow``; returns uint8 ``(H', W', C)``.

    Padding between tiles is mid-grey so black and white samples both stay visible.
    """
    a = _to_uint8_nchw(images)
    if nrow <= 0:
        raise ValueError(f"nrow must be a positive integer, got {nrow!r}")
    n, c, h, w = a.shape
    rows = max(1, -(-n // nrow))
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 128, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = a[i].transpose(1, 2, 0)
    return grid


def class_grid(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    *,
    per_class: int = 10,
    pad: int = 2,
) -> np.ndarray:
    """One row per class present in ``labels`` (ascending), its first ``per_class`` images.

    Rows with fewer images are padded with grey tiles; returns uint8 ``(H', W', C)``.
    """
    a = _to_uint8_nchw(images)
    lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if lab.shape != (a.shape[0],):
        raise ValueError(f"labels must have shape ({a.shape[0]},), got {lab.shape}")
    tiles = []
    for cls in np.unique(lab):
        rows = a[lab == cls][:per_class]
        filler = np.full((per_class - len(rows), *a.shape[1:]), 128, dtype=np.uint8)
        tiles.append(np.concatenate([rows, filler]))
    return make_grid(np.concatenate(tiles), per_class, pad=pad)


def png_bytes(grid: np.ndarray, *, scale: int = 1, text: Mapping[str, str] | None = None) -> bytes:
    """Encode a uint8 ``(H, W, C)`` grid as PNG (nearest-neighbour upscaled by ``scale``), with
    ``text`` as PNG text chunks (e.g. ``{GRID_ROWS_KEY: "[0, 1, 2]"}``)."""

    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True, pnginfo=info)
    return buf.getvalue()


def save_png(
    path: str | os.PathLike[str],
    grid: np.ndarray,
    *,
    scale: int = 1,
    text: Mapping[str, str] | None = None,
) -> Path:
    """Atomically write a uint8 ``(H, W, C)`` grid to ``path`` as PNG (see :func:`png_bytes`)."""
    data = png_bytes(grid, scale=scale, text=text)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)
