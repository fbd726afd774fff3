"""Gaussian kernel, squared distances and bandwidth heuristics (paper §3.1).

The kernel is ``k(x, y) = exp(-||x - y||² / (2 σ²))`` (the Gaussian of eq. 2/3). The bandwidth
``σ`` is fixed per encoder by the median heuristic: the median pairwise Euclidean distance of
the reference features, estimated on a seeded subsample. Multi-scale kernels (used by the
spiral study's MMD family) are sums of Gaussians at ``σ · factor`` for a few factors.

Squared distances use the expansion ``||x||² + ||y||² - 2 x·y`` (one matmul) after centring
both sets by a common point ``c``: distances are translation invariant, and the expansion's
rounding error is about ``eps · (||x - c||² + ||y - c||²)``, so ``c`` must be near the pairs
that matter. A batch against itself is centred on its own mean (a batch 1000σ from a
reference centre would otherwise get kernel exponents off by ``eps · 10⁶``, i.e. by units, in
float32). Results are clamped at 0 because rounding can make the expansion slightly negative.

Dtypes (:func:`compute_dtype`): float64 inputs are computed in float64, all others in float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

from ..validate import check_choice, check_features, check_positive, check_scales

__all__ = [
    "PRECISIONS",
    "augmented_operands",
    "compute_dtype",
    "exp_floored_",
    "gaussian_kernel",
    "matmul_precision",
    "median_bandwidth",
    "multiscale_bandwidths",
    "sq_distances",
]

#: Accepted values of the ``precision`` option of the kernel-matrix code paths.
#: ``"highest"``: full float32 (or float64) matmuls. ``"tf32"``: on CUDA, float32 matmuls may
#: use TF32 tensor cores (10-bit mantissa inputs, float32 accumulation); ignored on CPU.
PRECISIONS: tuple[str, ...] = ("highest", "tf32")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the distances compute in for inputs of ``dtype``: float64 stays float64, every
    other floating dtype (float32, float16, bfloat16) computes in float32.

    Half precision cannot hold the kernel expansion: ``|x|²`` overflows float16 past 65504 and
    bfloat16's 8-bit mantissa turns an exponent of a few hundred into one off by a unit.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Temporarily set the float32 matmul precision (``"highest"`` or ``"tf32"``)."""
    check_choice("precision", precision, PRECISIONS)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def sq_distances(x: torch.Tensor, y: torch.Tensor, center: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances ``||x_i - y_j||²`` of shape ``(N, M)``, clamped at 0.

    ``x`` is ``(N, D)``, ``y`` is ``(M, D)``. ``center`` (``(D,)``) is subtracted from both
    before the expansion; by default it is the mean of ``x`` and ``y`` together.
    """
    check_features("x", x, finite=False)
    check_features("y", y, dim=x.shape[1], finite=False)
    if center is None:
        center = (x.sum(0) + y.sum(0)) / (x.shape[0] + y.shape[0])
    xc = x - center
    yc = y - center
    xx = (xc * xc).sum(1)
    yy = (yc * yc).sum(1)
    d = torch.addmm(xx[:, None] + yy[None, :], xc, yc.T, alpha=-2.0)
    return d.clamp_min(0.0)


def augmented_operands(xc: torch.Tensor, left: bool) -> torch.Tensor:
    """Centred ``xc`` ``(N, D)`` widened so that ``left(x) @ right(y).T = -||x - y||² / 2``.

    ``left = [x, -|x|²/2, 1]``, ``right = [y, 1, -|y|²/2]``, zero-padded to a multiple of 8
    columns (aligned rows for tensor-core matmuls). A kernel block is then one matmul (with
    ``1/σ²`` folded into the smaller operand) and one in-place ``exp``.
    """
    n, d = xc.shape
    half_sq = -0.5 * (xc * xc).sum(1)
    out = xc.new_zeros(n, (d + 2 + 7) // 8 * 8)
    out[:, :d] = xc
    out[:, d] = half_sq if left else 1.0
    out[:, d + 1] = 1.0 if left else half_sq
    return out


def exp_floored_(exponent: torch.Tensor) -> torch.Tensor:
    """In-place ``exp`` of a kernel exponent, floored just above the dtype's smallest normal number.

    Exponents below ``ceil(log(tiny))`` (-87 in float32, -708 in float64) are raised to it first,
    so such entries become ``exp(-87)`` ≈ 1.7e-38 (float32; 3.3e-308 in float64) instead of a
    subnormal or 0: a change below the resolution of any kernel sum, which avoids the vectorised
    ``exp``'s slow underflow path on CPU (narrow bandwidths put most entries there; the cost is
    measured in ``docs/core.md``). On other devices, where the extra pass costs memory traffic
    and buys nothing, it is a plain ``exp_``.
    """
    if exponent.device.type == "cpu":
        exponent.clamp_min_(math.ceil(math.log(torch.finfo(exponent.dtype).tiny)))
    return exponent.exp_()


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Gaussian kernel matrix ``exp(-||x_i - y_j||² / (2 σ²))`` of shape ``(N, M)``.

    ``x`` is ``(N, D)``, ``y`` is ``(M, D)`` (finite), ``bandwidth`` is ``σ > 0``. Differentiable
    in both. Computed and returned in :func:`compute_dtype` of the wider input (float32 for half).
    """
    check_positive("bandwidth", bandwidth)
    check_features("x", x)
    check_features("y", y, dim=x.shape[1])
    dtype = compute_dtype(torch.promote_types(x.dtype, y.dtype))
    return torch.exp(sq_distances(x.to(dtype), y.to(dtype)) / (-2.0 * bandwidth * bandwidth))


def median_bandwidth(features: torch.Tensor, max_samples: int = 4096, seed: int = 0) -> float:
    """Median-heuristic bandwidth: the median pairwise distance of ``features`` ``(N, D)``.

    Uses at most ``max_samples`` rows drawn without replacement with a generator seeded by
    ``seed`` (so the value is reproducible) and all distinct pairs ``i < j``; distances are
    computed centred in :func:`compute_dtype` of the input (float32 for half), the median in
    float64.
    """
    check_features("features", features)
    check_positive("max_samples", max_samples, integer=True)
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"features needs at least 2 rows for a median distance, got {n}")
    x = features.detach().to(compute_dtype(features.dtype))
    if n > max_samples:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        idx = torch.randperm(n, generator=gen)[:max_samples].to(x.device)
        x = x.index_select(0, idx)
    # Centred float32 distances are ample for a heuristic; the median is float64.
    d2 = sq_distances(x, x)
    mask = torch.ones(d2.shape, dtype=torch.bool, device=d2.device).triu_(1)
    pairs = d2[mask].to(torch.float64)
    k = pairs.numel()
    # numpy's convention: the mean of the two middle values when the count is even.
    lo = pairs.kthvalue((k + 1) // 2).values
    hi = lo
    if k % 2 == 0 and int((pairs <= lo).sum()) < k // 2 + 1:
        hi = pairs[pairs > lo].min()
    sigma = float((lo.sqrt() + hi.sqrt()) / 2)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(
            f"features has median pairwise distance {sigma}; the median heuristic needs "
            "mostly distinct rows (pass an explicit bandwidth instead)"
        )
    return sigma


def multiscale_bandwidths(base: float, factors: Sequence[float] = (0.5, 1.0, 2.0)) -> tuple[float, ...]:
    """Bandwidths ``base * f`` for each ``f`` in ``factors`` (a multi-scale Gaussian kernel)."""
    check_positive("base", base)
    if len(factors) == 0:
        raise ValueError("factors must be a non-empty sequence of positive numbers, got ()")
    for f in factors:
        check_positive("factors[i]", f)
    return tuple(float(base) * float(f) for f in factors)


def joint_bandwidths(features: torch.Tensor, scales: float | Sequence[float], seed: int = 0) -> tuple[float, ...]:
    """``s × median heuristic`` for each scale ``s`` (one number or several): the bandwidths of
    a (multi-scale) joint kernel, ``k = Σ_s exp(-||x - y||² / 2σ_s²)``, median computed once."""
    scales = check_scales("scales", scales)
    return multiscale_bandwidths(median_bandwidth(features, seed=seed), scales if isinstance(scales, tuple) else (scales,))
