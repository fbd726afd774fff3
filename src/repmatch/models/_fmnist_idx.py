"""Stop-gap Fashion-MNIST idx reader for the teacher trainer.

TEMPORARY: ``repmatch.data.open_dataset("fmnist:train")`` (branch ``data``) is the project's
reader; once it lands, the teacher should load through it and this module be deleted.

Reads the gzipped idx files installed by the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``; override with ``REPMATCH_FMNIST_DIR``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    # idx header: 2 zero bytes, dtype code 0x08 (uint8), ndim, then ndim big-endian uint32 sizes.
    if raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise ValueError(f"{path} is not a uint8 idx file with {ndim} dimensions")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, file holds {data.size} values")
    return data.reshape(shape)


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images uint8 (N, 1, 28, 28), labels int64 (N,))`` for ``split`` in {train, test}."""
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    root = Path(os.environ.get("REPMATCH_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    img_name, lab_name = _FILES[split]
    if not (root / img_name).exists():
        raise FileNotFoundError(
            f"Fashion-MNIST file {root / img_name} not found: install the Debian package "
            "dataset-fashion-mnist or point REPMATCH_FMNIST_DIR at a folder holding the idx .gz files"
        )
    images = torch.from_numpy(_read_idx(root / img_name, 3).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(root / lab_name, 1).astype(np.int64))
    return images, labels
