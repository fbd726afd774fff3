"""One encoder's references on disk (one :class:`repmatch.compare.NystromReference` per kernel
scale, ``scale<k>/``) and the eq.-3 loss against them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..compare import NystromReference, mmd_nystrom_loss
from ..io import atomic_directory, recover_directory


def save_references(refs: Sequence[NystromReference], directory: str | Path) -> None:
    """Save one encoder's references, one per kernel scale, as ``directory/scale<k>``.

    The directory is built beside ``directory`` and swapped into place whole
    (:func:`repmatch.io.atomic_directory`): a crash or a full disk leaves the previous
    references intact, and a rerun with fewer scales leaves no stale one. An existing
    directory without ``scale0`` (not references) is refused, not replaced.
    """
    with atomic_directory(directory, replaces="scale0") as tmp:
        for k, ref in enumerate(refs):
            ref.save(tmp / f"scale{k}")


def load_references(directory: str | Path, device: torch.device | str = "cpu") -> tuple[NystromReference, ...]:
    """The references :func:`save_references` wrote, in scale order."""
    directory = Path(directory)
    recover_directory(directory)
    paths = sorted(directory.glob("scale*"), key=lambda p: int(p.name[len("scale"):]))
    if not paths:
        raise FileNotFoundError(f"no references in {directory}: build them first (repmatch references)")
    return tuple(NystromReference.load(p, device=device) for p in paths)


def reference_distance(refs: Sequence[NystromReference], fingerprint: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The eq.-3 loss ``features (B, D') -> scalar`` against ``refs`` (summed over scales), which
    refuses features of another space (``fingerprint``)."""
    for ref in refs:
        if ref.fingerprint != fingerprint:
            raise ValueError(
                f"a reference was built for {ref.fingerprint!r}, but the encoder gives "
                f"{fingerprint!r}; rebuild the references"
            )
    refs = tuple(refs)

    def distance(features: torch.Tensor) -> torch.Tensor:
        return mmd_nystrom_loss(features, refs, fingerprint=fingerprint)

    return distance
