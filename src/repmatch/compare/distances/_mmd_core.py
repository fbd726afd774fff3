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
with ``chunk_size`` set, peak extra memory is about ``2 · chunk_size · max(B, m)`` kernel
entries. Scales that share a point set share its ``g y^T`` matmul (and all scales share
``g g^T``). Since ``Σ_s c_s K_s (a_s ∘ [y, 1]) = (Σ_s c_s K_s diag(a_s)) [y, 1]``, the scales of
a point set are combined elementwise before one gradient matmul; an unchunked call evaluates
them as one ``(scales, rows, m)`` block (while it stays under ``2^22`` entries), so a small
batch costs a few large kernels rather than many tiny ones.

Memory traffic is what costs on a GPU, so each kernel block is one matmul on augmented
operands ``[x, -|x|²/2, 1] · [y, 1, -|y|²/2]^T = -|x - y|²/2`` scaled by ``1/σ²`` followed by
one in-place ``exp`` (floored on CPU, :func:`repmatch.compare.kernels.exp_floored_`). (Rounding can
make an exponent a hair above 0; that is harmless, so it is not clamped from above.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..kernels import augmented_operands, exp_floored_, matmul_precision

#: An unchunked call evaluates several scales of a point set at once while their kernel block
#: (scales × rows × m) stays under this many entries (16 MiB in float32).
_BLOCK_ENTRIES = 1 << 22


@dataclass(frozen=True, eq=False)
class PointSet:
    """A point set ``(m, D)`` prepared for :func:`fused_mmd` around a common centre.

    ``right`` is the augmented centred points (see :func:`repmatch.compare.kernels.augmented_operands`),
    ``values`` is ``[y_c, 1]`` (so ``M @ values`` gives ``M y_c`` and ``M 1`` at once).
    """

    right: torch.Tensor
    values: torch.Tensor


def prepare_points(points: torch.Tensor, center: torch.Tensor) -> PointSet:
    """Centre ``points`` ``(m, D)`` on ``center`` and build a :class:`PointSet` in its dtype/device."""
    yc = points.to(device=center.device, dtype=center.dtype) - center
    return PointSet(right=augmented_operands(yc, left=False), values=_with_ones(yc))


@dataclass(frozen=True, eq=False)
class AttractionTerm:
    """One kernel scale of the attraction: bandwidth ``sigma``, a point set, its weights ``a``
    ``(m,)`` (in the point set's dtype and device), a data-term constant."""

    sigma: float
    points: PointSet
    weights: torch.Tensor
    constant: float


def _with_ones(x: torch.Tensor) -> torch.Tensor:
    """``[x, 1]`` (padded to 8 columns) so ``M @ it`` gives ``M x`` and ``M 1`` at once."""
    n, d = x.shape
    out = x.new_zeros(n, (d + 1 + 7) // 8 * 8)
    out[:, :d] = x
    out[:, d] = 1.0
    return out


@dataclass(frozen=True, eq=False)
class _Group:
    """Scales sharing one point set: ``loss += loss_coef Σ a K``, ``grad += grad_coef/σ² ...``."""

    right: torch.Tensor
    values: torch.Tensor
    sigmas: tuple[float, ...]
    weights: torch.Tensor  # (scales, m)
    loss_coef: float
    grad_coef: float


def _groups(gc: torch.Tensor, repulsion_sigmas: Sequence[float], terms: Sequence[AttractionTerm]) -> list[_Group]:
    B = gc.shape[0]
    groups = []
    if repulsion_sigmas:
        k = len(repulsion_sigmas)
        groups.append(_Group(augmented_operands(gc, left=False), _with_ones(gc), tuple(repulsion_sigmas),
                             gc.new_ones(k, B), 1.0 / (B * B), 2.0 / (B * B)))
    by_points: dict[int, list[AttractionTerm]] = {}
    for t in terms:
        by_points.setdefault(id(t.points), []).append(t)
    for ts in by_points.values():
        groups.append(_Group(ts[0].points.right, ts[0].points.values, tuple(t.sigma for t in ts),
                             torch.stack([t.weights for t in ts]), -2.0 / B, -2.0 / B))
    return groups


class _MMDFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, repulsion_sigmas, terms, center, chunk_size, precision, need_grad):  # type: ignore[override]
        B, D = g.shape
        gc = g.detach() - center
        g_left = augmented_operands(gc, left=True)
        groups = _groups(gc, repulsion_sigmas, terms)
        sums: list[torch.Tensor] = []
        grad = torch.zeros_like(gc) if need_grad else None
        step = B if chunk_size is None else int(chunk_size)
        with matmul_precision(precision):
            for r0 in range(0, B, step):
                rows = slice(r0, min(B, r0 + step))
                left, xr = g_left[rows], gc[rows]
                n = left.shape[0]
                for grp in groups:
                    m = grp.right.shape[0]
                    per = 1 if chunk_size is not None else max(1, _BLOCK_ENTRIES // (n * m))
                    inner = None
                    for s0 in range(0, len(grp.sigmas), per):
                        sig = grp.sigmas[s0 : s0 + per]
                        inv = [1.0 / (s * s) for s in sig]
                        if len(sig) == 1 and len(grp.sigmas) == 1:
                            # One scale on this set: fold 1/σ² into the small operand.
                            K = torch.mm(left * inv[0], grp.right.T).unsqueeze(0)
                        else:
                            if inner is None:
                                inner = torch.mm(left, grp.right.T)
                            K = torch.mul(inner, torch.tensor(inv, dtype=inner.dtype, device=inner.device).view(-1, 1, 1))
                        K = exp_floored_(K)  # (scales, rows, m)
                        w = grp.weights[s0 : s0 + per]
                        sums.append((K.sum(1) * w).sum(dtype=torch.float64) * grp.loss_coef)
                        if need_grad:
                            coef = torch.tensor([grp.grad_coef * v for v in inv], dtype=w.dtype, device=w.device)
                            # Σ_s c_s K_s diag(a_s), then one matmul against [y, 1].
                            G = K.mul_((coef[:, None] * w)[:, None, :]).sum(0) @ grp.values
                            grad[rows].add_(G[:, :D].addcmul_(G[:, D : D + 1], xr, value=-1.0))
                        del K
                    del inner
        loss = sum(t.constant for t in terms) + torch.stack(sums).sum()
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
    device; a common centre keeps the distance expansion well conditioned in float32. Terms
    that share a :class:`PointSet` object share its kernel matmul.
    """
    # Forward runs with grad disabled, so whether a gradient is wanted is decided here.
    need_grad = torch.is_grad_enabled() and g.requires_grad
    return _MMDFunction.apply(
        g, tuple(repulsion_sigmas), tuple(terms), center, chunk_size, precision, need_grad
    )
