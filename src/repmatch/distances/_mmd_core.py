"""Fused, chunked MMD² against a weighted point set, with a closed-form gradient.

Every kernel-MMD loss in the package has the form (eq. 3, summed over kernel scales ``s``)

    L(g) = Σ_s [ (1/B²) Σ_ij k_s(g_i, g_j)  -  (2/B) Σ_i Σ_l a_sl k_s(g_i, y_l)  +  c_s ]

with ``g`` the generated batch ``(B, D)``, ``y`` a point set ``(m, D)`` with weights ``a``
(Nyström: landmarks and ``alpha = K_mm^{-1} mu_bar``; exact MMD: a reference sample with
``a = 1/n``) and ``c_s`` a constant data term. For the Gaussian kernel the gradient is a closed
form in the kernel matrices,

    dL/dg_i = Σ_s  2/(B² σ_s²) [ (K_gg g)_i - (K_gg 1)_i g_i ]
                 - 2/(B σ_s²)  [ (K_gy (a ∘ y))_i - (K_gy a)_i g_i ],

so the forward pass computes it row-chunk by row-chunk alongside the loss and keeps only the
``(B, D)`` result for backward: no ``B × B`` or ``B × m`` intermediate outlives its chunk, and
peak extra memory is about ``2 · chunk_size · max(B, m)`` kernel entries. Scales that share a
point set share its ``g y^T`` matmul (and all scales share ``g g^T``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..kernels import matmul_precision


@dataclass(frozen=True, eq=False)
class AttractionTerm:
    """One kernel scale: bandwidth ``sigma``, point set ``points`` ``(m, D)``, weights ``(m,)``."""

    sigma: float
    points: torch.Tensor
    weights: torch.Tensor
    constant: float


def _exp_kernel_(inner: torch.Tensor, row_sq: torch.Tensor, col_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    """``exp(-(r_i + c_j - 2 inner_ij) / (2σ²))`` from centred inner products, as a new tensor."""
    inv = 1.0 / (sigma * sigma)
    e = torch.add(row_sq[:, None], col_sq[None, :]).mul_(-0.5 * inv)
    e.add_(inner, alpha=inv)
    return e.clamp_max_(0.0).exp_()


class _MMDFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, repulsion_sigmas, terms, chunk_size, precision, need_grad):  # type: ignore[override]
        B = g.shape[0]
        dtype = g.dtype
        # A common centre keeps the ||x||²+||y||²-2x·y expansion well conditioned in float32.
        center = terms[0].points.to(dtype).mean(0) if terms else g.mean(0)
        gc = (g.detach() - center)
        gg = (gc * gc).sum(1)
        sets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        prepared = []
        for t in terms:
            key = id(t.points)
            if key not in sets:
                yc = t.points.to(device=g.device, dtype=dtype) - center
                sets[key] = (yc, (yc * yc).sum(1))
            w = t.weights.to(device=g.device, dtype=dtype)
            wy = w[:, None] * sets[key][0] if need_grad else None
            prepared.append((key, t.sigma, w, wy))
        acc = torch.zeros(len(repulsion_sigmas) + len(terms), dtype=torch.float64, device=g.device)
        grad = torch.zeros_like(gc) if need_grad else None
        step = B if chunk_size is None else int(chunk_size)
        with matmul_precision(precision):
            for r0 in range(0, B, step):
                rows = slice(r0, min(B, r0 + step))
                xr, xx = gc[rows], gg[rows]
                if repulsion_sigmas:
                    inner = xr @ gc.T
                    for s, sigma in enumerate(repulsion_sigmas):
                        K = _exp_kernel_(inner, xx, gg, sigma)
                        acc[s] += K.sum(dtype=torch.float64)
                        if need_grad:
                            coef = 2.0 / (B * B * sigma * sigma)
                            grad[rows] += coef * (K @ gc - K.sum(1)[:, None] * xr)
                    del inner, K
                inners: dict[int, torch.Tensor] = {}
                for s, (key, sigma, w, wy) in enumerate(prepared):
                    yc, yy = sets[key]
                    if key not in inners:
                        inners[key] = xr @ yc.T
                    K = _exp_kernel_(inners[key], xx, yy, sigma)
                    Kw = K @ w
                    acc[len(repulsion_sigmas) + s] += Kw.sum(dtype=torch.float64)
                    if need_grad:
                        coef = 2.0 / (B * sigma * sigma)
                        grad[rows] -= coef * (K @ wy - Kw[:, None] * xr)
                del inners
        nrep = len(repulsion_sigmas)
        loss = acc[:nrep].sum() / (B * B) - 2.0 / B * acc[nrep:].sum()
        loss = loss + sum(t.constant for t in terms)
        if need_grad:
            ctx.save_for_backward(grad)
        return loss.to(dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None, None, None


def fused_mmd(
    g: torch.Tensor,
    repulsion_sigmas: Sequence[float],
    terms: Sequence[AttractionTerm],
    *,
    chunk_size: int | None = None,
    precision: str = "highest",
) -> torch.Tensor:
    """Scalar ``L(g)`` of the module docstring; differentiable in ``g`` (first order)."""
    # Forward runs with grad disabled, so whether a gradient is wanted is decided here.
    need_grad = torch.is_grad_enabled() and g.requires_grad
    return _MMDFunction.apply(
        g, tuple(repulsion_sigmas), tuple(terms), chunk_size, precision, need_grad
    )
