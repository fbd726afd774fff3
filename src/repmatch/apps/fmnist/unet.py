"""A compact class-conditional U-Net velocity field ``v(x_t, t, c)`` for 28×28 images.

Used as the flow-matching teacher (rectified flow, ``x_t = (1 - t)·x + t·ε``; see
:mod:`repmatch.apps.fmnist.flow_matching`) and, wrapped by :class:`repmatch.generators.FewStepGenerator`, as
the few-step / one-step generator that iRDM post-trains (paper §3: "the same objective
post-trains a few-step sampler by treating its final output as g_θ").

Architecture: a DDPM-style U-Net (Ho et al., 2020) with residual blocks whose GroupNorm is
modulated by a scale/shift computed from the sum of a sinusoidal time embedding and a learned
class embedding (adaptive GroupNorm), optional self-attention at the lowest resolution, and a
zero-initialised output convolution so an untrained network predicts ``v = 0``. Every
normalisation is per sample (GroupNorm, never BatchNorm): outputs do not depend on which rows
share a batch, which gradient caching and chunked evaluation rely on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...validate import check_nonnegative_int, check_positive
from ._conditioning import check_condition


@dataclass(frozen=True, kw_only=True)
class VelocityUNetConfig:
    """Shape of a :class:`VelocityUNet`.

    ``channels[i]`` is the width at resolution ``image_size / 2**i``; ``image_size`` must be
    divisible by ``2**(len(channels) - 1)`` (28 allows up to 3 levels: 28, 14, 7).
    ``num_classes = 0`` builds an unconditional network.
    """

    image_size: int = 28
    image_channels: int = 1
    num_classes: int = 10
    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_level: int = 1
    attention: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive("image_size", self.image_size, integer=True)
        check_positive("image_channels", self.image_channels, integer=True)
        check_positive("blocks_per_level", self.blocks_per_level, integer=True)
        check_nonnegative_int("num_classes", self.num_classes)
        if not isinstance(self.channels, tuple) or not self.channels:
            raise TypeError(f"channels must be a non-empty tuple of ints, got {self.channels!r}")
        for c in self.channels:
            check_positive("channels[i]", c, integer=True)
            if c % 8:
                raise ValueError(
                    f"channels must be multiples of 8 (GroupNorm groups), got {self.channels}"
                )
        if self.image_size % 2 ** (len(self.channels) - 1):
            raise ValueError(
                f"image_size={self.image_size} must be divisible by 2**(len(channels) - 1) = "
                f"{2 ** (len(self.channels) - 1)}; use fewer levels in channels={self.channels}"
            )
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``channels`` as a list); inverse of :meth:`from_dict`."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VelocityUNetConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        return cls(**{**d, "channels": tuple(d["channels"])})


def velocity_unet_cpu() -> VelocityUNetConfig:
    """Small preset (~0.6M parameters): a few CPU minutes give recognisable Fashion-MNIST.

    Narrow at 28×28 (16 channels) because that level dominates the convolution cost on a CPU.
    """
    return VelocityUNetConfig(channels=(16, 32, 64), blocks_per_level=1, attention=False)


def velocity_unet_gpu() -> VelocityUNetConfig:
    """Larger preset (~14M parameters) for one GPU: two blocks per level, attention at 7×7."""
    return VelocityUNetConfig(
        channels=(64, 128, 256), blocks_per_level=2, attention=True, dropout=0.1
    )


def velocity_unet_tiny() -> VelocityUNetConfig:
    """Tiny preset (~30k parameters) for tests and smoke runs; not meant to give good samples."""
    return VelocityUNetConfig(channels=(8, 16), blocks_per_level=1, attention=False)


VELOCITY_PRESETS = {"tiny": velocity_unet_tiny, "cpu": velocity_unet_cpu, "gpu": velocity_unet_gpu}


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(N, dim)`` of times ``t`` ``(N,)`` in [0, 1].

    ``t`` is scaled by 1000 so the frequencies ``10000**(-k/half)`` resolve the unit interval
    as finely as the integer timesteps of DDPM-style embeddings do.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, channels)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = _norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        # Zero init: each block starts as the identity (plus skip), which keeps deep stacks
        # well-conditioned at initialisation.
        nn.init.zeros_(self.conv2.weight)
        assert self.conv2.bias is not None  # built with bias=True
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class _Attention(nn.Module):
    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # built with bias=True
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        a = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        return x + self.out(a.transpose(-1, -2).reshape(n, c, h, w))


class VelocityUNet(nn.Module):
    """Velocity field ``v(x_t, t, condition) -> (N, C, H, W)``.

    Inputs: ``x_t`` ``(N, C, H, W)`` in data space (the rectified-flow interpolant between data
    in [-1, 1] and standard-normal noise), ``t`` ``(N,)`` or a scalar in [0, 1] (``t = 1`` is
    pure noise), ``condition`` integer class labels ``(N,)`` (``None`` when ``num_classes = 0``).
    Output: the predicted velocity ``d x_t / d t ≈ ε − x``, same shape as ``x_t``.
    """

    def __init__(self, config: VelocityUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or velocity_unet_cpu()
        ch = config.channels
        emb_dim = 4 * ch[0]
        self._time_dim = ch[0]
        self.time_mlp = nn.Sequential(
            nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.class_emb = nn.Embedding(config.num_classes, emb_dim) if config.num_classes else None
        self.stem = nn.Conv2d(config.image_channels, ch[0], 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [ch[0]]
        c = ch[0]
        for level, width in enumerate(ch):
            for _ in range(config.blocks_per_level):
                self.down.append(_ResBlock(c, width, emb_dim, config.dropout))
                c = width
                skip_channels.append(c)
            if level < len(ch) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skip_channels.append(c)

        self.mid1 = _ResBlock(c, c, emb_dim, config.dropout)
        self.mid_attn = _Attention(c) if config.attention else nn.Identity()
        self.mid2 = _ResBlock(c, c, emb_dim, config.dropout)

        self.up = nn.ModuleList()
        for level in reversed(range(len(ch))):
            for _ in range(config.blocks_per_level + 1):
                self.up.append(
                    _ResBlock(c + skip_channels.pop(), ch[level], emb_dim, config.dropout)
                )
                c = ch[level]
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        assert not skip_channels

        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, config.image_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        assert self.out.bias is not None  # built with bias=True
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor | float, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.image_channels, cfg.image_size, cfg.image_size)
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != expected:
            raise ValueError(
                f"x_t must have shape (N, {', '.join(map(str, expected))}), got {tuple(x_t.shape)}"
            )
        n = x_t.shape[0]
        t = torch.as_tensor(t, device=x_t.device, dtype=torch.float32)
        if t.ndim == 0:
            t = t.expand(n)
        if tuple(t.shape) != (n,):
            raise ValueError(f"t must be a scalar or have shape ({n},), got {tuple(t.shape)}")
        condition = check_condition(condition, batch=n, num_classes=cfg.num_classes)

        emb = self.time_mlp(timestep_embedding(t, self._time_dim))
        if self.class_emb is not None:
            emb = emb + self.class_emb(condition)
        h = self.stem(x_t)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            h = (
                layer(torch.cat([h, skips.pop()], dim=1), emb)
                if isinstance(layer, _ResBlock)
                else layer(h)
            )
        return self.out(F.silu(self.out_norm(h)))
