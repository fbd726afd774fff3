"""Dataset readers: image folders, ``.npz`` arrays of uint8 images and Fashion-MNIST idx files.

Every reader is a ``torch.utils.data.Dataset`` yielding ``(image, label)`` with ``image`` a
float32 tensor ``(C, H, W)`` in ``[0, 1]`` (``C`` is 1 or 3) and ``label`` an ``int`` (``-1``
when the source carries no labels). Each reader also has a ``spec`` string that names its
exact content source (used by feature stores to refuse resuming over different data) and a
``num_classes`` (0 when unlabelled). :func:`open_dataset` picks the reader from a string: a
scheme registered in :data:`DATASETS` (``fmnist:train``; entry-point group
``repmatch.datasets``), a folder or an ``.npz``.
"""

from .captions import captions_in_order, read_captions
from .fmnist import FMNIST_SPLITS, FashionMNIST, default_fmnist_root, read_idx
from .folder import IMAGE_SUFFIXES, ImageFolder
from .npz import NpzImages
from .open import DATASETS, open_dataset

__all__ = [
    "DATASETS",
    "FMNIST_SPLITS",
    "IMAGE_SUFFIXES",
    "FashionMNIST",
    "ImageFolder",
    "NpzImages",
    "captions_in_order",
    "default_fmnist_root",
    "open_dataset",
    "read_captions",
    "read_idx",
]
