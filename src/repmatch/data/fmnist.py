"""Fashion-MNIST from its gzipped idx files (the Debian ``dataset-fashion-mnist`` layout).

The idx format (LeCun's MNIST format): a big-endian header ``0x00 0x00 <dtype> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the row-major data. Fashion-MNIST uses dtype ``0x08``
(unsigned byte): images ``(N, 28, 28)``, labels ``(N,)`` in ``0..9``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from ._array import UInt8ImageArray

#: split -> (image file, label file, number of rows)
FMNIST_SPLITS: dict[str, tuple[str, str, int]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}

FMNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_IDX_DTYPES: dict[int, type[np.generic] | str] = {
    0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"
}


def default_fmnist_root() -> Path:
    """``$REPMATCH_FMNIST_ROOT`` if set, else the Debian package's ``/usr/share/datasets/fashion-mnist``."""
    return Path(os.environ.get("REPMATCH_FMNIST_ROOT", "/usr/share/datasets/fashion-mnist"))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an idx file (gzipped if its name ends in ``.gz``) into a numpy array."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: idx file {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"path: {str(path)!r} is not an idx file (bad magic number {raw[:4]!r})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"path: idx file {str(path)!r} holds {len(raw)} bytes, its header "
            f"(shape {shape}, dtype {dtype}) implies {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class FashionMNIST(UInt8ImageArray):
    """Fashion-MNIST split ``"train"`` (60,000 rows) or ``"test"`` (10,000): ``(1, 28, 28)`` images, labels 0..9.

    ``root`` defaults to :func:`default_fmnist_root`.
    """

    classes = FMNIST_CLASSES
    labels: np.ndarray  # always present (UInt8ImageArray allows None)

    def __init__(self, split: str = "train", root: str | os.PathLike[str] | None = None) -> None:
        if split not in FMNIST_SPLITS:
            raise ValueError(f"split must be one of {sorted(FMNIST_SPLITS)}, got {split!r}")
        root = Path(root) if root is not None else default_fmnist_root()
        image_file, label_file, n = FMNIST_SPLITS[split]
        for name in (image_file, label_file):
            if not (root / name).is_file():
                raise FileNotFoundError(
                    f"root: Fashion-MNIST file {str(root / name)!r} not found; install the Debian "
                    "package dataset-fashion-mnist or set REPMATCH_FMNIST_ROOT to a folder "
                    f"holding {image_file} and {label_file}"
                )
        images = read_idx(root / image_file)
        labels = read_idx(root / label_file).astype(np.int64)
        if images.shape != (n, 28, 28) or labels.shape != (n,):
            raise ValueError(
                f"root: {str(root)!r} holds images {images.shape} and labels {labels.shape} for "
                f"split {split!r}, expected ({n}, 28, 28) and ({n},)"
            )
        super().__init__(images[:, None], labels, spec=f"fmnist:{split}")
        self.split = split
        self.root = root
