"""Image preprocessing as data: the one input contract shared by every image encoder.

Input: float images ``(N, C, H, W)`` in [0, 1], ``C`` in {1, 3}, any ``H, W``. Output: the
backbone's input ``(N, 3, h, w)`` with ``(h, w) = spec.input_size``::

    x <- broadcast(x, 3 channels)
    x <- resize(x)                          # EncoderSpec.interpolation / antialias / crop
    x <- x[:, ::-1] if spec.channel_order == "BGR"
    x <- (x * spec.pixel_scale - mean) / std

Everything is differentiable (``F.interpolate`` with ``antialias=True`` has a backward), so
gradients reach the generator's images. Bicubic overshoot is not clamped: clamping would zero
the gradient of saturated pixels. Each image is processed independently, so features do not
depend on the batch size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .spec import EncoderSpec


def check_images(images: object, name: str = "images") -> torch.Tensor:
    """Validate ``(N, 1|3, H, W)`` floating images and broadcast one channel to three."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, 3, H, W) in [0, 1], got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor in [0, 1], got dtype {images.dtype} "
            "(convert uint8 with images.float() / 255)"
        )
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 1 or 3, H, W) with N > 0, got {tuple(images.shape)}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return images


def resize(images: torch.Tensor, spec: EncoderSpec) -> torch.Tensor:
    """Resize ``(N, 3, H, W)`` to ``spec.input_size`` per the spec's filter and crop.

    ``crop_mode="center"``: scale so the shorter side is ``input_size / crop_pct`` (timm's
    rule, aspect kept), then centre-crop; ``"squash"``: resize straight to ``input_size``.
    An image already at the target size with ``crop_pct == 1`` passes through untouched.
    """
    target = spec.input_size
    assert isinstance(target, tuple)  # EncoderSpec.__post_init__ makes an int size (H, W)
    th, tw = target
    h, w = images.shape[-2:]
    if spec.crop_mode == "squash":
        size = (int(math.floor(th / spec.crop_pct + 0.5)), int(math.floor(tw / spec.crop_pct + 0.5)))
    else:
        scale = max(th / h, tw / w) / spec.crop_pct
        size = (max(th, int(math.floor(h * scale + 0.5))), max(tw, int(math.floor(w * scale + 0.5))))
    if size != (h, w):
        kwargs = {}
        if spec.interpolation in ("bilinear", "bicubic"):
            kwargs = {"align_corners": False, "antialias": spec.antialias}
        images = F.interpolate(images, size=size, mode=spec.interpolation, **kwargs)
    h, w = images.shape[-2:]
    if (h, w) != (th, tw):
        top, left = (h - th) // 2, (w - tw) // 2
        images = images[..., top : top + th, left : left + tw]
    return images


def preprocess(images: torch.Tensor, spec: EncoderSpec) -> torch.Tensor:
    """``(N, 1|3, H, W)`` in [0, 1] -> normalised ``(N, 3, *spec.input_size)`` backbone input."""
    x = resize(check_images(images), spec)
    if spec.channel_order == "BGR":
        x = x.flip(1)
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    if spec.pixel_scale != 1.0:
        x = x * spec.pixel_scale
    return (x - mean) / std
