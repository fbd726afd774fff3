"""Class-conditional rectified flow: interpolant, loss, time sampling and an Euler sampler.

Convention (shared with ``repmatch.train.FewStepGenerator``): data ``x`` in [-1, 1], noise
``ε ~ N(0, I)``, and

    x_t = (1 − t)·x + t·ε,         t ∈ [0, 1]  (t = 0 data, t = 1 noise),
    d x_t / d t = ε − x,

so the flow-matching loss (Lipman et al., 2023; Liu et al., 2023) is

    L(θ) = E_{x, ε, t} ‖v_θ(x_t, t, c) − (ε − x)‖² / D,

the squared error averaged over the ``D = C·H·W`` pixels and the batch. Sampling integrates
``dx/dt = v_θ`` from ``t = 1`` to ``t = 0`` with ``K`` uniform Euler steps,
``x_{t−1/K} = x_t − (1/K)·v_θ(x_t, t, c)``; with K = 4 this is the paper's "few-step teacher"
that iRDM post-trains into one step (paper §3, §4.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validate import check_choice, check_positive

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
        raise ValueError(f"noise must have the shape of x {tuple(x.shape)}, got {tuple(noise.shape)}")
    if tuple(t.shape) != (x.shape[0],):
        raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
    target = noise - x
    pred = velocity(interpolate(x, noise, t), t, condition)
    return (pred - target).square().mean()


def euler_sample(
    velocity: Velocity,
    noise: torch.Tensor,
    condition: torch.Tensor | None,
    num_steps: int,
) -> torch.Tensor:
    """Integrate ``dx/dt = v(x, t, c)`` from ``t = 1`` (``x = noise``) to ``t = 0``; returns ``x_0``.

    ``noise`` ``(N, C, H, W)``; ``num_steps`` uniform Euler steps of size ``1/num_steps``, the
    velocity evaluated at the left end (``t_k = 1 − k/num_steps``). The result is in data space
    (about [-1, 1]); map it with :func:`to_unit_range` for images. Gradients flow if enabled.
    """
    check_positive("num_steps", num_steps, integer=True)
    x = noise
    n = noise.shape[0]
    dt = 1.0 / num_steps
    for k in range(num_steps):
        t = torch.full((n,), 1.0 - k * dt, device=noise.device, dtype=torch.float32)
        x = x - dt * velocity(x, t, condition)
    return x


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Map data-space images in [-1, 1] to [0, 1] (clamped): ``(x + 1) / 2``."""
    return ((x + 1) / 2).clamp(0, 1)
