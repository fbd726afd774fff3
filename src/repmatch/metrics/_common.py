"""Shared plumbing for the evaluation metrics: float64 casting and seeded subsampling.

Kept separate from the metric formulas so each metric module holds only its equation.
"""

from __future__ import annotations

import torch

from ..validate import check_features, check_nonnegative_int, check_positive


def as_float64(name: str, x: torch.Tensor, *, dim: int | None = None) -> torch.Tensor:
    """Validate a feature matrix ``(N, D)`` and return it in float64 on its own device.

    Evaluation accumulates in float64 so that a ratio near 1 is not rounding noise.
    """
    return check_features(name, x, dim=dim).to(torch.float64)


def subsample_indices(num_rows: int, num_samples: int, seed: int) -> torch.Tensor:
    """Row indices ``(min(num_rows, num_samples),)``: the first ``num_samples`` of a seeded permutation.

    A deterministic function of ``(num_rows, seed)`` (CPU generator): the same training rows
    are chosen for the floors and for every checkpoint, and a smaller ``num_samples`` picks a
    prefix of a larger one, so a caller may read ``num_samples`` rows once and slice. Every
    metric here is invariant to row order, so the indices are left unsorted.
    """
    check_positive("num_samples", num_samples, integer=True)
    gen = torch.Generator(device="cpu").manual_seed(check_nonnegative_int("seed", seed))
    return torch.randperm(num_rows, generator=gen)[:num_samples]


def seeded_subsample(x: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """Rows ``subsample_indices(N, num_samples, seed)`` of ``x`` ``(N, D)``; ``x`` itself if ``N <= num_samples``."""
    check_positive("num_samples", num_samples, integer=True)
    if x.shape[0] <= num_samples:
        return x
    return x[subsample_indices(x.shape[0], num_samples, seed).to(x.device)]
