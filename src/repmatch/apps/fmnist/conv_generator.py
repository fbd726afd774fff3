"""A DCGAN-style one-step generator ``g(z, c) -> image`` for training from scratch with RDM.

Follows the project's generator contract (``repmatch.generators.base``): called as
``g(noise, condition)``, returns images ``(N, C, H, W)`` in [0, 1], and exposes
``noise_shape`` (the per-sample shape of ``noise``, here a latent vector ``(latent_dim,)``).

Layout (Radford et al., 2016, conditional variant): ``[z ⊕ embed(c)]`` → linear →
``(4w, s/4, s/4)`` → (upsample ×2, conv 3×3, norm, SiLU) twice → conv 3×3 → sigmoid. The class
embedding also modulates each upsampling stage (scale/shift), so the label cannot be ignored
once the first layer saturates. GroupNorm replaces DCGAN's BatchNorm: a sample must not depend
on its batch-mates, since the RDM trainer regenerates chunks under gradient caching and the
repulsion term scores the batch as a set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...validate import check_nonnegative_int, check_positive
from ._conditioning import check_condition


@dataclass(frozen=True, kw_only=True)
class ConvGeneratorConfig:
    """Shape of a :class:`ConvGenerator`; ``image_size`` must be divisible by 4.

    The default (``width=32``, ~0.9M parameters, most in the first linear layer) trains on a
    CPU; ``width=64`` or 128 suits a GPU.
    """

    latent_dim: int = 64
    num_classes: int = 10
    width: int = 32
    image_size: int = 28
    image_channels: int = 1

    def __post_init__(self) -> None:
        for name in ("latent_dim", "width", "image_size", "image_channels"):
            check_positive(name, getattr(self, name), integer=True)
        check_nonnegative_int("num_classes", self.num_classes)
        if self.image_size % 4:
            raise ValueError(
                f"image_size must be divisible by 4 (two ×2 upsamplings), got {self.image_size}"
            )
        if self.width % 8:
            raise ValueError(f"width must be a multiple of 8 (GroupNorm groups), got {self.width}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; inverse of ``ConvGeneratorConfig(**d)``."""
        return asdict(self)


class _UpStage(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(8, c_out, affine=False)
        self.film = nn.Linear(cond_dim, 2 * c_out) if cond_dim else None

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        if self.film is not None and cond is not None:
            scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return F.silu(h)


class ConvGenerator(nn.Module):
    """One-step generator: ``noise (N, latent_dim)`` + labels ``(N,)`` → images ``(N, C, H, W)`` in [0, 1]."""

    def __init__(self, config: ConvGeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ConvGeneratorConfig()
        self.noise_shape: tuple[int, ...] = (config.latent_dim,)
        w, s = config.width, config.image_size // 4
        cond_dim = config.latent_dim if config.num_classes else 0
        self.class_emb = nn.Embedding(config.num_classes, cond_dim) if config.num_classes else None
        self.fc = nn.Linear(config.latent_dim + cond_dim, 4 * w * s * s)
        self.fc_norm = nn.GroupNorm(8, 4 * w)
        self.up1 = _UpStage(4 * w, 2 * w, cond_dim)
        self.up2 = _UpStage(2 * w, w, cond_dim)
        self.out = nn.Conv2d(w, config.image_channels, 3, padding=1)

    def forward(self, noise: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        if noise.ndim != 2 or noise.shape[1] != cfg.latent_dim:
            raise ValueError(
                f"noise must have shape (N, {cfg.latent_dim}), got {tuple(noise.shape)}"
            )
        n = noise.shape[0]
        condition = check_condition(condition, batch=n, num_classes=cfg.num_classes)
        cond = self.class_emb(condition) if self.class_emb is not None else None
        z = noise if cond is None else torch.cat([noise, cond], dim=1)
        s = cfg.image_size // 4
        h = F.silu(self.fc_norm(self.fc(z).view(n, 4 * cfg.width, s, s)))
        h = self.up2(self.up1(h, cond), cond)
        return torch.sigmoid(self.out(h))
