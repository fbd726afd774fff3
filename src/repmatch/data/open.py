"""Pick a dataset reader from a string: ``SCHEME:ARGUMENT`` (``fmnist:train``), a folder, an ``.npz``.

A scheme names a reader in :data:`DATASETS`, a :class:`repmatch.registry.Registry` of callables
``(argument: str) -> Dataset``: the library's own ``fmnist`` (:class:`FashionMNIST`, argument =
split) and those installed packages add through the entry-point group ``repmatch.datasets``,
e.g. ``mnist = "mypkg.data:open_mnist"`` makes ``mnist:train`` open ``open_mnist("train")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..registry import Registry
from .fmnist import FashionMNIST
from .folder import ImageFolder
from .npz import NpzImages


def _check_reader(key: str, obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"{key}: expected a callable (argument: str) -> Dataset, got a {type(obj).__name__}")


#: Dataset scheme -> its reader ``(argument: str) -> Dataset``: a ``torch.utils.data.Dataset`` of
#: ``(image (C, H, W) float32 in [0, 1], label int)`` rows with ``num_classes`` and a ``spec``
#: string naming its exact content, which feature stores record (entry-point group
#: ``repmatch.datasets``).
DATASETS: Registry[Callable[[str], Any]] = Registry(
    "dataset reader", group="repmatch.datasets", check=_check_reader
)
DATASETS.register("fmnist", FashionMNIST)


def _accepted() -> str:
    schemes = ", ".join(f"'{name}:...'" for name in DATASETS.names())
    return f"{schemes} (registered dataset readers), a path to an image folder, or a path to an .npz file"


def open_dataset(spec: str, *, labels: str | None = None) -> Any:
    """Open the dataset named by ``spec``: a reader's ``Dataset`` (see :data:`DATASETS`).

    - ``SCHEME:ARGUMENT`` with a registered scheme: that reader of :data:`DATASETS` called with
      ``ARGUMENT``; ``fmnist:<split>`` (``fmnist:train`` 60k, ``fmnist:test`` 10k) is
      :class:`FashionMNIST` from its default root (``$REPMATCH_FMNIST_ROOT`` or the Debian
      package path);
    - ``path/to/file.npz``: :class:`NpzImages`;
    - ``path/to/folder``: :class:`ImageFolder` (RGB); ``labels="subfolder"`` takes the class
      from the subfolder name, ``labels=None`` (default) leaves every label ``-1``.

    A spec as a feature store records it (``path@sha256:<hash>`` or ``path@stat:<hash>``)
    re-opens that path and checks that its content still has that identity, so features are
    never extended from data that changed since they were extracted.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec must be a non-empty string ({_accepted()}), got {spec!r}")
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
        # Only a folder's layout can give labels; an .npz has its own array, a reader its own.
        raise ValueError(f"labels={labels!r} applies to image folders only, and {spec!r} is not a folder")
    scheme, sep, argument = spec.partition(":")
    if sep and scheme in DATASETS:
        return DATASETS.get(scheme, key=f"spec {spec!r}: scheme")(argument)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolder(path, labels=labels)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return NpzImages(path)
        raise ValueError(f"spec {spec!r}: unknown dataset format {path.suffix!r}; accepted: {_accepted()}")
    raise FileNotFoundError(f"spec {spec!r}: no such file or folder; accepted: {_accepted()}")
