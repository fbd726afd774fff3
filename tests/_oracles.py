"""Independent float64 oracles for the comparison and metric tests.

Each is written from the equation in the module docstrings with explicit pairwise differences,
sorts and eigenvalues (never through the package's kernel expansion, fused MMD or sort
helpers), on float64 copies of the inputs, and is differentiable by autograd where a gradient
oracle is needed.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def gauss(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """``exp(-|x_i - y_j|² / 2σ²)`` ``(N, M)`` from explicit differences."""
    return torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2.0 * sigma * sigma))


def mmd_exact(g: torch.Tensor, y: torch.Tensor, sigmas) -> torch.Tensor:
    """Biased MMD² summed over bandwidths."""
    return sum(gauss(g, g, s).mean() - 2.0 * gauss(g, y, s).mean() + gauss(y, y, s).mean() for s in sigmas)


def mmd_nystrom(g: torch.Tensor, refs) -> torch.Tensor:
    """Eq. 3 summed over references: repulsion - 2 k(g, L)·alpha + data term."""
    total = torch.zeros((), dtype=torch.float64)
    for r in refs:
        lm, alpha = r.landmarks.double(), r.alpha.double()
        total = total + gauss(g, g, r.bandwidth).mean() - 2.0 * (gauss(g, lm, r.bandwidth) @ alpha).mean() + r.data_term
    return total


def nystrom_data_term(pool: torch.Tensor, landmarks: torch.Tensor, sigma: float, rcond: float = 1e-7) -> tuple[float, torch.Tensor]:
    """``kbar · K_mm^+ kbar`` and ``alpha = K_mm^+ kbar`` from a float64 pseudo-inverse."""
    kbar = gauss(pool.double(), landmarks.double(), sigma).mean(0)
    alpha = torch.linalg.pinv(gauss(landmarks.double(), landmarks.double(), sigma), rtol=rcond, hermitian=True) @ kbar
    return float(kbar @ alpha), alpha


def rff(g: torch.Tensor, ref: torch.Tensor, weights: torch.Tensor, offsets: torch.Tensor, num_features: int) -> torch.Tensor:
    """``||mean φ(g) - mean φ(ref)||²`` with ``φ = sqrt(2/F) cos(x W + b)``."""
    phi = lambda a: math.sqrt(2.0 / num_features) * torch.cos(a @ weights.double() + offsets.double())  # noqa: E731
    diff = phi(g).mean(0) - phi(ref.double()).mean(0)
    return (diff * diff).sum()


def sliced_w2_squared(g: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Mean over directions of the mean squared difference of the sorted projections."""
    p = (g @ theta.double()).T.sort(1).values
    q = (y.double() @ theta.double()).T.sort(1).values
    return ((p - q) ** 2).mean()


def frechet(g: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """FD between Gaussian fits (unbiased covariances) via eigenvalues."""
    return frechet_from_moments(g.mean(0), torch.cov(g.T).reshape(g.shape[1], -1), ref.double())


def frechet_from_moments(mu_g: torch.Tensor, cov_g: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    mu_r, cov_r = ref.mean(0), torch.cov(ref.T).reshape(ref.shape[1], -1)
    ev, u = torch.linalg.eigh(cov_r)
    root = (u * ev.clamp_min(0).sqrt()) @ u.T
    cross = torch.linalg.eigvalsh(root @ cov_g @ root).clamp_min(0).sqrt().sum()
    return ((mu_g - mu_r) ** 2).sum() + cov_g.trace() + cov_r.trace() - 2.0 * cross


def drift_field(x: torch.Tensor, y: torch.Tensor, radii, normalize: bool = True) -> torch.Tensor:
    """Algorithm 2 by explicit differences (self pairs excluded); 0 when all points coincide."""
    x, y = x.double(), y.double()
    P, n = y.shape[0], x.shape[0]
    d = torch.cat([((x[:, None] - y[None]) ** 2).sum(-1), ((x[:, None] - x[None]) ** 2).sum(-1)], 1).sqrt()
    self_pair = torch.zeros(d.shape, dtype=torch.bool)
    self_pair[:, P:] = torch.eye(n, dtype=torch.bool)
    s = d[~self_pair].mean()
    field = torch.zeros_like(x)
    if not s > 0:
        return field
    for r in radii:
        logits = (-d / (r * s)).masked_fill(self_pair, -math.inf)
        a = torch.exp(0.5 * (logits.log_softmax(1) + logits.log_softmax(0)))
        a_pos, a_neg = a[:, :P], a[:, P:]
        v = (a_pos * a_neg.sum(1, keepdim=True)) @ y - (a_neg * a_pos.sum(1, keepdim=True)) @ x
        if normalize:
            v = v * (s / (v**2).sum(1).mean().sqrt())
        field = field + v
    return field


def median_distance(x: torch.Tensor, lower: bool = False) -> float:
    """Median of ``|x_i - x_j|``, ``i < j`` (numpy's mean of the middle two, or the lower one)."""
    a = x.double().numpy()
    i, j = np.triu_indices(a.shape[0], 1)
    d = np.sqrt(((a[i] - a[j]) ** 2).sum(-1))
    if lower:
        return float(np.sort(d)[(d.size - 1) // 2])
    return float(np.median(d))
