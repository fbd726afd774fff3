"""``mmd_rff``: MMD² in random-Fourier-feature space against a frozen reference mean.

Per scale ``s`` with bandwidth ``σ_s``: ``φ_s(x) = sqrt(2/F) cos(x W_s + b_s)``, ``W_s ~ N(0, 1/σ_s²)``
``(D, F)``, ``b_s ~ U[0, 2π)`` (Rahimi & Recht 2007), so ``φ_s(x)·φ_s(y) ≈ k_s(x, y)``. Fitting
freezes ``μ_s = (1/n) Σ_t φ_s(r_t)`` (float64 accumulation, chunked); the loss is

    L(g) = Σ_s || (1/B) Σ_i φ_s(g_i) - μ_s ||²

(the biased MMD² under the RFF kernel, data term included). All scales are one matmul.

Precision. The phase ``x W + b`` of a batch far from the origin (``|x| ≫ σ``) would lose
``eps · |x| / σ`` of it to rounding in float32, so the batch is centred on its own (detached)
mean ``c`` and the offset folded into the phase in float64,

    x W + b = (x - c) W + ((b + c W) mod 2π),

which is exact for every ``c`` (so ``c`` needs no gradient). ``μ_s`` is accumulated from a
float64 copy of each reference chunk. Float64 inputs are computed in float64, all others in
float32 (the loss is then float32, the gradient in the input's dtype). The gradient is
closed-form and first order only: a double backward raises ``RuntimeError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ...validate import check_positive
from ..kernels import compute_dtype
from ._autograd import first_order_only
from ._base import Distance, reference_features, resolve_bandwidths

__all__ = ["MMDRFF", "rff_features"]


def rff_features(x: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor, num_features: int) -> torch.Tensor:
    """``sqrt(2/F) cos(x W + b)`` for ``x`` ``(N, D)``, ``W`` ``(D, S·F)``, ``b`` ``(S·F,)``."""
    return torch.cos(torch.addmm(offsets, x, weights)) * math.sqrt(2.0 / num_features)


class MMDRFF(Distance):
    """``mmd_rff``: ``num_features`` random Fourier features per scale, frozen reference mean."""

    name = "mmd_rff"

    def __init__(
        self,
        *,
        num_features: int = 512,
        bandwidth: str | float = "median",
        scales: Sequence[float] = (1.0,),
        seed: int = 0,
        chunk_size: int = 16384,
    ) -> None:
        check_positive("num_features", num_features, integer=True)
        check_positive("chunk_size", chunk_size, integer=True)
        self.num_features = num_features
        self.bandwidth = bandwidth
        self.scales = tuple(scales)
        self.seed = seed
        self.chunk_size = chunk_size

    def fit(self, reference: Any, *, generator: torch.Generator | None = None) -> MMDRFF:
        ref = reference_features(reference)
        self.bandwidths = resolve_bandwidths(ref, self.bandwidth, self.scales, self.seed)
        gen = generator or torch.Generator().manual_seed(self.seed)
        D, F = ref.shape[1], self.num_features
        # Drawn in float64 on CPU so the same seed gives the same features on every device.
        w = torch.cat([torch.randn(D, F, generator=gen, dtype=torch.float64) / s for s in self.bandwidths], 1)
        b = torch.rand(len(self.bandwidths) * F, generator=gen, dtype=torch.float64) * (2 * math.pi)
        self.weights, self.offsets = w.to(ref.device), b.to(ref.device)
        total = torch.zeros(w.shape[1], dtype=torch.float64, device=ref.device)
        for i in range(0, ref.shape[0], self.chunk_size):
            # float64 phases: the reference mean is frozen for the whole run.
            phi = rff_features(ref[i : i + self.chunk_size].to(torch.float64), self.weights, self.offsets, F)
            total += phi.sum(0)
        self.reference_mean = total / ref.shape[0]
        self.dim = D
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}
        return self

    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        dtype = compute_dtype(gen.dtype)
        key = (dtype, gen.device)
        if key not in self._cache:
            w64, b64 = self.weights.to(gen.device), self.offsets.to(gen.device)
            self._cache[key] = (w64.to(dtype), self.reference_mean.to(device=gen.device, dtype=dtype), w64, b64)
        w, mu, w64, b64 = self._cache[key]
        x = gen.detach().to(dtype)
        center = x.mean(0)
        # b + c W in float64, reduced mod 2π: the centred phase then only carries |x - c| / σ.
        phase = torch.remainder(torch.addmv(b64, w64.T, center.to(torch.float64)), 2 * math.pi).to(dtype)
        return _RFFLoss.apply(gen, w, phase, mu, self.num_features, center)


class _RFFLoss(torch.autograd.Function):
    """``||mean_i φ(g_i) - μ||²`` with its closed-form gradient (first order only).

    With ``z = (g - c) W + b'`` ``(B, S·F)`` (``b' = b + c W``, see the module) and
    ``d = mean_i φ(g_i) - μ``, ``dL/dg = -(2/B) sqrt(2/F) (sin(z) ∘ d) W^T``: one ``sin`` and
    one matmul, instead of autograd's chain of elementwise backward kernels over ``(B, S·F)``.
    """

    @staticmethod
    def forward(ctx, g, w, b, mu, num_features, center):  # type: ignore[override]
        z = torch.addmm(b, g.detach().to(center.dtype) - center, w)
        c = math.sqrt(2.0 / num_features)
        diff = torch.cos(z).mean(0).mul_(c).sub_(mu)
        if g.requires_grad:
            ctx.save_for_backward(z, diff, w)
            ctx.coef = -2.0 * c / g.shape[0]
            ctx.anchor, ctx.input_dtype = g, g.dtype  # anchor: see first_order_only
        return diff.dot(diff)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        z, diff, w = ctx.saved_tensors
        scaled = torch.sin(z).mul_(diff * (grad_out * ctx.coef))
        grad = first_order_only((scaled @ w.T).to(ctx.input_dtype), ctx.anchor, "mmd_rff")
        return grad, None, None, None, None, None
