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
``(B, D)`` result for backward (first derivatives only: a double backward raises, since that
saved gradient carries no Hessian): no ``B × B`` or ``B × m`` intermediate outlives its chunk, and
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

Precision. The expansion's rounding error is about ``eps (|x - c|² + |y - c|²) / σ²`` in the
exponent, for a centre ``c``. The repulsion (``g`` against ``g``) is therefore centred on the
batch's own mean, and the attraction on the point set's centre (its mean: a pair there has
weight ``exp(-|g - y|²/2σ²)`` only when ``g`` is within a few σ of the points, i.e. near the
centre; a far ``g`` has an exponent far below the ``exp`` floor either way). One common centre
for both, as the point set's, was wrong by whole units of exponent for a batch 1000σ from the
reference (float32: loss off by 1e-3, gradient by 5%). Float64 inputs are computed in
float64, all others (float32, float16, bfloat16) in float32; the loss is returned in that
dtype and the gradient in the input's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..kernels import augmented_operands, compute_dtype, exp_floored_, matmul_precision
from ._autograd import first_order_only

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
    """Scales sharing one point set: ``loss += loss_coef Σ a K``, ``grad += grad_coef/σ² ...``.

    ``left``/``rows`` are the batch's augmented operands and centred rows about the same centre
    as ``right``/``values``.
    """

    left: torch.Tensor
    rows: torch.Tensor
    right: torch.Tensor
    values: torch.Tensor
    sigmas: tuple[float, ...]
    weights: torch.Tensor  # (scales, m)
    loss_coef: float
    grad_coef: float


def _groups(
    g: torch.Tensor, center: torch.Tensor, repulsion_sigmas: Sequence[float], terms: Sequence[AttractionTerm]
) -> list[_Group]:
    B = g.shape[0]
    groups = []
    if repulsion_sigmas:
        # Centred on the batch's own mean: the expansion error scales with |g - c|², and the
        # loss and gradient are translation invariant, so the centre needs no gradient.
        gr = g - g.mean(0)
        k = len(repulsion_sigmas)
        groups.append(_Group(augmented_operands(gr, left=True), gr, augmented_operands(gr, left=False),
                             _with_ones(gr), tuple(repulsion_sigmas), gr.new_ones(k, B), 1.0 / (B * B),
                             2.0 / (B * B)))
    if terms:
        ga = g - center
        left = augmented_operands(ga, left=True)
        by_points: dict[int, list[AttractionTerm]] = {}
        for t in terms:
            by_points.setdefault(id(t.points), []).append(t)
        for ts in by_points.values():
            groups.append(_Group(left, ga, ts[0].points.right, ts[0].points.values, tuple(t.sigma for t in ts),
                                 torch.stack([t.weights for t in ts]), -2.0 / B, -2.0 / B))
    return groups


class _MMDFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, repulsion_sigmas, terms, center, chunk_size, precision, need_grad):  # type: ignore[override]
        B, D = g.shape
        groups = _groups(g.detach().to(center.dtype), center, repulsion_sigmas, terms)
        sums: list[torch.Tensor] = []
        grad = center.new_zeros(B, D) if need_grad else None
        step = B if chunk_size is None else int(chunk_size)
        with matmul_precision(precision):
            for r0 in range(0, B, step):
                rows = slice(r0, min(B, r0 + step))
                for grp in groups:
                    left, xr = grp.left[rows], grp.rows[rows]
                    n, m = left.shape[0], grp.right.shape[0]
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
            # Not saved for backward: only a graph anchor for the double-backward error, so an
            # in-place change of g after the forward must not invalidate the first derivative.
            ctx.anchor = g
            ctx.input_dtype = g.dtype
        return loss.to(center.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        out = first_order_only((grad_out * grad).to(ctx.input_dtype), ctx.anchor, "the kernel MMD loss")
        return out, None, None, None, None, None, None


def fused_mmd(
    g: torch.Tensor,
    repulsion_sigmas: Sequence[float],
    terms: Sequence[AttractionTerm],
    center: torch.Tensor,
    *,
    chunk_size: int | None = None,
    precision: str = "highest",
) -> torch.Tensor:
    """Scalar ``L(g)`` of the module docstring; differentiable in ``g`` (first order only:
    a double backward raises ``RuntimeError``).

    ``terms`` must be prepared (:func:`prepare_points`) around ``center`` in
    ``compute_dtype(g.dtype)`` on ``g``'s device: the attraction is expanded about ``center``
    (the point sets' centre), the repulsion about the batch mean. The loss is returned in the
    compute dtype (float32 for float16/bfloat16 inputs), the gradient in ``g``'s dtype. Terms
    that share a :class:`PointSet` object share its kernel matmul.
    """
    if center.dtype != compute_dtype(g.dtype):
        raise ValueError(f"center has dtype {center.dtype}; terms must be prepared in {compute_dtype(g.dtype)}")
    # Forward runs with grad disabled, so whether a gradient is wanted is decided here.
    need_grad = torch.is_grad_enabled() and g.requires_grad
    return _MMDFunction.apply(
        g, tuple(repulsion_sigmas), tuple(terms), center, chunk_size, precision, need_grad
    )
