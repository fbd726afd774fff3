"""Pick a dataset reader from a string: ``fmnist:train``, ``fmnist:test``, a folder, an ``.npz``."""

from __future__ import annotations

from pathlib import Path

from .fmnist import FMNIST_SPLITS, FashionMNIST
from .folder import ImageFolder
from .npz import NpzImages

_ACCEPTED = "'fmnist:train', 'fmnist:test', a path to an image folder, or a path to an .npz file"


def open_dataset(spec: str, *, labels: str | None = None) -> FashionMNIST | ImageFolder | NpzImages:
    """Open the dataset named by ``spec``.

    - ``fmnist:<split>`` (``fmnist:train`` 60k, ``fmnist:test`` 10k): :class:`FashionMNIST`
      from its default root (``$REPMATCH_FMNIST_ROOT`` or the Debian package path);
    - ``path/to/file.npz``: :class:`NpzImages`;
    - ``path/to/folder``: :class:`ImageFolder` (RGB); ``labels="subfolder"`` takes the class
      from the subfolder name, ``labels=None`` (default) leaves every label ``-1``.

    A spec as a feature store records it (``path@sha256:<hash>`` or ``path@stat:<hash>``)
    re-opens that path and checks that its content still has that identity, so features are
    never extended from data that changed since they were extracted.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec must be a non-empty string ({_ACCEPTED}), got {spec!r}")
    path_part, sep, identity = spec.rpartition("@")
    if sep and identity.split(":", 1)[0] in ("sha256", "stat"):
        dataset = open_dataset(path_part, labels=labels)
        if dataset.spec != spec:
            raise ValueError(
                f"spec {spec!r}: the data at {path_part!r} changed since it was recorded "
                f"(its identity is now {dataset.spec!r})"
            )
        return dataset
    if labels is not None and not Path(spec).expanduser().is_dir():
        # Only a folder's layout can give labels; an .npz has its own array, Fashion-MNIST its own.
        raise ValueError(f"labels={labels!r} applies to image folders only, and {spec!r} is not a folder")
    if spec.startswith("fmnist:"):
        split = spec.split(":", 1)[1]
        if split not in FMNIST_SPLITS:
            raise ValueError(f"spec {spec!r}: Fashion-MNIST split must be one of {sorted(FMNIST_SPLITS)}")
        return FashionMNIST(split)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolder(path, labels=labels)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return NpzImages(path)
        raise ValueError(f"spec {spec!r}: unknown dataset format {path.suffix!r}; accepted: {_ACCEPTED}")
    raise FileNotFoundError(f"spec {spec!r}: no such file or folder; accepted: {_ACCEPTED}")
