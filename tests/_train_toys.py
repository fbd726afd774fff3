"""Tiny independent pieces shared by the train tests: float64 brute-force MMD oracle, toy
encoders (fixed linear feature maps) and an MLP generator with dropout."""

from __future__ import annotations

import torch
from torch import nn


def brute_mmd_loss(gen: torch.Tensor, ref: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Eq. 3 with an exact attraction: (1/B²)Σ k(g_i,g_j) − (2/(B n))Σ k(g_i, r_t)."""
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
        return torch.exp(-d2 / (2 * bandwidth**2))
    return k(gen, gen).mean() - 2 * k(gen, ref).mean()


class ToyEncoders(nn.Module):
    """Two frozen feature maps of an image: a linear map and a tanh of another."""

    def __init__(self, in_dim: int, dims: tuple[int, int] = (5, 3), seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(in_dim, dims[0], generator=g, dtype=torch.float64), requires_grad=False)
        self.b = nn.Parameter(torch.randn(in_dim, dims[1], generator=g, dtype=torch.float64), requires_grad=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.flatten(1)
        return {"lin": x @ self.a, "tanh": torch.tanh(x @ self.b)}


def make_generator(seed: int = 0, dropout: float = 0.2, noise_dim: int = 4) -> nn.Module:
    from repmatch.train.generator import MLPGenerator

    torch.manual_seed(seed)
    return MLPGenerator(noise_dim, (1, 2, 3), hidden=16, dropout=dropout).double()
