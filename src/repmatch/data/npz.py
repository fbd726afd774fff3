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
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._array import UInt8ImageArray

# A zip's local-file header, or the end record of an empty archive (np.savez of nothing).
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


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


def _read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(images, labels or None)`` of the archive, never unpickling. Anything but a zip of
    arrays (a text file, a ``.npy`` under an ``.npz`` name, a truncated zip) is refused as not an
    ``.npz``, instead of numpy's advice to load it with ``allow_pickle``."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in _ZIP_MAGIC:
        kind = "it is a .npy array (write .npz files with np.savez)" if magic == b"\x93NUM" else "not a zip file"
        raise ValueError(f"path: {str(path)!r} is not a valid .npz archive ({kind})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            key = "images" if "images" in keys else keys[0] if len(keys) == 1 else None
            images = None if key is None else archive[key]
            labels = archive["labels"] if key is not None and key != "labels" and "labels" in keys else None
    except ValueError as err:
        if "allow_pickle" in str(err):  # an object array: pickled Python objects
            raise ValueError(
                f"path: {str(path)!r} holds object arrays, which are never unpickled "
                "(allow_pickle=False); store the images as a uint8 array"
            ) from None
        raise ValueError(f"path: {str(path)!r} is not a valid .npz archive ({err})") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as err:
        raise ValueError(f"path: {str(path)!r} is not a valid .npz archive ({err})") from None
    if images is None:
        raise ValueError(
            f"path: {str(path)!r} holds arrays {keys}; name the image array 'images' (or store only one array)"
        )
    return images, labels


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
        images, labels = _read(path)
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
