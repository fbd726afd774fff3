"""Sliced-Wasserstein distance SW₂ between two equal-size feature sets.

    SW₂(x, y) = ( (1/L) Σ_l W₂²(θ_lᵀx, θ_lᵀy) )^{1/2},   θ_l ∈ S^{D-1},

where the 1-D squared Wasserstein distance between two equal-size empirical measures is the
mean squared difference of their sorted values, W₂²(a, b) = (1/N) Σ_i (a_(i) − b_(i))².
This is the per-encoder distance inside the paper's SW_r,k ratio (eq. 5).

The projections are a deterministic function of ``(D, L, seed)`` drawn on the CPU in float64,
so floors, every checkpoint and every encoder of equal width see identical directions and
their ratios are comparable. Projection and sorting run in chunks of projections: memory is
bounded by ``chunk_size`` and, because each projection's W₂² is computed independently and
summed in float64, the result does not depend on the chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..validate import check_nonnegative_int, check_positive
from ._common import as_float64

DEFAULT_NUM_PROJECTIONS = 1024  # M = 1024 in the paper (§4.1)
DEFAULT_CHUNK_SIZE = 128


def random_projections(
    dim: int, num_projections: int = DEFAULT_NUM_PROJECTIONS, seed: int = 0
) -> torch.Tensor:
    """Unit projection directions ``(D, L)``, float64 on the CPU, fixed by ``(dim, L, seed)``.

    Columns are i.i.d. standard normal vectors normalised to unit length, i.e. uniform on
    the sphere S^{D-1}.
    """
    check_positive("dim", dim, integer=True)
    check_positive("num_projections", num_projections, integer=True)
    gen = torch.Generator(device="cpu").manual_seed(check_nonnegative_int("seed", seed))
    theta = torch.randn(dim, num_projections, generator=gen, dtype=torch.float64)
    return theta / theta.norm(dim=0, keepdim=True)


def _check_projections(projections: object, dim: int) -> torch.Tensor:
    if not isinstance(projections, torch.Tensor) or not projections.is_floating_point():
        raise TypeError(
            f"projections must be a floating-point torch.Tensor of shape (D, L), got {type(projections).__name__}"
        )
    if projections.ndim != 2 or projections.shape[0] != dim or projections.shape[1] == 0:
        raise ValueError(
            f"projections must have shape (D={dim}, L>0), got {tuple(projections.shape)}"
        )
    theta = projections.to(torch.float64)
    norms = theta.norm(dim=0)
    if not bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-6)):
        worst = float((norms - 1).abs().max())
        raise ValueError(
            f"projections must have unit-norm columns, got a column norm off by {worst:.3g}"
        )
    return theta


def sliced_w2_squared(
    ref: torch.Tensor,
    others: Sequence[torch.Tensor],
    projections: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[float]:
    """Mean over projections of W₂² between ``ref`` ``(N, D)`` and each of ``others`` ``(N, D)``.

    Inputs must already be float64, equal-size and on one device; ``projections`` is
    ``(D, L)``. ``ref`` is projected and sorted once per chunk and reused for every other set
    (the panel compares gen and val against the same train set).
    """
    check_positive("chunk_size", chunk_size, integer=True)
    theta = projections.to(ref.device, torch.float64)
    num_projections = theta.shape[1]
    totals = [0.0] * len(others)
    for start in range(0, num_projections, chunk_size):
        block = theta[:, start : start + chunk_size]
        # (c, N) layout so each projection's values are contiguous for the sort.
        ref_sorted = (block.T @ ref.T).sort(dim=1).values
        for i, other in enumerate(others):
            other_sorted = (block.T @ other.T).sort(dim=1).values
            totals[i] += float((other_sorted - ref_sorted).square().mean(dim=1).sum())
    return [t / num_projections for t in totals]


def sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    num_projections: int = DEFAULT_NUM_PROJECTIONS,
    seed: int = 0,
    projections: torch.Tensor | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> float:
    """SW₂ between feature sets ``x`` ``(N, D)`` and ``y`` ``(N, D)`` of equal size ``N``.

    ``projections`` (optional, ``(D, L)`` unit columns) overrides ``num_projections``/``seed``;
    otherwise ``random_projections(D, num_projections, seed)`` is used. Computed in float64
    on the inputs' device. Unequal sizes raise (subsample first, e.g. as ``sw_ratio_panel``
    does, so both sets are equally noisy empirical measures).
    """
    x64 = as_float64("x", x)
    y64 = as_float64("y", y, dim=x64.shape[1])
    if x64.shape[0] != y64.shape[0]:
        raise ValueError(
            f"x and y must have the same number of samples for SW₂, got {x64.shape[0]} and "
            f"{y64.shape[0]}; subsample both to a common size first"
        )
    if y64.device != x64.device:
        raise ValueError(f"x and y must be on one device, got {x64.device} and {y64.device}")
    if projections is None:
        theta = random_projections(x64.shape[1], num_projections, seed)
    else:
        theta = _check_projections(projections, x64.shape[1])
    (w2_sq,) = sliced_w2_squared(x64, [y64], theta, chunk_size=chunk_size)
    return math.sqrt(max(w2_sq, 0.0))
