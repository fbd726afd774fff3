"""Adapters: how specs of each ``source`` become backbones (libraries imported lazily).

Each builder returns a module mapping the preprocessed ``(N, 3, H, W)`` batch to the pooled
``(N, spec.dim)`` embedding; ``pretrained=False`` builds the same architecture with random
weights and reads no file (tests, ``device="meta"``).

* ``timm``: ``timm.create_model(checkpoint, num_classes=0, global_pool=...)``, weights from a
  user-supplied file or local HF snapshot (``pretrained_cfg_overlay=dict(file=...)``).
* ``torchvision``: the FID Inception-v3 (pytorch-fid's variant of torchvision's Inception3).
* ``transformers``: ``AutoModel`` from a local snapshot (or ``spec.options`` config).
* ``dreamsim``, ``radio``, ``flux_vae``: hooks only (their code is not on the package
  registries here): ``register_adapter(source, builder)`` supplies one; see docs/encoders.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .registry import EncoderSpec, adapter_hint, find_weights, register_adapter


def _require(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"{module} is not installed; install it with: pip install 'repmatch[{extra}]'"
        ) from err


def _weight_file(spec: EncoderSpec, weights: Path | None) -> Path:
    """A weights file: the given/located path, or the state-dict file inside a snapshot dir."""
    path = find_weights(spec, weights)
    if path.is_file():
        return path
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(
        f"weights directory {str(path)!r} for encoder {spec.name!r} holds none of "
        "model.safetensors, pytorch_model.bin, open_clip_pytorch_model.bin"
    )


# ----------------------------------------------------------------------------- timm

_TIMM_POOL = {"cls": "token", "avg": "avg", "attn": "map"}


def build_timm(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    """timm model with its classifier removed: ``forward`` returns the pooled pre-logits."""
    timm = _require("timm", "timm")
    if spec.pooling not in _TIMM_POOL:
        raise ValueError(f"timm specs take pooling in {sorted(_TIMM_POOL)}, got {spec.pooling!r}")
    kwargs: dict[str, object] = {"num_classes": 0, "global_pool": _TIMM_POOL[spec.pooling]}
    default = timm.get_pretrained_cfg(spec.checkpoint)
    if default is not None and tuple(default.input_size[-2:]) != spec.input_size:
        # ViTs take another resolution by resampling their position embedding at load time.
        kwargs["img_size"] = spec.input_size
    if pretrained:
        kwargs["pretrained_cfg_overlay"] = {"file": str(_weight_file(spec, weights))}
    return timm.create_model(spec.checkpoint, pretrained=pretrained, **kwargs)


register_adapter("timm", build_timm, install_hint="Install it with: pip install 'repmatch[timm]'.")


# ----------------------------------------------------------------------------- FID Inception


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # TF's Inception (and so FID) excludes padding from the 3x3 average: count_include_pad=False.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _fid_blocks() -> tuple[type, type, type, type]:
    """pytorch-fid's FIDInceptionA/C/E_1/E_2: torchvision blocks with TF's pooling."""
    # Any: torchvision ships no type information, and mypy only takes a base class from an
    # Any-typed name (not from a module's attribute).
    tv: Any = _require("torchvision.models.inception", "timm")

    class FIDInceptionA(tv.InceptionA):
        def _forward(self, x):  # type: ignore[override]
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return [b1, b5, b3, self.branch_pool(_avg3(x))]

    class FIDInceptionC(tv.InceptionC):
        def _forward(self, x):  # type: ignore[override]
            b1 = self.branch1x1(x)
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = self.branch7x7dbl_1(x)
            for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                d = layer(d)
            return [b1, b7, d, self.branch_pool(_avg3(x))]

    class FIDInceptionE(tv.InceptionE):
        pool = staticmethod(_avg3)

        def _forward(self, x):  # type: ignore[override]
            b1 = self.branch1x1(x)
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            return [b1, b3, d, self.branch_pool(self.pool(x))]

    class FIDInceptionE2(FIDInceptionE):
        # The last block of the TF graph max-pools (a bug in the original, kept by FID).
        pool = staticmethod(lambda x: F.max_pool2d(x, kernel_size=3, stride=1, padding=1))

    return FIDInceptionA, FIDInceptionC, FIDInceptionE, FIDInceptionE2


def build_fid_inception(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    """FID Inception-v3 (pytorch-fid layout) -> 2048-d pool3 features.

    Weights: ``pt_inception-2015-12-05-6726825d.pth`` from pytorch-fid's release, supplied by
    the user (``weights=`` or ``REPMATCH_WEIGHTS``).
    """
    models = _require("torchvision.models", "timm")
    A, C, E1, E2 = _fid_blocks()
    net = models.inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
    net.Mixed_6b, net.Mixed_6c = C(768, 128), C(768, 160)
    net.Mixed_6d, net.Mixed_6e = C(768, 160), C(768, 192)
    net.Mixed_7b, net.Mixed_7c = E1(1280), E2(2048)
    if pretrained:
        state = torch.load(_weight_file(spec, weights), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    net.fc = nn.Identity()  # pool3 output, not the 1008-way logits
    return net


register_adapter("torchvision", build_fid_inception)


# ----------------------------------------------------------------------------- transformers


class HFPooled(nn.Module):
    """A transformers vision model read out as its class token or patch-token mean."""

    def __init__(self, model: nn.Module, pooling: str) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        if self.pooling == "cls":
            return out.pooler_output  # layer-normed class token
        return out.last_hidden_state[:, 1:].mean(1)


def build_transformers(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    transformers = _require("transformers", "text")
    if spec.pooling not in ("cls", "avg"):
        raise ValueError(f"transformers specs take pooling 'cls' or 'avg', got {spec.pooling!r}")
    if pretrained:
        path = find_weights(spec, weights)
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    else:
        opts = spec.option_dict
        config = transformers.AutoConfig.for_model(
            opts.pop("model_type"), **{k: v for k, v in opts.items()}
        )
        model = transformers.AutoModel.from_config(config)
    return HFPooled(model, spec.pooling)


register_adapter("transformers", build_transformers)


adapter_hint("dreamsim", "DreamSim's code is not installable offline here; install `dreamsim` "
             "and register a builder wrapping its embed() (docs/encoders.md).")
adapter_hint("radio", "RADIO loads as Hugging Face remote code (trust_remote_code=True) from a "
             "local snapshot of nvidia/C-RADIOv3-L; register a builder returning its summary "
             "(docs/encoders.md).")
adapter_hint("flux_vae", "The FLUX VAE needs `diffusers` (AutoencoderKL) and a local FLUX.1 "
             "snapshot; register a builder returning the 4x4 patch-mean of the latent mean "
             "(docs/encoders.md).")
