"""Captions for text-conditioned references: each store row's caption, and their embeddings
``τ(c)`` under a frozen text encoder (eq. 4), computed once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..data import ImageFolder, captions_in_order, open_dataset, read_captions
from ..features import FeatureStore
from ..represent import TextEncoder, create
from .conditions import TextCondition


@torch.no_grad()
def embed_captions(captions: Sequence[str], encoder: str = "minilm_l6", *, batch_size: int = 256,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, TextCondition]:
    """``(embeddings (N, E) float32 on the CPU, the condition at β = 1)`` of ``captions`` under
    the text encoder ``encoder``; rescale with ``dataclasses.replace(condition, beta=...)``."""
    text = create(encoder, device=device)
    if not isinstance(text, TextEncoder):
        raise ValueError(f"encoder must be a text encoder (modality 'text'), got {encoder!r}")
    chunks = [text(list(captions[i : i + batch_size])).float().cpu() for i in range(0, len(captions), batch_size)]
    embeddings = torch.cat(chunks)
    return embeddings, TextCondition(encoder=encoder, encoder_fingerprint=text.spec.fingerprint,
                                     dim=int(embeddings.shape[1]), beta=1.0)


def store_captions(store: FeatureStore, captions: str | Path) -> list[str]:
    """The caption of each row of ``store``, an image folder's features, from a captions file
    (:func:`repmatch.data.read_captions`; keyed by the image's path relative to the folder)."""
    dataset = open_dataset(store.data)
    if not isinstance(dataset, ImageFolder):
        raise ValueError(f"captions: the store {store.root} was not extracted from an image folder ({store.data})")
    files = [p.relative_to(dataset.root).as_posix() for p in dataset.files[: len(store)]]
    return captions_in_order(files, read_captions(captions), source=f"captions {captions}")
