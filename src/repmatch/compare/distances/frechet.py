"""``frechet``: the Fréchet (Gaussian 2-Wasserstein) distance against frozen reference moments.

    FD(g) = ||μ_g - μ_r||² + tr(Σ_g + Σ_r - 2 (Σ_r^{1/2} Σ_g Σ_r^{1/2})^{1/2})

with ``μ_r, Σ_r`` frozen at fit (float64) and ``μ_g, Σ_g`` the batch mean and unbiased
covariance. ``tr((Σ_r^{1/2} Σ_g Σ_r^{1/2})^{1/2}) = tr((Σ_g Σ_r)^{1/2})`` but the symmetric form
lets the square root use ``eigh``. Everything is computed in float64 whatever the input dtype
(``D × D`` is small next to the encoders); the distance is returned in float64 for float64
input and in float32 otherwise (a float16 FD would overflow past 65504). The eigenvalue
gradients are closed-form and first order only: a double backward raises ``RuntimeError``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...validate import check_features, check_positive
from ..kernels import compute_dtype
from ._autograd import first_order_only
from ._base import Distance, reference_features

__all__ = ["Frechet", "frechet_distance", "sqrtm_psd"]


def _sqrt_floor(s: torch.Tensor) -> float:
    """Floor for the ``sqrt λ`` denominators: ``1e-10 · max sqrt λ``, at least ``sqrt(tiny)``.

    The gradient of ``tr sqrt(A Aᵀ)`` in ``A`` is bounded (``(A Aᵀ)^{-1/2} A``), but the chain
    rule forms it as a ``1 / sqrt λ`` factor times ``A``: when ``A = 0`` (a constant reference,
    so ``Σ_r^{1/2} = 0``) an unbounded factor made ``inf · 0 = NaN``. ``1 / sqrt(tiny)`` cannot
    overflow, and times the zero ``A`` gives the true gradient, 0.
    """
    return max(1e-10 * float(s.max()), torch.finfo(s.dtype).tiny ** 0.5)


class _SqrtmPSD(torch.autograd.Function):
    """Symmetric PSD square root via ``eigh``; backward solves ``S dS + dS S = dM``.

    The Sylvester solution in the eigenbasis divides by ``sqrt λ_i + sqrt λ_j``, floored at
    ``1e-10 · max sqrt λ`` so rank-deficient inputs (``B <= D``) give a finite gradient, and
    never below ``sqrt(tiny)`` (see :func:`_sqrt_floor`).
    """

    @staticmethod
    def forward(ctx, m):  # type: ignore[override]
        evals, evecs = torch.linalg.eigh(0.5 * (m + m.transpose(-1, -2)))
        s = evals.clamp_min(0.0).sqrt()
        ctx.save_for_backward(evecs, s)
        ctx.anchor = m  # see first_order_only
        return (evecs * s) @ evecs.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        evecs, s = ctx.saved_tensors
        g = evecs.transpose(-1, -2) @ (0.5 * (grad + grad.transpose(-1, -2))) @ evecs
        denom = (s[:, None] + s[None, :]).clamp_min(_sqrt_floor(s))
        return first_order_only(evecs @ (g / denom) @ evecs.transpose(-1, -2), ctx.anchor, "sqrtm_psd")


class _TraceSqrtPSD(torch.autograd.Function):
    """``tr(M^{1/2}) = Σ sqrt λ_i`` of a symmetric PSD matrix via ``eigh``.

    Its gradient ``V diag(1 / (2 sqrt λ)) V^T`` is :class:`_SqrtmPSD`'s backward for an identity
    output gradient (only the diagonal of the Sylvester solution survives), with the same floor
    on ``2 sqrt λ_i``; it skips building ``M^{1/2}`` and the Sylvester solve's extra matmuls.
    """

    @staticmethod
    def forward(ctx, m):  # type: ignore[override]
        evals, evecs = torch.linalg.eigh(0.5 * (m + m.transpose(-1, -2)))
        s = evals.clamp_min(0.0).sqrt()
        ctx.save_for_backward(evecs, s)
        ctx.anchor = m  # see first_order_only
        return s.sum()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        evecs, s = ctx.saved_tensors
        denom = (2.0 * s).clamp_min(_sqrt_floor(s))
        return first_order_only((evecs * (grad / denom)) @ evecs.transpose(-1, -2), ctx.anchor, "frechet")


def sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    """Square root ``(D, D)`` of a symmetric PSD matrix ``m`` (negative eigenvalues → 0);
    differentiable once (a double backward raises)."""
    return _SqrtmPSD.apply(m)


def frechet_distance(
    gen_features: torch.Tensor, ref_mean: torch.Tensor, ref_cov_sqrt: torch.Tensor, ref_cov_trace: float
) -> torch.Tensor:
    """FD of ``gen_features`` ``(B, D)`` vs frozen ``μ_r (D,)``, ``Σ_r^{1/2} (D, D)``, ``tr Σ_r``.

    With ``A = (g - μ_g) Σ_r^{1/2} / sqrt(B - 1)`` ``(B, D)``, ``Σ_r^{1/2} Σ_g Σ_r^{1/2} = AᵀA``,
    whose nonzero eigenvalues are those of ``A Aᵀ`` ``(B, B)``: the smaller of the two Gram
    matrices gives ``tr((Σ_r^{1/2} Σ_g Σ_r^{1/2})^{1/2})`` (a ``B × B`` eigenproblem when B < D,
    without the ``D - B + 1`` null eigenvalues that would only add rounding).
    Float64 throughout; returned in float64 for float64 input, else float32.
    """
    check_features("gen_features", gen_features, dim=int(ref_mean.shape[-1]))
    B = gen_features.shape[0]
    if B < 2:
        raise ValueError(f"gen_features needs at least 2 rows for a covariance, got {B}")
    x = gen_features.to(torch.float64)
    mu = x.mean(0)
    xc = x - mu
    a = xc @ ref_cov_sqrt.to(device=x.device) / math.sqrt(B - 1)
    cross_trace = _TraceSqrtPSD.apply(a @ a.T if B < a.shape[1] else a.T @ a)
    diff = mu - ref_mean.to(x.device)
    fd = (diff * diff).sum() + (xc * xc).sum() / (B - 1) + ref_cov_trace - 2.0 * cross_trace
    return fd.to(compute_dtype(gen_features.dtype))


class Frechet(Distance):
    """``frechet``: FD against the reference's frozen mean and covariance."""

    name = "frechet"

    def __init__(self, *, chunk_size: int = 65536) -> None:
        check_positive("chunk_size", chunk_size, integer=True)
        self.chunk_size = chunk_size

    def fit(self, reference: Any) -> Frechet:
        ref = reference_features(reference)
        n = ref.shape[0]
        if n < 2:
            raise ValueError(f"reference needs at least 2 rows for a covariance, got {n}")
        # Chunked float64 moments about a provisional centre: no float64 copy of the pool.
        shift = ref[0].to(torch.float64)
        total = torch.zeros_like(shift)
        gram = torch.zeros(ref.shape[1], ref.shape[1], dtype=torch.float64, device=ref.device)
        for i in range(0, n, self.chunk_size):
            xc = ref[i : i + self.chunk_size].to(torch.float64) - shift
            total += xc.sum(0)
            gram += xc.T @ xc
        delta = total / n
        self.mean = shift + delta
        cov = (gram - n * torch.outer(delta, delta)) / (n - 1)
        self.cov_sqrt = sqrtm_psd(cov)
        self.cov_trace = float(torch.diagonal(cov).sum())
        self.dim = ref.shape[1]
        return self

    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return frechet_distance(gen, self.mean, self.cov_sqrt, self.cov_trace)
