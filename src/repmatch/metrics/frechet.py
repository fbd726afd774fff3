"""Fréchet distance between Gaussian fits of two feature sets (the FD of FID; FD_r,k of §3.3).

    FD(x, y) = ‖μ_x − μ_y‖² + tr Σ_x + tr Σ_y − 2 tr (Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2},

with unbiased covariances. tr (Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2} equals tr (Σ_x Σ_y)^{1/2}; the
symmetric form lets it be computed from the eigenvalues of a PSD matrix (``torch.linalg.eigh``
in float64), with no scipy and no complex arithmetic.
"""

from __future__ import annotations

import torch

from ._common import as_float64


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Principal square root ``(D, D)`` of a symmetric PSD matrix ``a`` ``(D, D)`` via ``eigh``.

    Eigenvalues below zero (round-off of a PSD matrix) are clamped to zero.
    """
    if not isinstance(a, torch.Tensor) or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"a must be a square matrix tensor (D, D), got {getattr(a, 'shape', type(a).__name__)}"
        )
    a64 = a.to(torch.float64)
    evals, evecs = torch.linalg.eigh((a64 + a64.T) / 2)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def gaussian_stats(x: torch.Tensor, *, name: str = "x", dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``x`` ``(N, D)`` (N ≥ 2), float64.

    ``name`` is the parameter errors name; ``dim`` (optional) the width ``x`` must have.
    """
    x64 = as_float64(name, x, dim=dim)
    if x64.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows for a covariance, got {x64.shape[0]}")
    mu = x64.mean(dim=0)
    xc = x64 - mu
    return mu, (xc.T @ xc) / (x64.shape[0] - 1)


def frechet_from_stats(
    mu_x: torch.Tensor, cov_x: torch.Tensor, mu_y: torch.Tensor, cov_y: torch.Tensor
) -> float:
    """FD from Gaussian statistics (means ``(D,)``, covariances ``(D, D)``), float64."""
    if (
        mu_x.shape != mu_y.shape
        or cov_x.shape != cov_y.shape
        or cov_x.shape != (mu_x.shape[0],) * 2
    ):
        raise ValueError(
            f"statistics shapes disagree: mu_x {tuple(mu_x.shape)}, cov_x {tuple(cov_x.shape)}, "
            f"mu_y {tuple(mu_y.shape)}, cov_y {tuple(cov_y.shape)}"
        )
    mu_x, cov_x, mu_y, cov_y = (t.to(torch.float64) for t in (mu_x, cov_x, mu_y, cov_y))
    root_x = sqrtm_psd(cov_x)
    cross = torch.linalg.eigvalsh(root_x @ cov_y @ root_x).clamp_min(0).sqrt().sum()
    fd = (mu_x - mu_y).square().sum() + cov_x.trace() + cov_y.trace() - 2 * cross
    return float(fd)


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """FD between Gaussian fits of ``x`` ``(N, D)`` and ``y`` ``(M, D)``; sizes may differ."""
    mu_x, cov_x = gaussian_stats(x)
    mu_y, cov_y = gaussian_stats(y, name="y", dim=mu_x.shape[0])
    return frechet_from_stats(mu_x, cov_x, mu_y, cov_y)
