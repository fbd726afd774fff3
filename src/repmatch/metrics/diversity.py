"""Within-class diversity: what a marginal distance cannot see.

SW_r,k compares marginal feature laws, and class agreement checks that samples carry their
class; neither notices a conditional generator that draws (nearly) one image per class. The
within-class spread does. For class ``c`` with feature rows ``f_1..f_n`` (``n ≥ 2``),

    d_c = 1/(n(n-1)) Σ_{i≠j} |f_i - f_j|₂        (the mean pairwise Euclidean distance)

and the generator's diversity relative to real images of the same classes is

    ρ_c = d_c(generated) / d_c(real),    diversity = (1/|C|) Σ_c ρ_c,

so 1 matches the real spread, 0 is one image per class, and > 1 is more spread than real
(noise, or mixed classes). Computed in float64 on a seeded subsample of at most
``max_per_class`` rows per class.
"""

from __future__ import annotations

from typing import Any

import torch

from ..validate import check_features, check_positive
from ._common import as_float64, seeded_subsample


def _labels(name: str, labels: torch.Tensor, num_rows: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != num_rows:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name} must be a 1-D tensor of {num_rows} class labels, got {shape}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got {labels.dtype}")
    return labels.to("cpu", torch.long)


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """``1/(n(n-1)) Σ_{i≠j} |f_i - f_j|₂`` of ``features`` ``(n, D)``, ``n ≥ 2``, in float64."""
    x = as_float64("features", features)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"features must have at least 2 rows for a pairwise distance, got {n}")
    # cdist's matmul path loses precision for nearby points; the direct path is exact enough.
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
    return float(d.sum() / (n * (n - 1)))


def class_spreads(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    max_per_class: int = 1000,
    seed: int = 0,
    name: str = "features",
) -> dict[int, float]:
    """``{c: d_c}`` for every class with at least 2 rows (at most ``max_per_class`` of them,
    a seeded subsample); ``name`` names the features in errors."""
    x = as_float64(name, features)
    y = _labels(f"{name} labels", labels, x.shape[0])
    check_positive("max_per_class", max_per_class, integer=True)
    out = {}
    for c in sorted(int(v) for v in torch.unique(y)):
        rows = x[(y == c).to(x.device)]
        if rows.shape[0] >= 2:
            out[c] = mean_pairwise_distance(seeded_subsample(rows, max_per_class, seed + c))
    return out


def within_class_diversity(
    gen: torch.Tensor,
    gen_labels: torch.Tensor,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    *,
    max_per_class: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The generator's within-class spread relative to real images (module docstring).

    Returns ``{"diversity": mean ρ_c, "per_class": {c: ρ_c}, "generated": {c: d_c},
    "real": {c: d_c}}`` over the classes with at least 2 generated and 2 real rows; raises
    when there is none, or when a real class has zero spread (ρ undefined).
    """
    check_features("gen", gen)
    check_features("real", real)
    if gen.shape[1] != real.shape[1]:  # before any pairwise work
        raise ValueError(f"gen and real must have the same feature dim, got {gen.shape[1]} and {real.shape[1]}")
    g = class_spreads(gen, gen_labels, max_per_class=max_per_class, seed=seed, name="gen")
    r = class_spreads(real, real_labels, max_per_class=max_per_class, seed=seed, name="real")
    common = sorted(set(g) & set(r))
    if not common:
        raise ValueError("gen and real share no class with at least 2 rows each")
    flat = [c for c in common if r[c] == 0.0]
    if flat:
        raise ValueError(f"real features of class(es) {flat} are all identical: relative diversity is undefined")
    per_class = {c: g[c] / r[c] for c in common}
    return {
        "diversity": sum(per_class.values()) / len(per_class),
        "per_class": per_class,
        "generated": {c: g[c] for c in common},
        "real": {c: r[c] for c in common},
    }
