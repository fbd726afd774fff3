"""A dataset over an in-memory uint8 image array: the shared body of the npz and idx readers."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class UInt8ImageArray(Dataset[tuple[torch.Tensor, int]]):
    """Images ``(N, C, H, W)`` uint8 (+ optional labels ``(N,)``) served as floats in [0, 1].

    Conversion to float happens per item (``x / 255``) so the whole array stays uint8 in memory
    (and is shared copy-on-write with DataLoader worker processes).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, *, spec: str) -> None:
        assert images.dtype == np.uint8 and images.ndim == 4, (images.dtype, images.shape)
        assert labels is None or labels.shape == (images.shape[0],), labels.shape
        self.images = images
        self.labels = labels
        self.spec = spec
        self.num_classes = 0 if labels is None or labels.size == 0 else int(labels.max()) + 1

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.ascontiguousarray(self.images[index])).float().div_(255.0)
        label = -1 if self.labels is None else int(self.labels[index])
        return image, label

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return f"{type(self).__name__}(spec={self.spec!r}, n={len(self)}, shape=({c}, {h}, {w}))"
