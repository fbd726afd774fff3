"""Encoder registry: one :class:`EncoderSpec` per name, one builder per source.

A spec carries everything that fixes a feature space as data (checkpoint, input resolution,
normalisation, resize filter, crop, pooling, output dimension), like timm's pretrained configs,
and :attr:`EncoderSpec.fingerprint` names that exact feature space: references and metrics
store it and refuse features whose fingerprint differs.

How a spec becomes a module:

* ``register_adapter(source, builder)`` says how to build every spec of one ``source``
  (``"timm"``, ``"onnx"``, ...); adapters import their library lazily.
* ``register_encoder(spec)`` registers a spec; used as a decorator,
  ``@register_encoder(spec)`` on a ``builder(spec, *, weights, pretrained) -> nn.Module`` gives
  that one spec its own builder (how in-project encoders are registered).

A builder returns a *backbone* mapping preprocessed inputs to ``(N, spec.dim)``; :func:`create`
wraps it in :class:`~repmatch.encoders.base.ImageEncoder` (which resizes and normalises per spec
inside ``forward``) or :class:`~repmatch.encoders.base.TextEncoder`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from .._validate import check_choice, check_positive

if TYPE_CHECKING:
    from .base import Encoder

MODALITIES = ("image", "text")
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "area")
CROP_MODES = ("center", "squash")
CHANNEL_ORDERS = ("RGB", "BGR")
#: Pooling names of Table 5 plus the text encoders' and named-output forms ("output:<name>").
POOLINGS = ("cls", "avg", "attn", "summary", "patch-mean", "mean", "mean-l2")

# Modules that register specs/adapters when imported; imported lazily by list()/create() so
# that `import repmatch.encoders` stays cheap and cannot form an import cycle. Another module
# that registers encoders adds its dotted path here (one line).
_PLUGIN_MODULES: list[str] = [
    "repmatch.encoders.adapters",
    "repmatch.encoders.paper",
    "repmatch.encoders.offline",
    "repmatch.encoders.fmnist",
]


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


class Builder(Protocol):
    """Builds a backbone: preprocessed ``(N, 3, H, W)`` (or ``list[str]``) -> ``(N, spec.dim)``."""

    def __call__(self, spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module: ...


_SPECS: dict[str, EncoderSpec] = {}
_SPEC_BUILDERS: dict[str, Builder] = {}
_ADAPTERS: dict[str, Builder] = {}
_ADAPTER_HINTS: dict[str, str] = {}


def register_adapter(source: str, builder: Builder, *, install_hint: str = "") -> Builder:
    """Register ``builder`` for every spec whose ``source`` is ``source`` (replaces a previous one).

    This is the hook for encoders whose code is not on the package registries (RADIO,
    DreamSim, FLUX VAE): install their code, then
    ``register_adapter("radio", my_builder)`` before ``create("cradiov3_l")``.
    ``install_hint`` is shown when no builder is registered.
    """
    if not isinstance(source, str) or not source:
        raise ValueError(f"source must be a non-empty string, got {source!r}")
    if not callable(builder):
        raise TypeError(f"builder must be callable, got {type(builder).__name__}")
    _ADAPTERS[source] = builder
    if install_hint:
        _ADAPTER_HINTS[source] = install_hint
    return builder


def adapter_hint(source: str, hint: str) -> None:
    """Record how to make ``source`` available, for the "not installed" error."""
    _ADAPTER_HINTS[source] = hint


def register_encoder(
    spec: EncoderSpec, *, overwrite: bool = False
) -> Callable[[Builder], Builder]:
    """Register ``spec`` under ``spec.name``; usable directly or as a decorator.

    ``register_encoder(spec)`` builds through the adapter of ``spec.source``;
    ``@register_encoder(spec)`` on ``def build(spec, *, weights, pretrained) -> nn.Module``
    gives this spec its own builder. Registering an identical spec again is a no-op; a
    different spec under a taken name raises ``ValueError`` unless ``overwrite=True``.
    """
    if not isinstance(spec, EncoderSpec):
        raise TypeError(f"spec must be an EncoderSpec, got {type(spec).__name__}")
    old = _SPECS.get(spec.name)
    if old is not None and old != spec and not overwrite:
        raise ValueError(
            f"encoder name {spec.name!r} is already registered with a different spec "
            f"({old.fingerprint} vs {spec.fingerprint}); pass overwrite=True to replace it"
        )
    _SPECS[spec.name] = spec

    def decorate(builder: Builder) -> Builder:
        if not callable(builder):
            raise TypeError(f"builder must be callable, got {type(builder).__name__}")
        _SPEC_BUILDERS[spec.name] = builder
        return builder

    return decorate


_PANELS: dict[str, tuple[str, ...]] = {}


def register_panel(name: str, encoders: list[str] | tuple[str, ...]) -> None:
    """Register a named list of encoder names (e.g. ``"paper_train10"``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"panel name must be a non-empty string, got {name!r}")
    if isinstance(encoders, str) or not encoders or not all(isinstance(e, str) for e in encoders):
        raise TypeError(f"encoders must be a non-empty sequence of names, got {encoders!r}")
    _PANELS[name] = tuple(encoders)


def panel(name: str) -> list[str]:
    """Encoder names of the panel ``name`` (``paper_train10``, ``paper_heldout4``, ``paper14``,
    ``offline_cnn``, ...); ``ValueError`` listing the known panels otherwise."""
    _load_plugins()
    if name not in _PANELS:
        raise ValueError(f"panel must be one of {sorted(_PANELS)}, got {name!r}")
    return list(_PANELS[name])


def list_panels() -> list[str]:
    """Sorted names of registered panels."""
    _load_plugins()
    return sorted(_PANELS)


def _load_plugins() -> None:
    for module in _PLUGIN_MODULES:
        importlib.import_module(module)


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of registered encoders (optionally only ``"image"`` or ``"text"``)."""
    _load_plugins()
    if modality is not None:
        check_choice("modality", modality, MODALITIES)
    return sorted(n for n, s in _SPECS.items() if modality is None or s.modality == modality)


def get_spec(name: str) -> EncoderSpec:
    """The registered spec for ``name``; ``ValueError`` listing the known names otherwise."""
    _load_plugins()
    if not isinstance(name, str) or name not in _SPECS:
        raise ValueError(f"encoder must be one of {sorted(_SPECS)}, got {name!r}")
    return _SPECS[name]


class MissingWeightsError(FileNotFoundError):
    """A pretrained encoder's weights are not where the user said (or nowhere said)."""


def find_weights(spec: EncoderSpec, weights: str | os.PathLike[str] | None) -> Path:
    """Locate user-supplied weights for ``spec`` (a file or a directory).

    Order: the explicit ``weights`` path; else ``$REPMATCH_WEIGHTS/<spec.weights>``; else a
    Hugging Face hub-cache folder ``$REPMATCH_WEIGHTS/models--<org>--<repo>`` (its newest
    snapshot). Raises :class:`MissingWeightsError` naming the file and how to provide it.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if path.exists():
            return path
        raise MissingWeightsError(
            f"weights for encoder {spec.name!r}: {str(path)!r} does not exist; pass an existing "
            f"file or local Hugging Face directory as create({spec.name!r}, weights=...)"
        )
    hint = spec.weights or spec.checkpoint
    root = os.environ.get("REPMATCH_WEIGHTS")
    if root:
        candidate = Path(root).expanduser() / hint
        if candidate.exists():
            return candidate
        hub = Path(root).expanduser() / ("models--" + hint.replace("/", "--")) / "snapshots"
        if hub.is_dir():
            snaps = sorted(hub.iterdir(), key=lambda p: p.stat().st_mtime)
            if snaps:
                return snaps[-1]
    where = f"$REPMATCH_WEIGHTS={root!r}" if root else "REPMATCH_WEIGHTS is not set"
    raise MissingWeightsError(
        f"no weights for encoder {spec.name!r}: expected {hint!r} ({spec.source} checkpoint "
        f"{spec.checkpoint!r}); {where}. Provide it with create({spec.name!r}, weights='/path/to/"
        f"{Path(hint).name}') or put it at $REPMATCH_WEIGHTS/{hint} (a Hugging Face cache "
        f"folder models--{hint.replace('/', '--')} also works); use pretrained=False for random "
        "weights."
    )


def _builder_for(spec: EncoderSpec) -> Builder:
    if spec.name in _SPEC_BUILDERS:
        return _SPEC_BUILDERS[spec.name]
    if spec.source in _ADAPTERS:
        return _ADAPTERS[spec.source]
    hint = _ADAPTER_HINTS.get(spec.source, "")
    raise ModuleNotFoundError(
        f"encoder {spec.name!r} needs the {spec.source!r} adapter, which is not installed. "
        + (hint + " " if hint else "")
        + f"Register one with repmatch.encoders.register_adapter({spec.source!r}, builder)."
    )


def create(name: str, **overrides: Any) -> Encoder:
    """Instantiate the encoder registered as ``name``, frozen (eval mode, no parameter grads).

    Keyword overrides: any :class:`EncoderSpec` field (a changed field changes the
    fingerprint), plus ``weights`` (path to a file or local HF directory; default: the
    package's bundled weights or ``REPMATCH_WEIGHTS``), ``pretrained`` (``False`` = random
    init, no files needed), ``device`` (``"meta"`` implies ``pretrained=False``) and ``dtype``.
    """
    from .base import ImageEncoder, TextEncoder

    spec = get_spec(name)
    weights = overrides.pop("weights", None)
    pretrained = overrides.pop("pretrained", True)
    device = overrides.pop("device", None)
    dtype = overrides.pop("dtype", None)
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {pretrained!r}")
    fields = {f.name for f in dataclasses.fields(EncoderSpec)} - {"name", "weights"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"create() got unknown overrides {unknown}; accepted: weights, pretrained, device, "
            f"dtype or EncoderSpec fields {sorted(fields)}"
        )
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    meta = device is not None and torch.device(device).type == "meta"
    if meta:
        pretrained = False
    builder = _builder_for(spec)
    if meta:
        with torch.device("meta"):
            backbone = builder(spec, weights=None, pretrained=False)
    else:
        path = Path(weights).expanduser() if weights is not None else None
        if path is not None and not path.exists():
            find_weights(spec, path)  # raises the uniform message
        backbone = builder(spec, weights=path, pretrained=pretrained)
    wrapper = ImageEncoder if spec.modality == "image" else TextEncoder
    encoder = wrapper(spec, backbone, pretrained=pretrained)
    if device is not None and not meta:
        encoder = encoder.to(device)
    if dtype is not None:
        encoder = encoder.to(dtype)
    return encoder.freeze()
