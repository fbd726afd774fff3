"""``sliced_wasserstein``: squared sliced 2-Wasserstein loss against a resampled reference batch.

    SW²(g, y) = (1/L) Σ_l (1/B) Σ_i ( sort(g θ_l)_i - sort(y θ_l)_i )²

with ``L = num_projections`` unit directions ``θ_l`` drawn afresh at every call and ``y`` a
reference sample of the same size ``B`` (drawn without replacement), so each 1-D optimal
coupling is the sorted matching. Equals ``ot.sliced_wasserstein_distance(g, y, p=2,
projections=θ)²``.
"""

from __future__ import annotations

from typing import Any

import torch

from .._validate import check_features, check_positive
from ._base import Distance, reference_features

__all__ = ["SlicedWasserstein", "random_projections", "sliced_wasserstein_loss"]


def random_projections(dim: int, num_projections: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(D, L)`` float32 unit-norm Gaussian directions (drawn on CPU: same on every device)."""
    theta = torch.randn(dim, num_projections, generator=generator)
    return theta / theta.norm(dim=0, keepdim=True)


def sliced_wasserstein_loss(gen_features: torch.Tensor, ref_features: torch.Tensor, projections: torch.Tensor) -> torch.Tensor:
    """SW² of ``gen_features`` ``(B, D)`` vs ``ref_features`` ``(B, D)`` along ``projections`` ``(D, L)``."""
    check_features("gen_features", gen_features)
    check_features("ref_features", ref_features, dim=gen_features.shape[1])
    if ref_features.shape[0] != gen_features.shape[0]:
        raise ValueError(
            f"ref_features must have as many rows as gen_features ({gen_features.shape[0]}), "
            f"got {ref_features.shape[0]}"
        )
    theta = projections.to(device=gen_features.device, dtype=gen_features.dtype)
    pg = torch.sort(gen_features @ theta, dim=0).values
    pr = torch.sort(ref_features.detach().to(gen_features.dtype) @ theta, dim=0).values
    return (pg - pr).pow(2).mean()


class SlicedWasserstein(Distance):
    """``sliced_wasserstein``: SW² with ``num_projections`` fresh directions and reference rows per call."""

    name = "sliced_wasserstein"

    def __init__(self, *, num_projections: int = 128, seed: int = 0) -> None:
        check_positive("num_projections", num_projections, integer=True)
        self.num_projections = num_projections
        self.seed = seed

    def fit(self, reference: Any) -> SlicedWasserstein:
        self.reference = reference_features(reference)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.dim = self.reference.shape[1]
        return self

    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        gen_rng = generator or self.generator
        B, N = gen.shape[0], self.reference.shape[0]
        if B > N:
            raise ValueError(f"gen_features has {B} rows but the reference only {N}; SW needs equal sizes")
        idx = torch.randperm(N, generator=gen_rng)[:B]
        y = self.reference[idx.to(self.reference.device)].to(gen.device)
        theta = random_projections(self.dim, self.num_projections, gen_rng)
        return sliced_wasserstein_loss(gen, y, theta)
