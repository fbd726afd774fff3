"""The frozen encoder battery: one call scores a batch of images under every encoder.

``battery(images) -> {name: (N, D_name)}``. Encoders are frozen (eval mode, parameters
without gradients) and stay in eval mode even if a parent module calls ``.train()``; the
graph to ``images`` is kept, so a loss on the features backpropagates into the generator.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import torch
from torch import nn

from ..validate import check_positive
from .base import Encoder, ImageEncoder
from .preprocessing import check_images
from .registry import create
from .spec import EncoderSpec


class EncoderBattery(nn.Module):
    """A set of frozen image encoders evaluated together.

    Args:
        encoders: registry names or :class:`ImageEncoder` instances (names must be unique).
        chunk_size: images per forward pass (``None`` = whole batch). Chunking bounds the
            transient activation memory of the forward; features are concatenated so the
            result, and its gradient, equal the unchunked call.
        autocast_bf16: run the encoders under bfloat16 autocast when the images are on a
            CUDA device (ignored on CPU); features are returned in float32.
        held_out: names evaluated but not trained against, in addition to those whose spec
            has ``held_out=True`` (to train on one of those, pass
            ``create(name, held_out=False)``).
        weights: ``{name: path}`` for encoders given by name (a config key maps here);
            names not in it use their default weights or ``REPMATCH_WEIGHTS``.
        **create_kwargs: passed to :func:`create` for encoders given by name
            (``pretrained``, ``device``, ``dtype``).
    """

    def __init__(
        self,
        encoders: Sequence[str | Encoder],
        *,
        chunk_size: int | None = None,
        autocast_bf16: bool = False,
        held_out: Iterable[str] = (),
        weights: Mapping[str, str | os.PathLike[str]] | None = None,
        **create_kwargs: object,
    ) -> None:
        super().__init__()
        if isinstance(encoders, str) or not isinstance(encoders, Sequence) or len(encoders) == 0:
            raise TypeError(f"encoders must be a non-empty sequence of names or Encoders, got {encoders!r}")
        if chunk_size is not None:
            check_positive("chunk_size", chunk_size, integer=True)
        weights = dict(weights or {})
        names = [e for e in encoders if isinstance(e, str)]
        stray = sorted(set(weights) - set(names))
        if stray:
            raise ValueError(f"weights names {stray} are not encoders given by name in {names}")
        modules: dict[str, ImageEncoder] = {}
        for item in encoders:
            if isinstance(item, str):
                enc = create(item, weights=weights.get(item), **create_kwargs)
            else:
                enc = item
            if not isinstance(enc, ImageEncoder):
                raise TypeError(
                    f"encoders must be image encoder names or ImageEncoder instances, got "
                    f"{item!r} ({type(enc).__name__})"
                )
            if enc.spec.name in modules:
                raise ValueError(f"encoders contains {enc.spec.name!r} twice")
            modules[enc.spec.name] = enc.freeze()
        self.encoders = nn.ModuleDict(modules)
        self.chunk_size = chunk_size
        self.autocast_bf16 = bool(autocast_bf16)
        if isinstance(held_out, str):
            raise TypeError(f"held_out must be a sequence of names, got the string {held_out!r}")
        held = set(held_out)
        unknown = sorted(held - set(modules))
        if unknown:
            raise ValueError(f"held_out names {unknown} are not in the battery {list(modules)}")
        self._held_out = tuple(n for n, e in modules.items() if n in held or e.spec.held_out)

    @property
    def names(self) -> list[str]:
        """Encoder names in battery order."""
        return list(self.encoders.keys())

    @property
    def held_out(self) -> tuple[str, ...]:
        """Names evaluated but excluded from training."""
        return self._held_out

    @property
    def training_names(self) -> list[str]:
        """Names not held out (the encoders a training loss uses)."""
        return [n for n in self.names if n not in self._held_out]

    @property
    def specs(self) -> dict[str, EncoderSpec]:
        # nn.ModuleDict types its values as nn.Module; __init__ fills it with ImageEncoders.
        return {n: cast(ImageEncoder, e).spec for n, e in self.encoders.items()}

    @property
    def fingerprints(self) -> dict[str, str]:
        """``{name: fingerprint}``; store with references, compare before mixing features."""
        return {n: cast(ImageEncoder, e).fingerprint for n, e in self.encoders.items()}

    def train(self, mode: bool = True) -> EncoderBattery:
        # The battery is a frozen feature extractor: a parent's .train() must not enable
        # dropout or batch-norm updates inside the encoders.
        super().train(mode)
        for enc in self.encoders.values():
            enc.eval()
        return self

    def forward(
        self, images: torch.Tensor, names: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Images ``(N, 1|3, H, W)`` in [0, 1] -> ``{name: (N, D_name)}`` float32 features.

        ``names`` selects a subset (default: all, in battery order).
        """
        images = check_images(images)
        selected = self.names if names is None else list(names)
        unknown = sorted(set(selected) - set(self.names))
        if unknown:
            raise ValueError(f"names {unknown} are not in the battery {self.names}")
        step = images.shape[0] if self.chunk_size is None else self.chunk_size
        use_bf16 = self.autocast_bf16 and images.device.type == "cuda"
        out: dict[str, list[torch.Tensor]] = {n: [] for n in selected}
        for start in range(0, images.shape[0], step):
            chunk = images[start : start + step]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                for name in selected:
                    out[name].append(self.encoders[name](chunk).float())
        return {n: torch.cat(parts) if len(parts) > 1 else parts[0] for n, parts in out.items()}
