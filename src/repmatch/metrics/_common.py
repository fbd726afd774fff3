"""Shared plumbing for the evaluation metrics: float64 casting and seeded subsampling.

Kept separate from the metric formulas so each metric module holds only its equation.
"""

from __future__ import annotations

import torch

from .._validate import check_features, check_positive


def as_float64(name: str, x: torch.Tensor, *, dim: int | None = None) -> torch.Tensor:
    """Validate a feature matrix ``(N, D)`` and return it in float64 on its own device.

    Evaluation accumulates in float64 so that a ratio near 1 is not rounding noise.
    """
    return check_features(name, x, dim=dim).to(torch.float64)


def seeded_subsample(x: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """Return ``num_samples`` rows of ``x`` ``(N, D)`` chosen without replacement by ``seed``.

    The choice is a deterministic function of ``(N, num_samples, seed)`` (CPU generator), so
    the same training features are subsampled identically for the floors and for every
    checkpoint. Returns ``x`` itself when ``N <= num_samples``.
    """
    check_positive("num_samples", num_samples, integer=True)
    n = x.shape[0]
    if n <= num_samples:
        return x
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    idx = torch.randperm(n, generator=gen)[:num_samples].sort().values
    return x[idx.to(x.device)]


def check_seed(seed: object) -> int:
    """Validate a non-negative integer seed and return it."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed
