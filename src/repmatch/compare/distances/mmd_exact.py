"""``mmd_exact``: the standard two-sample biased MMD² against a fresh reference sample.

    MMD²_b(g, y) = (1/B²) Σ_ij k(g_i, g_j) - (2/(B n)) Σ_il k(g_i, y_l) + (1/n²) Σ_lk k(y_l, y_k)

(eq. 2 with plug-in means), ``y`` a sample of ``n`` reference rows drawn without replacement at
every call (``n = sample_size``, default ``B``), summed over kernel scales. This is the
resampled-reference estimator that Nyström replaces (paper §3.1): same form as eq. 3 with
``alpha = 1/n`` on the sample. The sample's terms are expanded about its mean, the repulsion
about the batch's (see :mod:`._mmd_core`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...validate import check_choice, check_features, check_positive
from ..kernels import PRECISIONS, compute_dtype, exp_floored_, sq_distances
from ._base import Distance, reference_features, resolve_bandwidths
from ._mmd_core import AttractionTerm, fused_mmd, prepare_points

__all__ = ["MMDExact", "mmd_exact_loss"]


def mmd_exact_loss(
    gen_features: torch.Tensor,
    ref_features: torch.Tensor,
    bandwidths: float | Sequence[float],
    *,
    chunk_size: int | None = None,
    precision: str = "highest",
) -> torch.Tensor:
    """Biased MMD² of ``gen_features`` ``(B, D)`` vs ``ref_features`` ``(n, D)`` (see module).

    Float64 inputs are computed in float64, others in float32 (the loss is then float32, the
    gradient in the input's dtype); the gradient is closed-form and first order only (a
    double backward raises ``RuntimeError``).
    """
    check_features("gen_features", gen_features)
    y = check_features("ref_features", ref_features, dim=gen_features.shape[1]).detach()
    sigmas = (bandwidths,) if isinstance(bandwidths, (int, float)) else tuple(bandwidths)
    for s in sigmas:
        check_positive("bandwidths", s)
    check_choice("precision", precision, PRECISIONS)
    return _loss(gen_features, y, sigmas, chunk_size, precision)


def _loss(g: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float], chunk_size: int | None, precision: str) -> torch.Tensor:
    y = y.to(device=g.device, dtype=compute_dtype(g.dtype))
    center = y.mean(0)
    w = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=y.dtype, device=y.device)
    points = prepare_points(y, center)
    # The data term (1/n²) Σ k(y, y'), in row blocks so no n × n matrix exists for a large
    # sample; one distance block is shared by all scales.
    n = y.shape[0]
    block = n if chunk_size is None else int(chunk_size)
    totals = [torch.zeros((), dtype=torch.float64, device=y.device) for _ in sigmas]
    for i in range(0, n, block):
        d2 = sq_distances(y[i : i + block], y, center=center)
        for total, s in zip(totals, sigmas, strict=True):
            total += exp_floored_(d2 / (-2.0 * s * s)).sum(dtype=torch.float64)
    terms = [
        AttractionTerm(sigma=s, points=points, weights=w, constant=float(total) / (n * n))
        for s, total in zip(sigmas, totals, strict=True)
    ]
    return fused_mmd(g, sigmas, terms, center, chunk_size=chunk_size, precision=precision)


class MMDExact(Distance):
    """``mmd_exact``: biased MMD² vs ``sample_size`` reference rows resampled per call."""

    name = "mmd_exact"

    def __init__(
        self,
        *,
        sample_size: int | None = None,
        bandwidth: str | float = "median",
        scales: Sequence[float] = (1.0,),
        seed: int = 0,
        chunk_size: int | None = None,
        precision: str = "highest",
    ) -> None:
        if sample_size is not None:
            check_positive("sample_size", sample_size, integer=True)
        check_choice("precision", precision, PRECISIONS)
        self.sample_size = sample_size
        self.bandwidth = bandwidth
        self.scales = tuple(scales)
        self.seed = seed
        self.chunk_size = chunk_size
        self.precision = precision

    def fit(self, reference: Any) -> MMDExact:
        self.reference = reference_features(reference)
        self.bandwidths = resolve_bandwidths(self.reference, self.bandwidth, self.scales, self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.dim = self.reference.shape[1]
        return self

    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = self.sample_size or gen.shape[0]
        N = self.reference.shape[0]
        if n > N:
            raise ValueError(f"sample_size={n} exceeds the number of reference rows ({N})")
        idx = torch.randperm(N, generator=generator or self.generator)[:n]
        y = self.reference[idx.to(self.reference.device)]
        return _loss(gen, y, self.bandwidths, self.chunk_size, self.precision)
