"""An ``.npz`` archive of uint8 images, with optional integer labels.

The image array is the one named ``images`` or, failing that, the archive's only array; its
layout is ``(N, H, W)`` (grayscale), ``(N, H, W, C)`` or ``(N, C, H, W)`` with ``C`` in
``{1, 3}``. Channels-last is assumed when the last axis has 1 or 3 entries (the numpy/PIL
convention), channels-first otherwise. ``labels`` (optional) must be integers of shape ``(N,)``.
The dataset's ``spec`` is ``<absolute path>@sha256:<first 16 hex digits of the file's hash>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ._array import UInt8ImageArray


def _to_nchw(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return images
    raise ValueError(
        f"path: images in {str(path)!r} have shape {images.shape}; accepted are (N, H, W), "
        "(N, H, W, C) or (N, C, H, W) with C in {1, 3}"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class NpzImages(UInt8ImageArray):
    """Images (and labels, if present) from an ``.npz`` file; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: npz file {str(path)!r} does not exist")
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if "images" in keys:
                key = "images"
            elif len(keys) == 1:
                key = keys[0]
            else:
                raise ValueError(
                    f"path: {str(path)!r} holds arrays {keys}; name the image array 'images' "
                    "(or store only one array)"
                )
            images = archive[key]
            labels = archive["labels"] if "labels" in keys and key != "labels" else None
        if images.dtype != np.uint8:
            raise TypeError(f"path: images in {str(path)!r} must be uint8 in 0..255, got dtype {images.dtype}")
        images = _to_nchw(images, path)
        if images.shape[0] == 0:
            raise ValueError(f"path: {str(path)!r} holds no images (shape {images.shape})")
        if labels is not None:
            if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(
                    f"path: labels in {str(path)!r} must be integers of shape ({images.shape[0]},), "
                    f"got dtype {labels.dtype} shape {labels.shape}"
                )
            labels = labels.astype(np.int64)
        # The content hash makes the spec change when the file is rewritten (e.g. new samples at
        # the same path), so a feature store never silently reuses features of old content.
        super().__init__(images, labels, spec=f"{path.resolve()}@sha256:{_sha256(path)[:16]}")
        self.path = path
