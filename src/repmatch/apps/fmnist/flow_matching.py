"""Class-conditional rectified flow: interpolant, loss and training-time sampling.

Convention (shared with :class:`repmatch.generators.FewStepGenerator`): data ``x`` in [-1, 1], noise
``ε ~ N(0, I)``, and

    x_t = (1 − t)·x + t·ε,         t ∈ [0, 1]  (t = 0 data, t = 1 noise),
    d x_t / d t = ε − x,

so the flow-matching loss (Lipman et al., 2023; Liu et al., 2023) is

    L(θ) = E_{x, ε, t} ‖v_θ(x_t, t, c) − (ε − x)‖² / D,

the squared error averaged over the ``D = C·H·W`` pixels and the batch. Sampling (``K`` uniform
Euler steps from ``t = 1`` to ``t = 0``) is :class:`repmatch.generators.FewStepGenerator`; with K = 4 it is
the paper's "few-step teacher" that iRDM post-trains into one step (paper §3, §4.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...validate import check_choice

Velocity = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]

TIME_SAMPLINGS = ("uniform", "logit_normal")


def interpolate(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rectified-flow interpolant ``x_t = (1 − t)·x + t·ε``; ``x, noise`` ``(N, ...)``, ``t`` ``(N,)``."""
    tt = t.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return (1 - tt) * x + tt * noise


def sample_time(
    n: int,
    *,
    schedule: str = "uniform",
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw ``n`` training times ``(n,)``.

    ``uniform``: t ~ U(0, 1). ``logit_normal``: t = sigmoid(u), u ~ N(0, 1) (Esser et al., 2024),
    which spends more of the budget at intermediate t where the velocity is hardest to predict.
    """
    check_choice("schedule", schedule, TIME_SAMPLINGS)
    if schedule == "uniform":
        return torch.rand(n, generator=generator, device=device)
    return torch.sigmoid(torch.randn(n, generator=generator, device=device))


def flow_matching_loss(
    velocity: Velocity,
    x: torch.Tensor,
    condition: torch.Tensor | None,
    *,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Mean of ``(v(x_t, t, c) − (ε − x))²`` over batch and pixels (scalar).

    ``x`` ``(N, C, H, W)`` data in [-1, 1]; ``noise`` same shape; ``t`` ``(N,)``. The caller
    draws ``t`` and ``noise`` so that training is reproducible and resumable bit-for-bit.
    """
    if noise.shape != x.shape:
        raise ValueError(
            f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}"
        )
    if tuple(t.shape) != (x.shape[0],):
        raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
    target = noise - x
    pred = velocity(interpolate(x, noise, t), t, condition)
    return (pred - target).square().mean()
