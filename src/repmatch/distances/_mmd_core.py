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

Memory traffic is what costs on a GPU, so each kernel block is one matmul on augmented
operands ``[x, -|x|²/2, 1] · [y, 1, -|y|²/2]^T = -|x - y|²/2`` scaled by ``1/σ²`` followed by
one in-place ``exp`` (floored on CPU, :func:`repmatch.kernels.exp_floored_`); its row sums come
out of the gradient matmul ``K @ [y, 1]``. (Rounding can make an exponent a hair above 0; that
is harmless, so it is not clamped from above.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..kernels import augmented_operands, exp_floored_, matmul_precision


@dataclass(frozen=True, eq=False)
class PointSet:
    """A weighted point set ``(m, D)`` prepared for :func:`fused_mmd` around a common centre.

    ``right`` is the augmented centred points (see :func:`repmatch.kernels.augmented_operands`),
    ``weighted`` is ``[w ∘ y_c, w]`` (so ``K @ weighted`` gives the gradient term and ``K w``),
    ``weights`` is ``w`` ``(m,)``.
    """

    right: torch.Tensor
    weighted: torch.Tensor
    weights: torch.Tensor


def prepare_points(points: torch.Tensor, weights: torch.Tensor, center: torch.Tensor) -> PointSet:
    """Centre ``points`` ``(m, D)`` on ``center`` and build a :class:`PointSet` in its dtype/device."""
    yc = points.to(device=center.device, dtype=center.dtype) - center
    w = weights.to(device=center.device, dtype=center.dtype)
    return PointSet(right=augmented_operands(yc, left=False), weighted=_with_ones(yc, w), weights=w)


@dataclass(frozen=True, eq=False)
class AttractionTerm:
    """One kernel scale of the attraction: bandwidth ``sigma``, a point set, a data-term constant."""

    sigma: float
    points: PointSet
    constant: float


def _with_ones(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``[w ∘ x, w]`` (padded to 8 columns) so ``K @ it`` gives ``K (w ∘ x)`` and ``K w`` at once."""
    n, d = x.shape
    out = x.new_zeros(n, (d + 1 + 7) // 8 * 8)
    if weights is None:
        out[:, :d] = x
        out[:, d] = 1.0
    else:
        torch.mul(x, weights[:, None], out=out[:, :d])
        out[:, d] = weights
    return out


class _MMDFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, repulsion_sigmas, terms, center, chunk_size, precision, need_grad):  # type: ignore[override]
        B, D = g.shape
        gc = g.detach() - center
        g_left = augmented_operands(gc, left=True)
        g_right = augmented_operands(gc, left=False) if repulsion_sigmas else None
        g_ones = _with_ones(gc) if need_grad and repulsion_sigmas else None
        # Point sets shared by several scales share one inner-product matmul per chunk.
        uses: dict[int, int] = {}
        for t in terms:
            uses[id(t.points)] = uses.get(id(t.points), 0) + 1
        nrep = len(repulsion_sigmas)
        rep_sums: list[torch.Tensor] = []
        att_sums: list[torch.Tensor] = []
        grad = torch.zeros_like(gc) if need_grad else None
        step = B if chunk_size is None else int(chunk_size)

        def kernel(left: torch.Tensor, right: torch.Tensor, inner: torch.Tensor | None, sigma: float) -> torch.Tensor:
            inv = 1.0 / (sigma * sigma)
            if inner is None:  # one scale on this set: fold 1/σ² into the small operand
                return exp_floored_(torch.mm(left * inv, right.T))
            return exp_floored_(torch.mul(inner, inv))

        with matmul_precision(precision):
            for r0 in range(0, B, step):
                rows = slice(r0, min(B, r0 + step))
                left, xr = g_left[rows], gc[rows]
                inner = torch.mm(left, g_right.T) if nrep > 1 else None
                for sigma in repulsion_sigmas:
                    K = kernel(left, g_right, inner, sigma)
                    if need_grad:
                        KG = K @ g_ones
                        rep_sums.append(KG[:, D].sum(dtype=torch.float64))
                        grad[rows].add_(KG[:, :D].addcmul_(KG[:, D : D + 1], xr, value=-1.0),
                                        alpha=2.0 / (B * B * sigma * sigma))
                    else:
                        rep_sums.append(K.sum(dtype=torch.float64))
                    del K
                inners: dict[int, torch.Tensor] = {}
                for t in terms:
                    key = id(t.points)
                    if uses[key] > 1 and key not in inners:
                        inners[key] = torch.mm(left, t.points.right.T)
                    K = kernel(left, t.points.right, inners.get(key), t.sigma)
                    if need_grad:
                        KY = K @ t.points.weighted
                        att_sums.append(KY[:, D].sum(dtype=torch.float64))
                        grad[rows].add_(KY[:, :D].addcmul_(KY[:, D : D + 1], xr, value=-1.0),
                                        alpha=-2.0 / (B * t.sigma * t.sigma))
                    else:
                        att_sums.append((K @ t.points.weights).sum(dtype=torch.float64))
                    del K
                del inner, inners
        loss = sum(t.constant for t in terms) + torch.zeros((), dtype=torch.float64, device=g.device)
        if rep_sums:
            loss = loss + torch.stack(rep_sums).sum() / (B * B)
        if att_sums:
            loss = loss - torch.stack(att_sums).sum() * (2.0 / B)
        if need_grad:
            ctx.save_for_backward(grad)
        return loss.to(g.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None, None, None, None


def fused_mmd(
    g: torch.Tensor,
    repulsion_sigmas: Sequence[float],
    terms: Sequence[AttractionTerm],
    center: torch.Tensor,
    *,
    chunk_size: int | None = None,
    precision: str = "highest",
) -> torch.Tensor:
    """Scalar ``L(g)`` of the module docstring; differentiable in ``g`` (first order).

    ``terms`` must be prepared (:func:`prepare_points`) around ``center`` in ``g``'s dtype and
    device; a common centre keeps the distance expansion well conditioned in float32.
    """
    # Forward runs with grad disabled, so whether a gradient is wanted is decided here.
    need_grad = torch.is_grad_enabled() and g.requires_grad
    return _MMDFunction.apply(
        g, tuple(repulsion_sigmas), tuple(terms), center, chunk_size, precision, need_grad
    )
