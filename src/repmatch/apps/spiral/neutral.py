"""Neutral distances for the spiral studies: SW_r and MMD_r in R^D, as the paper's Table 4.

No arm trains on these. For generated features ``g`` (N, D), held-out real features ``h`` and
``k`` further fresh real draws ``v_1..v_k`` (each N points of the spiral, buried by the study's
map Q):

    SW_r  = SW₂(g, h)      / mean_i SW₂(v_i, h)        (L random projections, equal sizes N)
    MMD_r = MMD²_RFF(g, h) / mean_i MMD²_RFF(v_i, h)   (F random Fourier features; one Gaussian
                                                      kernel at the lower median pairwise
                                                      distance of h)

so a fresh real draw scores 1 on average. The real-vs-real value is averaged over ``k`` draws
because one draw's MMD² at N = 4000 is mostly sampling noise (single draws differ by ~3×). The
sums are the library's metrics (:func:`repmatch.metrics.sliced.sliced_w2_squared`,
:func:`repmatch.metrics.mmd.rff_mean_embedding`, the seeded projections, RFF map and bandwidth
rule of :mod:`repmatch.metrics`), called so that ``h`` is projected, sorted and embedded once for
every set scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ...metrics import lower_median_bandwidth, random_projections
from ...metrics.mmd import rff_mean_embedding, rff_weights
from ...metrics.sliced import sliced_w2_squared
from .data import SpiralSpec, sample_spiral

__all__ = ["NeutralScorer"]


@dataclass
class NeutralScorer:
    """SW_r and MMD_r of generated features against held-out real spiral features.

    ``q`` (D, 2) is the study's embedding; ``seed`` fixes the real draws (streams apart from the
    training reference's and the medDist floor's), the projections and the random features.
    """

    q: torch.Tensor
    seed: int
    num_samples: int = 4000
    num_projections: int = 1024
    num_features: int = 4096
    num_floor_draws: int = 4
    spec: SpiralSpec = field(default_factory=SpiralSpec)

    def __post_init__(self) -> None:
        dim = self.q.shape[0]
        self.held_out = self._draw(0)
        self.projections = random_projections(dim, self.num_projections, self.seed)
        sigma = lower_median_bandwidth(self.held_out, seed=self.seed)
        self.rff = rff_weights(dim, sigma, self.num_features, self.seed)
        self.held_out_embedding = rff_mean_embedding(self.held_out, *self.rff)
        sw2, mmd2 = self._raw([self._draw(1 + i) for i in range(self.num_floor_draws)])
        self.sw_floor = sum(math.sqrt(v) for v in sw2) / len(sw2)
        self.mmd_floor = sum(mmd2) / len(mmd2)
        #: each real draw's own ratios: the spread a fresh real sample shows on this normaliser
        self.real_ratios = [(math.sqrt(s) / self.sw_floor, m / self.mmd_floor) for s, m in zip(sw2, mmd2)]

    def _draw(self, stream: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1_000_003 * (self.seed + 1) + stream)
        points = sample_spiral(self.num_samples, spec=self.spec, generator=gen)
        return (points @ self.q.T).to(torch.float64)

    def _raw(self, sets: Sequence[torch.Tensor]) -> tuple[list[float], list[float]]:
        """``([SW₂²(s, h)], [MMD²_RFF(s, h)])`` for each set ``s`` (its first N rows, float64)."""
        rows = []
        for s in sets:
            if s.shape[0] < self.num_samples:
                raise ValueError(f"each set needs at least {self.num_samples} rows, got {s.shape[0]}")
            rows.append(s[: self.num_samples].to(torch.float64))
        sw2 = sliced_w2_squared(self.held_out, rows, self.projections)
        mmd2 = [float((rff_mean_embedding(s, *self.rff) - self.held_out_embedding).square().sum())
                for s in rows]
        return sw2, mmd2

    def score(self, sets: Sequence[torch.Tensor]) -> list[tuple[float, float]]:
        """``[(SW_r, MMD_r)]`` for each generated set (N', D), N' ≥ ``num_samples``."""
        sw2, mmd2 = self._raw(sets)
        return [(math.sqrt(max(s, 0.0)) / self.sw_floor, m / self.mmd_floor) for s, m in zip(sw2, mmd2)]
