"""The common interface of the training distances.

A distance is fitted once on the reference side (features ``(N, D)`` or a prebuilt reference
object) and then scores generated batches ``(B, D)``, returning a scalar tensor that is
differentiable in the generated features::

    dist = repmatch.compare.distances.create("mmd_nystrom", num_landmarks=512).fit(ref_features)
    loss = dist(gen_features)            # or dist(gen_features, generator=g) to reseed resampling

Dtypes: float64 features are computed in float64; float32, float16 and bfloat16 features in
float32, and the loss is then float32 (a half-precision loss would round, or overflow past
65504, and the kernel expansion does not fit in 11 or 8 mantissa bits); the gradient has the
input's dtype. Integer features are refused (``TypeError``), like NaN/Inf (``ValueError``).
Every distance is translation invariant and evaluated about centres near the data (the
batch's own mean for within-batch terms), so float32 stays within ~1e-6 of float64 however far
the batch is from the reference or the origin (``tests/test_precision.py``).

The kernel-MMD, RFF, sliced-Wasserstein and Fréchet losses return closed-form gradients and
are differentiable once: a double backward (``create_graph=True`` then differentiating the
gradient, e.g. a gradient penalty) raises ``RuntimeError`` rather than drop the Hessian.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from ...validate import check_features
from ..kernels import median_bandwidth, multiscale_bandwidths


class Distance(abc.ABC):
    """Base class: ``fit(reference) -> self`` once, then ``__call__(gen_features) -> scalar``."""

    #: Registry name (``repmatch.compare.distances.create(name)``).
    name: str = ""

    dim: int | None = None

    @abc.abstractmethod
    def fit(self, reference: Any) -> Distance:
        """Freeze the reference side; returns ``self``."""

    @abc.abstractmethod
    def _score(self, gen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The loss of a validated batch ``(B, D)``."""

    def __call__(self, gen_features: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Score ``gen_features`` ``(B, D)``; ``generator`` seeds any per-call resampling."""
        if self.dim is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call .fit(reference) first")
        check_features("gen_features", gen_features, dim=self.dim)
        return self._score(gen_features, generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def reference_features(reference: Any) -> torch.Tensor:
    """Validate and detach reference features ``(N, D)``."""
    return check_features("reference", reference).detach()


def resolve_bandwidths(
    features: torch.Tensor, bandwidth: str | float, scales: tuple[float, ...] | list[float], seed: int
) -> tuple[float, ...]:
    """``bandwidth`` (``"median"`` or σ) times each factor in ``scales``."""

    if bandwidth == "median":
        base = median_bandwidth(features, seed=seed)
    elif isinstance(bandwidth, str):
        raise ValueError(f"bandwidth must be 'median' or a positive number, got {bandwidth!r}")
    else:
        base = bandwidth
    return multiscale_bandwidths(base, scales)
