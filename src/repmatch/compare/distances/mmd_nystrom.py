"""iRDM loss: biased MMD² with exact repulsion and frozen Nyström attraction (paper eq. 3).

    L(g) = (1/B²) Σ_ij k(g_i, g_j)  -  (2/B) Σ_i k(g_i, L) · alpha  +  data_term

``k(g, L) · alpha = psi(g)^T mu_bar`` (see :mod:`repmatch.compare.nystrom`); the constant data term
makes ``L`` an estimate of MMD² itself (≥ 0 up to estimation error) without changing the
gradient. The repulsion is the *biased* within-batch mean (diagonal included, divided by B²).

Multi-scale: ``reference`` may be a sequence of references (one per bandwidth, typically from
:meth:`NystromReference.build_multiscale`, sharing landmarks); the loss is the **sum** of the
per-scale losses, i.e. eq. 3 under the unweighted sum kernel ``Σ_s k_s`` (each scale's MMD² is
on the same [0, 2] scale, so no per-scale weights are needed).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch

from ...validate import check_choice, check_positive
from ..kernels import PRECISIONS, compute_dtype
from ..nystrom import DEFAULT_NUM_LANDMARKS, NystromReference
from ._base import Distance, reference_features
from ._mmd_core import AttractionTerm, PointSet, fused_mmd, prepare_points

__all__ = ["MMDNystrom", "mmd_nystrom_loss"]


def _as_references(reference: Any) -> tuple[NystromReference, ...]:
    refs = (reference,) if isinstance(reference, NystromReference) else tuple(reference)
    if not refs or not all(isinstance(r, NystromReference) for r in refs):
        raise TypeError(
            "reference must be a NystromReference or a non-empty sequence of them, "
            f"got {type(reference).__name__}"
        )
    return refs


# Prepared (centred, augmented, cast) landmarks and weights per reference, dtype and device:
# references are frozen, so per-step calls skip re-deriving them. Weak keys: dropping a
# reference frees it.
_PREPARED: weakref.WeakKeyDictionary[NystromReference, dict[Any, tuple[torch.Tensor, PointSet, torch.Tensor]]]
_PREPARED = weakref.WeakKeyDictionary()


def _terms(refs: tuple[NystromReference, ...], like: torch.Tensor) -> tuple[torch.Tensor, list[AttractionTerm]]:
    """The attraction's centre (first reference's landmark mean) and one prepared term per
    scale, in ``compute_dtype(like.dtype)`` on ``like``'s device.

    Scales built on the same landmark tensor (``build_multiscale``) share one :class:`PointSet`,
    hence one kernel matmul per call.
    """
    dtype = compute_dtype(like.dtype)
    key = (dtype, like.device)
    center: torch.Tensor | None = None
    shared: dict[int, PointSet] = {}
    terms = []
    for r in refs:
        cache = _PREPARED.setdefault(r, {})
        hit = cache.get(key)
        if hit is None or (center is not None and hit[0] is not center):
            if center is None:
                center = r.landmarks.to(device=like.device, dtype=dtype).mean(0)
            points = shared.get(id(r.landmarks))
            if points is None:
                points = prepare_points(r.landmarks, center)
            hit = cache[key] = (center, points, r.alpha.to(device=like.device, dtype=dtype))
        center = hit[0]
        shared.setdefault(id(r.landmarks), hit[1])
        terms.append(AttractionTerm(sigma=r.bandwidth, points=hit[1], weights=hit[2], constant=r.data_term))
    assert center is not None
    return center, terms


def mmd_nystrom_loss(
    gen_features: torch.Tensor,
    reference: NystromReference | Sequence[NystromReference],
    chunk_size: int | None = None,
    *,
    precision: str = "highest",
    fingerprint: str | None = None,
) -> torch.Tensor:
    """Scalar eq.-3 loss of ``gen_features`` ``(B, D)`` against ``reference`` (see module).

    ``chunk_size`` rows at a time bound peak memory to about ``2·chunk_size·max(B, m)`` kernel
    entries (``None``: one chunk). ``precision="tf32"`` allows TF32 matmuls on CUDA. The
    backward pass is the closed-form gradient computed during the forward pass; it is first
    order only (a double backward, e.g. a gradient penalty, raises ``RuntimeError``).
    Float64 inputs are computed in float64; float32, float16 and bfloat16 inputs in float32,
    and the loss is then float32 (the gradient has the input's dtype). The repulsion is
    expanded about the batch's own mean and the attraction about the landmark mean, so float32
    stays within ~1e-6 of float64 for a batch any distance from the reference.
    """
    refs = _as_references(reference)
    refs[0].check_compatible(gen_features, fingerprint, name="gen_features")
    for r in refs[1:]:
        if r.dim != refs[0].dim:
            raise ValueError(f"reference scales disagree on the feature dimension ({r.dim} vs {refs[0].dim})")
    if chunk_size is not None:
        check_positive("chunk_size", chunk_size, integer=True)
    check_choice("precision", precision, PRECISIONS)
    center, terms = _terms(refs, gen_features)
    return fused_mmd(
        gen_features, [r.bandwidth for r in refs], terms, center, chunk_size=chunk_size, precision=precision
    )


class MMDNystrom(Distance):
    """``mmd_nystrom``: eq. 3 against a frozen Nyström reference (multi-scale via ``scales``).

    ``fit`` takes reference features ``(N, D)`` (builds ``NystromReference``s with
    ``num_landmarks`` landmarks at ``bandwidth × scales``; by default the library's
    :data:`~repmatch.compare.nystrom.DEFAULT_NUM_LANDMARKS`, so ``N`` must be at least that) or
    prebuilt reference(s).
    """

    name = "mmd_nystrom"

    def __init__(
        self,
        *,
        num_landmarks: int = DEFAULT_NUM_LANDMARKS,
        bandwidth: str | float = "median",
        scales: Sequence[float] = (1.0,),
        seed: int = 0,
        chunk_size: int | None = None,
        precision: str = "highest",
        kmeans_iters: int = 10,
    ) -> None:
        check_positive("num_landmarks", num_landmarks, integer=True)
        check_choice("precision", precision, PRECISIONS)
        self.num_landmarks = num_landmarks
        self.bandwidth = bandwidth
        self.scales = tuple(scales)
        self.seed = seed
        self.chunk_size = chunk_size
        self.precision = precision
        self.kmeans_iters = kmeans_iters
        self.references: tuple[NystromReference, ...] = ()

    def fit(self, reference: Any) -> MMDNystrom:
        if isinstance(reference, torch.Tensor):
            feats = reference_features(reference)
            median = self.bandwidth == "median"
            self.references = NystromReference.build_multiscale(
                feats,
                num_landmarks=self.num_landmarks,
                bandwidths=None if median else [float(self.bandwidth) * s for s in self.scales],
                factors=self.scales,
                seed=self.seed,
                kmeans_iters=self.kmeans_iters,
                precision=self.precision,
            )
        else:
            self.references = _as_references(reference)
        self.dim = self.references[0].dim
        return self

    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        center, terms = _terms(self.references, gen)
        return fused_mmd(
            gen,
            [r.bandwidth for r in self.references],
            terms,
            center,
            chunk_size=self.chunk_size,
            precision=self.precision,
        )
