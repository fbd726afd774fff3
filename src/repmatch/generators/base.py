"""The generator interface and the few-step adapter (paper §3).

A generator ``g_θ`` is an ``nn.Module`` called as ``g(noise, condition) -> images`` with images
``(N, C, H, W)`` in ``[0, 1]`` and an attribute ``noise_shape`` (the per-sample shape of the
prior draw, ``noise`` has shape ``(N, *noise_shape)``). ``condition`` is ``None`` for
unconditional models, a ``(N,)`` long tensor of class labels, or whatever the model's
conditioning takes (e.g. ``(N, E)`` text embeddings).

"The same objective post-trains a few-step sampler by treating its final output as g_θ"
(§3): :class:`FewStepGenerator` wraps a velocity model ``v(x_t, t, condition)`` trained under
the rectified-flow convention ``x_t = (1 - t)·x_data + t·noise`` (data in ``[-1, 1]``) and
integrates it by Euler from ``t = 1`` to ``t = 0`` in ``num_steps`` steps; the gradient flows
through every step. Post-training a K-step model into one step is training
``FewStepGenerator(model, num_steps=1, ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ..validate import check_positive


@runtime_checkable
class Generator(Protocol):
    """``g(noise (N, *noise_shape), condition) -> images (N, C, H, W) in [0, 1]``."""

    noise_shape: tuple[int, ...]

    def __call__(self, noise: torch.Tensor, condition: Any = None) -> torch.Tensor: ...


class FewStepGenerator(nn.Module):
    """Euler sampler of a rectified-flow velocity model, exposed as a generator.

    Steps: ``x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i)·v(x_{t_i}, t_i, c)`` with
    ``1 = t_0 > t_1 > ... > t_K = 0`` (uniform unless ``timesteps`` is given), starting at
    ``x_1 = noise``; the output is ``(x_0 + 1) / 2``, i.e. ``[-1, 1]`` mapped to ``[0, 1]``.
    No clamp is applied, so pixels slightly out of range still receive gradient.

    Args:
        velocity_model: ``v(x_t (N, *noise_shape), t (N,), condition) -> (N, *noise_shape)``.
        num_steps: K, the number of Euler steps (1 for a one-step generator).
        noise_shape: per-sample shape of ``x_t``, e.g. ``(1, 28, 28)``.
        timesteps: optional explicit schedule of K+1 decreasing times from 1 to 0.
    """

    def __init__(
        self,
        velocity_model: nn.Module,
        num_steps: int,
        noise_shape: Sequence[int],
        *,
        timesteps: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        check_positive("num_steps", num_steps, integer=True)
        if timesteps is None:
            timesteps = torch.linspace(1.0, 0.0, num_steps + 1).tolist()
        timesteps = [float(t) for t in timesteps]
        if len(timesteps) != num_steps + 1:
            raise ValueError(
                f"timesteps must have num_steps + 1 = {num_steps + 1} entries, got {len(timesteps)}"
            )
        if timesteps[0] != 1.0 or timesteps[-1] != 0.0 or any(
            a <= b for a, b in zip(timesteps, timesteps[1:])
        ):
            raise ValueError(
                f"timesteps must decrease strictly from 1.0 to 0.0, got {timesteps}"
            )
        self.velocity_model = velocity_model
        self.num_steps = num_steps
        self.noise_shape = tuple(int(s) for s in noise_shape)
        self.timesteps = tuple(timesteps)

    def forward(self, noise: torch.Tensor, condition: Any = None) -> torch.Tensor:
        if tuple(noise.shape[1:]) != self.noise_shape:
            raise ValueError(
                f"noise must have shape (N, *{self.noise_shape}), got {tuple(noise.shape)}"
            )
        x = noise
        n = noise.shape[0]
        for t, t_next in zip(self.timesteps, self.timesteps[1:]):
            t_vec = torch.full((n,), t, dtype=noise.dtype, device=noise.device)
            x = x + (t_next - t) * self.velocity_model(x, t_vec, condition)
        return (x + 1.0) * 0.5


class MLPGenerator(nn.Module):
    """A small MLP generator for toy tasks, tests and benchmarks.

    ``noise (N, noise_dim)`` (+ a learned class embedding when ``num_classes > 0``) →
    ``sigmoid(MLP(...))`` reshaped to ``(N, *image_shape)`` in ``[0, 1]``.
    """

    def __init__(
        self,
        noise_dim: int,
        image_shape: Sequence[int],
        *,
        hidden: int = 64,
        depth: int = 2,
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive("noise_dim", noise_dim, integer=True)
        check_positive("hidden", hidden, integer=True)
        check_positive("depth", depth, integer=True)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.noise_shape = (int(noise_dim),)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.embed = nn.Embedding(num_classes, noise_dim) if num_classes > 0 else None
        layers: list[nn.Module] = []
        width = noise_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(dropout)]
            width = hidden
        out = 1
        for s in self.image_shape:
            out *= s
        layers.append(nn.Linear(width, out))
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, condition: Any = None) -> torch.Tensor:
        h = noise
        if self.embed is not None:
            if condition is None:
                raise ValueError("this MLPGenerator is class-conditional: condition (N,) labels required")
            h = h + self.embed(condition)
        return torch.sigmoid(self.net(h)).view(noise.shape[0], *self.image_shape)
