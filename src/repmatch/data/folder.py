"""A folder of image files (png/jpg/...), read recursively in sorted order.

With ``labels="subfolder"`` the class of a file is the name of its top-level subfolder under
``root`` (class indices follow the sorted subfolder names, as in torchvision's ImageFolder);
with ``labels=None`` every label is ``-1``. Files are decoded with Pillow and converted to
RGB (``mode="RGB"``, 3 channels) or luminance (``mode="L"``, 1 channel) so every item of
one dataset has the same channel count. The dataset's ``spec`` is
``<absolute root>@stat:<hash of the sorted (path, size, mtime) listing>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..validate import check_choice

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


class ImageFolder(Dataset[tuple[torch.Tensor, int]]):
    """Images under ``root`` (recursive, sorted by relative path); see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        labels: str | None = None,
        mode: str = "RGB",
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"root: image folder {str(root)!r} does not exist or is not a directory")
        if labels is not None:
            check_choice("labels", labels, ("subfolder",))
        self.mode = check_choice("mode", mode, ("RGB", "L"))
        # Sorting by the relative POSIX path makes the row order independent of the filesystem.
        self.files: list[Path] = sorted(
            (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.relative_to(root).as_posix(),
        )
        if not self.files:
            raise ValueError(f"root: no image files ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}")
        self.root = root
        # Names, sizes and modification times identify the content without reading every file,
        # so a feature store notices files added, removed or rewritten since its extraction.
        listing = hashlib.sha256()
        for p in self.files:
            st = p.stat()
            listing.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        self.spec = f"{root.resolve()}@stat:{listing.hexdigest()[:16]}"
        if labels == "subfolder":
            tops = [p.relative_to(root).parts for p in self.files]
            loose = [Path(*t) for t in tops if len(t) < 2]
            if loose:
                raise ValueError(
                    f"labels='subfolder' needs every image inside a class subfolder of {str(root)!r}, "
                    f"but {str(loose[0])!r} is directly in it"
                )
            self.classes: tuple[str, ...] = tuple(sorted({t[0] for t in tops}))
            index = {c: i for i, c in enumerate(self.classes)}
            self.targets = [index[t[0]] for t in tops]
        else:
            self.classes = ()
            self.targets = [-1] * len(self.files)
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Image ``index`` ``(C, H, W)`` in ``[0, 1]`` and its label; a file that does not decode
        raises ``ValueError`` naming it."""
        path = self.files[index]
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert(self.mode), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as exc:  # what Pillow raises for a damaged file
            # Not skipped: a skipped file would shift every later row and leave fewer rows than
            # the listing (and the spec, and any store) counts.
            raise ValueError(
                f"image file {str(path)!r} cannot be decoded ({type(exc).__name__}: {exc}); remove "
                "or replace it, then run again (the folder's content changed, so start a fresh "
                "feature store)"
            ) from exc
        if array.ndim == 2:
            array = array[:, :, None]
        image = torch.from_numpy(array.transpose(2, 0, 1).copy()).float().div_(255.0)
        return image, self.targets[index]

    def __repr__(self) -> str:
        return f"ImageFolder(root={self.spec!r}, n={len(self)}, mode={self.mode!r}, classes={self.num_classes})"
