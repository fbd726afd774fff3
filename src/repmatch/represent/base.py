"""The :class:`Encoder` modules returned by :func:`repmatch.represent.create`.

An encoder = its :class:`EncoderSpec` + a backbone built by the spec's adapter. Image
encoders apply :func:`repmatch.represent.preprocess` inside ``forward`` (so any
image size works and gradients reach the input); text encoders take a list of strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import nn

from .preprocessing import preprocess
from .spec import EncoderSpec

_EncoderT = TypeVar("_EncoderT", bound="Encoder")


class Encoder(nn.Module):
    """Base class: ``spec``, ``fingerprint``, ``freeze()``; subclasses define ``forward``."""

    def __init__(self, spec: EncoderSpec, backbone: nn.Module, *, pretrained: bool = True) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = backbone
        self.pretrained = pretrained

    @property
    def fingerprint(self) -> str:
        """The spec's fingerprint; ``"~random"`` appended for randomly initialised weights,
        whose features identify no released model and must never match a real reference."""
        return self.spec.fingerprint + ("" if self.pretrained else "~random")

    @property
    def dim(self) -> int:
        return self.spec.dim

    def freeze(self: _EncoderT) -> _EncoderT:
        """Eval mode and ``requires_grad=False`` on every parameter (frozen feature extractor)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def _check_output(self, feats: torch.Tensor, n: int) -> torch.Tensor:
        if feats.ndim != 2 or feats.shape != (n, self.spec.dim):
            raise RuntimeError(
                f"encoder {self.spec.name!r} produced shape {tuple(feats.shape)}, but its spec "
                f"declares ({n}, {self.spec.dim}): the adapter or spec is wrong"
            )
        return feats

    def extra_repr(self) -> str:
        return f"name={self.spec.name!r}, dim={self.spec.dim}, fingerprint={self.fingerprint!r}"


class ImageEncoder(Encoder):
    """``forward(images (N, 1|3, H, W) in [0, 1]) -> (N, spec.dim)``; resize+normalise inside."""

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> the backbone's normalised ``(N, 3, *spec.input_size)`` input."""
        return preprocess(images, self.spec)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        param = next(self.backbone.parameters(), None)
        if param is not None and param.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
            x = x.to(param.dtype)
        return self._check_output(self.backbone(x), images.shape[0])


class TextEncoder(Encoder):
    """``forward(texts: list[str]) -> (N, spec.dim)``."""

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or len(texts) == 0:
            raise TypeError(f"texts must be a non-empty list of str, got {type(texts).__name__}")
        return self._check_output(self.backbone(list(texts)), len(texts))
