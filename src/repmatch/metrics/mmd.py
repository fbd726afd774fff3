"""Kernel MMD² estimated with random Fourier features (the paper's RFF-MMD, Appendix D).

For the Gaussian kernel k(x, y) = exp(−‖x − y‖² / (2σ²)) (Rahimi & Recht, 2007),

    φ(x) = √(2/F) · cos(Wᵀx + b),   W ~ N(0, σ⁻² I) ∈ ℝ^{D×F},   b ~ U[0, 2π)^F,
    MMD²_RFF(x, y) = ‖ (1/N) Σ_i φ(x_i) − (1/M) Σ_j φ(y_j) ‖²,

with F = 4096 features by default. σ is the median heuristic of the reference (train) set:
the median pairwise Euclidean distance on a seeded subsample. W and b are drawn on the CPU in
float64 from ``seed``, so the val floor and every checkpoint use the same feature map.

This is an *evaluation* estimator written independently of the training loss path.
"""

from __future__ import annotations

import math

import torch

from ..validate import check_nonnegative_int, check_positive
from ._common import as_float64, seeded_subsample

DEFAULT_NUM_FEATURES = 4096  # 4096 random Fourier features (§4.4, Appendix D)
DEFAULT_BANDWIDTH_SAMPLES = 2048
DEFAULT_ROW_CHUNK = 4096


def lower_median_bandwidth(
    x: torch.Tensor, *, max_samples: int = DEFAULT_BANDWIDTH_SAMPLES, seed: int = 0
) -> float:
    """Median heuristic σ: the *lower* median of ‖x_i − x_j‖, i < j, over ≤ ``max_samples`` rows
    of ``x`` ``(N, D)``, in float64.

    The metric's own rule, distinct from :func:`repmatch.compare.kernels.median_bandwidth` (the
    training kernel's: numpy's mean of the two middle values, in the input dtype, another
    subsample): metrics never import the comparison axis, and this value fixes every stored
    MMD_r,k, so it must not move when the training kernel's rule does.
    """
    return _lower_median("x", x, max_samples, seed)


def _lower_median(name: str, x: torch.Tensor, max_samples: int, seed: int) -> float:
    """:func:`lower_median_bandwidth` with errors naming the caller's parameter ``name``."""
    x64 = seeded_subsample(as_float64(name, x), max_samples, check_nonnegative_int("seed", seed))
    if x64.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows for the median heuristic, got {x64.shape[0]}")
    dist = torch.cdist(x64, x64)
    iu = torch.triu_indices(x64.shape[0], x64.shape[0], offset=1, device=x64.device)
    sigma = float(dist[iu[0], iu[1]].median())
    if not sigma > 0:
        raise ValueError(
            f"{name} has median pairwise distance 0 (mostly duplicate rows); pass bandwidth explicitly"
        )
    return sigma


def rff_weights(
    dim: int, bandwidth: float, num_features: int = DEFAULT_NUM_FEATURES, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frequencies ``W`` ``(D, F)`` ~ N(0, σ⁻²) and phases ``b`` ``(F,)`` ~ U[0, 2π), float64, CPU, fixed by the seed."""
    check_positive("dim", dim, integer=True)
    check_positive("bandwidth", bandwidth)
    check_positive("num_features", num_features, integer=True)
    gen = torch.Generator(device="cpu").manual_seed(check_nonnegative_int("seed", seed))
    w = torch.randn(dim, num_features, generator=gen, dtype=torch.float64) / bandwidth
    b = torch.rand(num_features, generator=gen, dtype=torch.float64) * (2 * math.pi)
    return w, b


def rff_mean_embedding(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *, chunk_size: int = DEFAULT_ROW_CHUNK
) -> torch.Tensor:
    """Mean feature map (1/N) Σ_i φ(x_i) ``(F,)`` of float64 ``x`` ``(N, D)``, summed over row chunks."""
    check_positive("chunk_size", chunk_size, integer=True)
    w, b = w.to(x.device), b.to(x.device)
    total = torch.zeros(w.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk_size):
        total += torch.cos(x[start : start + chunk_size] @ w + b).sum(dim=0)
    return total * (math.sqrt(2.0 / w.shape[1]) / x.shape[0])


def rff_mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    num_features: int = DEFAULT_NUM_FEATURES,
    seed: int = 0,
    bandwidth: float | None = None,
    *,
    chunk_size: int = DEFAULT_ROW_CHUNK,
) -> float:
    """MMD²_RFF between ``x`` ``(N, D)`` and the reference ``y`` ``(M, D)`` (sizes may differ).

    ``bandwidth`` defaults to ``lower_median_bandwidth(y, seed=seed)``. Float64 on the inputs' device.
    """
    x64 = as_float64("x", x)
    y64 = as_float64("y", y, dim=x64.shape[1])
    sigma = (
        _lower_median("y", y64, DEFAULT_BANDWIDTH_SAMPLES, seed)
        if bandwidth is None
        else float(check_positive("bandwidth", bandwidth))
    )
    w, b = rff_weights(x64.shape[1], sigma, num_features, seed)
    diff = rff_mean_embedding(x64, w, b, chunk_size=chunk_size) - rff_mean_embedding(
        y64, w, b, chunk_size=chunk_size
    )
    return float(diff.square().sum())
