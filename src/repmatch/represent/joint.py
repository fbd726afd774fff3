"""Joint image–condition features for conditional generation (paper eq. 4, §3.2, App. E.1).

    Φ(x, c) = φ(x) ⊕ β·τ(c)

``φ`` is an image encoder, ``τ`` a frozen condition embedding: a fixed one-hot embedding of
class labels, or a text encoder (e.g. ``minilm_l6``) on prompts. Reference pairs couple each
real image with its own condition, generated pairs couple each output with the condition that
produced it, and the Nyström reference is built on the joint features with its own bandwidth
rule (``bandwidth_scale ×`` the median heuristic, :func:`repmatch.compare.kernels.joint_bandwidths`; the paper uses 0.25 for text, 1.0 for classes;
several scales give a multi-scale kernel, one reference per scale). The training condition
pool *mirrors* the reference: conditions are drawn uniformly from the reference's own list of
conditions, so the generated and reference condition distributions coincide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..validate import check_features, check_positive


def one_hot_embedding(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The fixed class embedding ``τ(c) = e_c`` ``(N, num_classes)`` (float32)."""
    check_positive("num_classes", num_classes, integer=True)
    if labels.dtype not in (torch.int32, torch.int64) or labels.ndim != 1:
        raise TypeError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{int(labels.min())}, {int(labels.max())}]")
    return torch.nn.functional.one_hot(labels.long(), num_classes).float()


def joint_features(image_features: torch.Tensor, condition_embedding: torch.Tensor, beta: float) -> torch.Tensor:
    """``φ(x) ⊕ β·τ(c)``: ``(N, D)`` and ``(N, E)`` → ``(N, D + E)``."""
    check_features("image_features", image_features, finite=False)
    check_features("condition_embedding", condition_embedding, finite=False)
    if image_features.shape[0] != condition_embedding.shape[0]:
        raise ValueError(
            f"image_features has {image_features.shape[0]} rows but condition_embedding has "
            f"{condition_embedding.shape[0]}"
        )
    check_positive("beta", beta)
    return torch.cat([image_features, beta * condition_embedding.to(image_features)], dim=1)


class ConditionPool:
    """The conditions a generator is trained on, mirroring the reference's.

    Args:
        conditions: what the generator receives: a ``(P,)`` long tensor of labels or a list
            of ``P`` prompts.
        embeddings: ``τ(c)`` for every pool entry, ``(P, E)``, precomputed once.
    """

    def __init__(self, conditions: torch.Tensor | Sequence[str], embeddings: torch.Tensor) -> None:
        size = len(conditions)
        if size == 0:
            raise ValueError("conditions must not be empty")
        check_features("embeddings", embeddings)
        if embeddings.shape[0] != size:
            raise ValueError(f"embeddings has {embeddings.shape[0]} rows for {size} conditions")
        self.conditions = conditions
        self.embeddings = embeddings

    def __len__(self) -> int:
        return len(self.conditions)

    @classmethod
    def from_labels(cls, labels: torch.Tensor, num_classes: int) -> ConditionPool:
        """Class-conditional pool: the reference's label list with one-hot embeddings."""
        return cls(labels.long(), one_hot_embedding(labels.long(), num_classes))

    @classmethod
    def from_prompts(cls, prompts: Sequence[str], text_encoder: Callable[[list[str]], torch.Tensor]) -> ConditionPool:
        """Text pool: the reference's captions, embedded once by ``text_encoder`` ``(P, E)``."""
        prompts = list(prompts)
        with torch.no_grad():
            return cls(prompts, text_encoder(prompts).float().cpu())

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n,)`` pool indices drawn uniformly with replacement."""
        return torch.randint(len(self), (n,), generator=generator)

    def condition(self, index: torch.Tensor, device: torch.device | None = None) -> Any:
        """The generator's input for pool rows ``index``."""
        if isinstance(self.conditions, torch.Tensor):
            out = self.conditions[index]
            return out if device is None else out.to(device)
        return [self.conditions[i] for i in index.tolist()]

    def embedding(self, index: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
        """``τ(c)`` for pool rows ``index``, ``(n, E)``."""
        out = self.embeddings[index]
        return out if device is None else out.to(device)
