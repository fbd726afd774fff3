"""``drifting``: the coupled multi-radius drifting field of Deng et al. (2026), as a loss.

For generated ``x`` ``(B, D)``, positives ``y`` ``(P, D)`` (a reference bank resampled per call)
and negatives = the other generated samples, with ``s`` the mean pairwise distance over all
(x, y) and (x_i, x_j), i ≠ j, pairs (no gradient) and for each radius ``τ = r · s``:

    logits  Λ = [ -||x_i - y_j|| / τ  |  -||x_i - x_j|| / τ ]   (B, P + B), self pairs = -∞
    A       = sqrt( softmax_row(Λ) ∘ softmax_col(Λ) )            = [A⁺ | A⁻]
    W⁺_ij   = A⁺_ij Σ_k A⁻_ik ,   W⁻_ij = A⁻_ij Σ_k A⁺_ik
    V_τ,i   = Σ_j W⁺_ij y_j - Σ_j W⁻_ij x_j                      (attraction - repulsion)

Since ``Σ_j W⁺_ij = Σ_j W⁻_ij`` this is ``Σ_j W⁺_ij (y_j - x_i) - Σ_j W⁻_ij (x_j - x_i)``. With
``normalize=True`` (the published default) each ``V_τ`` is rescaled (no gradient) to root-mean-
square norm ``s`` over the batch, so every radius contributes equally. ``V = Σ_τ V_τ``, and

    L(x) = (1/B) Σ_i ½ || x_i - stopgrad(x_i + V_i) ||²,   so  dL/dx_i = -V_i / B

(the value is ½ mean ||V||²; only its gradient is meaningful). The default radii are the
paper's {0.02, 0.05, 0.2} relative to ``s``.

**The affinity floor** (``affinity_floor = f``; the default 0 is Algorithm 2 as above). With
``f > 0`` the field follows the released code of the iRDM paper's drifting port instead:

    A = sqrt( max( softmax_row(Λ) ∘ softmax_col(Λ), f ) ),   self pairs floored, not excluded

(its self-mask adds a large constant to the self distance, so the self pair's product is 0 and
the clamp lifts it to ``f`` like every other pair: ``A⁻_ii = sqrt f``); every affinity is then at
least ``sqrt f`` (1e-3 for the port's 1e-6). At B = 128 against a bank of 128 the column softmax
spreads over 128 generated rows and most generated-to-real products fall under the floor
(86–100% for a batch as tight as a generator at initialisation), so ``A⁺`` is near-uniform and
the attraction ``Σ_j W⁺_ij y_j`` becomes a pull toward the bank's mean (on the spiral its
centroid, off the curve): the generator collapses (docs/spiral.md). ``s`` is computed as above
in both variants (self pairs excluded).

**Precision.** ``V`` is invariant under translating ``x`` and ``y`` together (the distances are,
and ``Σ_j W⁺_ij = Σ_j W⁻_ij``), so both are first centred on the batch's (detached) mean, and
the ``x``-``x`` distances are expanded about it: a batch 1000σ from the bank keeps its
within-batch distances exact. ``V_τ`` is homogeneous of degree one in ``A⁺`` and in ``A⁻``
separately, so each block is computed as ``exp(½ log(row · col) - max)`` and rescaled by
``exp(max⁺ + max⁻)`` only at the end (``normalize`` needs no rescaling): far from the bank the
attraction affinities are ~``exp(-60)`` and their products would underflow float32 (the
normalised field then blew up by 10¹²). The root-mean-square norm is taken on ``V / max|V|``.
Float64 inputs are computed in float64, all others in float32 (field and loss then float32;
the loss's gradient is in the input's dtype). The loss is written as ``½ mean ||(x - sg(x)) -
V||²``, the same value and gradient ``-V / B`` as ``x - sg(x + V)`` without rounding
``x + V``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ...validate import check_features, check_positive
from ..kernels import compute_dtype, sq_distances
from ._base import Distance, reference_features

__all__ = ["Drifting", "drifting_field", "drifting_loss"]


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite slope at 0; the floor only touches (near-)coincident pairs, and is
    # the dtype's smallest normal number so that it stays below any feature scale's distances.
    return sq_distances(x, y).clamp_min(torch.finfo(x.dtype).tiny).sqrt()


def drifting_field(
    gen_features: torch.Tensor,
    positives: torch.Tensor,
    radii: Sequence[float] = (0.02, 0.05, 0.2),
    *,
    normalize: bool = True,
    scale: float | None = None,
    affinity_floor: float = 0.0,
) -> torch.Tensor:
    """The field ``V`` ``(B, D)`` of the module docstring (differentiable in both inputs).

    ``scale`` overrides the data-derived mean pairwise distance ``s`` (e.g. to hold it fixed).
    ``affinity_floor`` ``f`` in [0, 1): 0 is Algorithm 2; ``f > 0`` is the released port's
    ``sqrt(max(row · col, f))`` with floored self pairs (module docstring). Float64 for
    float64 input, float32 otherwise.
    """
    x = check_features("gen_features", gen_features)
    y = check_features("positives", positives, dim=x.shape[1])
    dtype = compute_dtype(x.dtype)
    x, y = x.to(dtype), y.to(device=x.device, dtype=dtype)
    if x.shape[0] < 2:
        raise ValueError(f"gen_features needs at least 2 rows (negatives are the other rows), got {x.shape[0]}")
    for r in radii:
        check_positive("radii", r)
    return _field(x, y, radii, normalize, scale, check_affinity_floor(affinity_floor))


def check_affinity_floor(value: float) -> float:
    """``value`` as a float in [0, 1), else ValueError/TypeError naming ``affinity_floor``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"affinity_floor must be a float in [0, 1), got {type(value).__name__}")
    if not (0.0 <= float(value) < 1.0):
        raise ValueError(f"affinity_floor must be a float in [0, 1), got {value!r}")
    return float(value)


def _field(
    x: torch.Tensor,
    y: torch.Tensor,
    radii: Sequence[float],
    normalize: bool,
    scale: float | None,
    affinity_floor: float = 0.0,
) -> torch.Tensor:
    """:func:`drifting_field` on validated inputs (both in the compute dtype, on one device)."""
    B, P = x.shape[0], y.shape[0]
    # V is translation invariant: centre both on the batch (see the module's Precision note).
    center = x.detach().mean(0)
    x, y = x - center, y - center
    # One distance block against [positives; negatives]: the logits of every radius share it.
    # The x-x block is expanded about the batch mean, not the mean of x and y together.
    d = torch.cat([_distances(x, y), _distances(x, x)], 1)  # (B, P + B)
    self_mask = torch.zeros(d.shape, dtype=torch.bool, device=x.device)
    self_mask[:, P:].fill_diagonal_(True)
    if scale is None:
        with torch.no_grad():
            # Self pairs excluded (their expansion residual is ~sqrt(eps)·|x|, not 0).
            scale = float((d.sum() - d[:, P:].diagonal().sum()) / (B * P + B * (B - 1)))
    field = torch.zeros_like(x)
    for r in radii:
        logits = (d * (-1.0 / (r * scale))).masked_fill(self_mask, float("-inf"))
        # sqrt(row · col) in log space: a plain sqrt has an infinite slope at the masked zeros.
        log_prod = torch.log_softmax(logits, 1) + torch.log_softmax(logits, 0)
        if affinity_floor > 0.0:
            # The released port's clamp(row · col, f): the self pairs' -inf is lifted to log f too.
            log_prod = log_prod.clamp_min(math.log(affinity_floor))
        half_pos, half_neg = 0.5 * log_prod[:, :P], 0.5 * log_prod[:, P:]
        # Each block scaled to max 1 (V is linear in each; the factors return below).
        top_pos, top_neg = half_pos.detach().max(), half_neg.detach().max()
        a_pos, a_neg = torch.exp(half_pos - top_pos), torch.exp(half_neg - top_neg)
        # W⁺ = A⁺ ∘ (A⁻ 1) row-wise, so W⁺ y = (A⁺ y) ∘ (A⁻ 1); likewise for W⁻ x.
        v = (a_pos @ y) * a_neg.sum(1, keepdim=True) - (a_neg @ x) * a_pos.sum(1, keepdim=True)
        if normalize:
            with torch.no_grad():
                # On V / max|V|: a tiny field's squares would underflow (no host sync for V = 0).
                tiny = torch.finfo(v.dtype).tiny
                peak = v.abs().max().clamp_min(tiny)
                rms = (peak * (v / peak).pow(2).sum(1).mean().sqrt()).clamp_min(tiny)
            v = v * (scale / rms)
        else:
            v = v * torch.exp(top_pos + top_neg)
        field = field + v
    return field


def drifting_loss(
    gen_features: torch.Tensor,
    positives: torch.Tensor,
    radii: Sequence[float] = (0.02, 0.05, 0.2),
    *,
    normalize: bool = True,
    affinity_floor: float = 0.0,
) -> torch.Tensor:
    """``(1/B) Σ_i ½ ||x_i - stopgrad(x_i + V_i)||²``: a scalar whose gradient is ``-V / B``.

    Float64 for float64 input, float32 otherwise (the gradient has the input's dtype).
    """
    with torch.no_grad():
        v = drifting_field(
            gen_features.detach(), positives, radii, normalize=normalize, affinity_floor=affinity_floor
        )
    return _loss(gen_features, v)


def _loss(gen_features: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # x - sg(x + V) as (x - sg(x)) - V: exactly -V in value, without rounding x + V.
    x = gen_features.to(v.dtype)
    return 0.5 * ((x - x.detach()) - v).pow(2).sum(1).mean()


class Drifting(Distance):
    """``drifting``: the coupled field vs a bank of ``bank_size`` reference rows resampled per call.

    ``affinity_floor`` > 0 selects the released port's floored affinities (module docstring).
    """

    name = "drifting"

    def __init__(
        self,
        *,
        radii: Sequence[float] = (0.02, 0.05, 0.2),
        bank_size: int = 128,
        normalize: bool = True,
        affinity_floor: float = 0.0,
        seed: int = 0,
    ) -> None:
        check_positive("bank_size", bank_size, integer=True)
        self.affinity_floor = check_affinity_floor(affinity_floor)
        for r in radii:
            check_positive("radii", r)
        self.radii = tuple(radii)
        self.bank_size = bank_size
        self.normalize = normalize
        self.seed = seed

    def fit(self, reference: Any) -> Drifting:
        self.reference = reference_features(reference)
        if self.bank_size > self.reference.shape[0]:
            raise ValueError(
                f"bank_size={self.bank_size} exceeds the number of reference rows ({self.reference.shape[0]})"
            )
        self.generator = torch.Generator().manual_seed(self.seed)
        self.dim = self.reference.shape[1]
        return self

    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        idx = torch.randperm(self.reference.shape[0], generator=generator or self.generator)[: self.bank_size]
        bank = self.reference[idx.to(self.reference.device)].to(gen.device)
        if gen.shape[0] < 2:
            raise ValueError(f"gen_features needs at least 2 rows (negatives are the other rows), got {gen.shape[0]}")
        # gen was validated by __call__ and the bank at fit: skip drifting_loss's re-checks.
        dtype = compute_dtype(gen.dtype)
        with torch.no_grad():
            v = _field(gen.detach().to(dtype), bank.to(dtype), self.radii, self.normalize, None, self.affinity_floor)
        return _loss(gen, v)
