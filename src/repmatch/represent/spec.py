"""EncoderSpec: one feature space as data (a leaf module: it imports nothing of the package).

Like timm's pretrained configs, a spec carries everything that fixes an encoder's features
(checkpoint, input resolution, normalisation, resize filter, crop, pooling, output dimension),
and :attr:`EncoderSpec.fingerprint` names that exact feature space: references and metrics
store it and refuse features whose fingerprint differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from ..validate import check_choice, check_positive

MODALITIES = ("image", "text")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "area")
CROP_MODES = ("center", "squash")
CHANNEL_ORDERS = ("RGB", "BGR")
#: Pooling names of Table 5 plus the text encoders' and named-output forms ("output:<name>").
POOLINGS = ("cls", "avg", "attn", "summary", "patch-mean", "mean", "mean-l2")


class MeanStd(TypedDict):
    """An :class:`EncoderSpec`'s ``mean`` and ``std``, typed for ``EncoderSpec(**stats)``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """Everything that defines one encoder's feature space, as data.

    Image preprocessing applied by the encoder (``x`` in [0, 1], shape ``(N, C, H, W)``):
    broadcast one channel to three; resize (``crop_mode="center"``: shorter side to
    ``input_size / crop_pct`` keeping aspect; ``"squash"``: both sides to
    ``input_size / crop_pct``), with ``interpolation`` and ``antialias``, then centre-crop
    ``input_size``;
    reorder channels to ``channel_order``; then ``(x * pixel_scale - mean) / std``.

    Attributes:
        name: registry name (``[a-z0-9_]``), e.g. ``"dinov2_vitl14"``.
        source: adapter key that builds it (``"timm"``, ``"torchvision"``, ``"onnx"``,
            ``"text"``, ``"transformers"``, ``"in-project"``, ...).
        checkpoint: the source's model identifier (timm name, HF repo, ONNX file, ...).
        dim: output feature dimension ``D``.
        modality: ``"image"`` or ``"text"``.
        input_size: ``(H, W)`` fed to the backbone (an int means square).
        mean, std: per-channel normalisation, in ``channel_order`` and after ``pixel_scale``.
        interpolation, antialias: resize filter (bicubic + antialias by default: resize
            aliasing is a known cause of metric disagreement between libraries).
        crop_pct, crop_mode: see above.
        channel_order, pixel_scale: for backbones trained on BGR or 0..255 inputs.
        pooling: ``cls`` class token, ``avg`` token/spatial mean, ``attn`` attention-pool head,
            ``summary``/``patch-mean`` (RADIO, VAE), ``mean``/``mean-l2`` (text), or
            ``output:<name>`` for a named graph output.
        options: adapter-specific settings that change features (e.g. a model config).
        version: bump when the adapter's code changes the features of an unchanged spec.
        held_out: evaluation-only by default (paper: held out from training).
        weights: hint for locating user-supplied weights: a file or directory name looked up
            under ``REPMATCH_WEIGHTS`` (an HF repo id also matches a hub-cache folder).
        description: free text (paper citation, notes); not part of the fingerprint.
    """

    name: str
    source: str
    checkpoint: str
    dim: int
    modality: Literal["image", "text"] = "image"
    input_size: tuple[int, int] | int = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    antialias: bool = True
    crop_pct: float = 1.0
    crop_mode: str = "center"
    channel_order: str = "RGB"
    pixel_scale: float = 1.0
    pooling: str = "avg"
    options: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()
    version: int = 1
    held_out: bool = False
    weights: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name or not all(
            c.islower() or c.isdigit() or c == "_" for c in self.name
        ):
            raise ValueError(f"name must be a non-empty string of [a-z0-9_], got {self.name!r}")
        for field in ("source", "checkpoint"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ValueError(f"{field} must be a non-empty string, got {getattr(self, field)!r}")
        check_positive("dim", self.dim, integer=True)
        check_choice("modality", self.modality, MODALITIES)
        size = self.input_size
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise ValueError(
                f"input_size must be a positive int or (H, W) of positive ints, got {self.input_size!r}"
            )
        set_(self, "input_size", (int(size[0]), int(size[1])))
        for field in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, field))
            if len(value) != 3:
                raise ValueError(f"{field} must have 3 values (one per channel), got {value!r}")
            set_(self, field, value)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std!r}")
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        if not isinstance(self.antialias, bool):
            raise TypeError(f"antialias must be a bool, got {self.antialias!r}")
        check_positive("crop_pct", self.crop_pct)
        if self.crop_pct > 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")
        check_choice("crop_mode", self.crop_mode, CROP_MODES)
        check_choice("channel_order", self.channel_order, CHANNEL_ORDERS)
        check_positive("pixel_scale", self.pixel_scale)
        if not isinstance(self.pooling, str) or not (
            self.pooling in POOLINGS or (self.pooling.startswith("output:") and len(self.pooling) > 7)
        ):
            raise ValueError(
                f"pooling must be one of {list(POOLINGS)} or 'output:<name>', got {self.pooling!r}"
            )
        options = self.options
        if isinstance(options, Mapping):
            options = tuple(sorted(options.items()))
        options = tuple((str(k), _freeze(v)) for k, v in options)
        set_(self, "options", options)
        check_positive("version", self.version, integer=True)
        if not isinstance(self.held_out, bool):
            raise TypeError(f"held_out must be a bool, got {self.held_out!r}")

    @property
    def option_dict(self) -> dict[str, Any]:
        """``options`` as a plain dict."""
        return dict(self.options)  # type: ignore[arg-type]

    @property
    def fingerprint(self) -> str:
        """``"<name>-<sha256[:12]>"`` over every field that changes the features.

        ``held_out``, ``weights`` (where files are found) and ``description`` are excluded: they
        do not change the feature space. Two specs share a fingerprint iff their features agree.
        """
        keep = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("held_out", "weights", "description")
        }
        blob = json.dumps(keep, sort_keys=True, default=repr).encode()
        return f"{self.name}-{hashlib.sha256(blob).hexdigest()[:12]}"


def _freeze(value: Any) -> Any:
    """Make option values hashable (dicts -> sorted item tuples, lists -> tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
