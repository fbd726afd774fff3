"""Encoder registry: one :class:`EncoderSpec` per name, one builder per source.

A spec carries everything that fixes a feature space as data (checkpoint, input resolution,
normalisation, resize filter, crop, pooling, output dimension), like timm's pretrained configs,
and :attr:`EncoderSpec.fingerprint` names that exact feature space: references and metrics
store it and refuse features whose fingerprint differs.

How a spec becomes a module:

The specs, the adapters and the panels are :class:`repmatch.registry.Registry` instances
(:data:`ENCODERS`, :data:`ADAPTERS`, :data:`PANELS`); installed packages add encoders through
the entry-point group :data:`PLUGIN_GROUP` (``repmatch.encoders``), and a package whose module
fails to import is warned about by name without breaking the other encoders.

* ``register_adapter(source, builder)`` says how to build every spec of one ``source``
  (``"timm"``, ``"onnx"``, ...); adapters import their library lazily.
* ``register_encoder(spec)`` registers a spec; used as a decorator,
  ``@register_encoder(spec)`` on a ``builder(spec, *, weights, pretrained) -> nn.Module`` gives
  that one spec its own builder (how in-project encoders are registered).

A builder returns a *backbone* mapping preprocessed inputs to ``(N, spec.dim)``; :func:`create`
wraps it in :class:`~repmatch.represent.base.ImageEncoder` (which resizes and normalises per spec
inside ``forward``) or :class:`~repmatch.represent.base.TextEncoder`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..registry import Registry
from ..validate import check_choice
from .base import Encoder, ImageEncoder, TextEncoder
from .spec import MODALITIES, EncoderSpec

#: Entry-point group through which installed packages register their own encoders: an entry
#: naming a module that calls register_encoder when imported (how the Fashion-MNIST application
#: adds its in-project encoders), or ``name = "pkg.module:SPEC"`` for one :class:`EncoderSpec`
#: built by its source's adapter. The library itself names no application.
PLUGIN_GROUP = "repmatch.encoders"


class Builder(Protocol):
    """Builds a backbone: preprocessed ``(N, 3, H, W)`` (or ``list[str]``) -> ``(N, spec.dim)``."""

    def __call__(self, spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module: ...


def _check_spec(key: str, obj: Any) -> None:
    if not isinstance(obj, EncoderSpec):
        raise TypeError(f"{key}: expected an EncoderSpec, got {type(obj).__name__}")


#: Encoder name -> :class:`EncoderSpec`. The library's specs and adapters register when their
#: modules are imported, on the first lookup, so that ``import repmatch.represent`` stays cheap.
ENCODERS: Registry[EncoderSpec] = Registry(
    "encoder", group=PLUGIN_GROUP, check=_check_spec,
    modules=tuple(f"{__package__}.{m}" for m in ("adapters", "paper", "offline")),
)
#: Encoder name -> the builder of that one spec (in-project encoders; filled by
#: ``@register_encoder``, read by :func:`create` alone).
_SPEC_BUILDERS: dict[str, Builder] = {}
#: Spec source (``"timm"``, ``"onnx"``, ...) -> the builder of every spec of that source.
ADAPTERS: Registry[Builder] = Registry("encoder adapter", group="")
#: Panel name -> encoder names.
PANELS: Registry[tuple[str, ...]] = Registry("panel", group="")
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
    ADAPTERS.register(source, builder, overwrite=True)
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
    try:
        ENCODERS.register(spec.name, spec, overwrite=overwrite)
    except ValueError:
        old = ENCODERS.get(spec.name)
        raise ValueError(
            f"encoder name {spec.name!r} is already registered with a different spec "
            f"({old.fingerprint} vs {spec.fingerprint}); pass overwrite=True to replace it"
        ) from None

    def decorate(builder: Builder) -> Builder:
        if not callable(builder):
            raise TypeError(f"builder must be callable, got {type(builder).__name__}")
        _SPEC_BUILDERS[spec.name] = builder
        return builder

    return decorate


def register_panel(name: str, encoders: list[str] | tuple[str, ...]) -> None:
    """Register a named list of encoder names (e.g. ``"paper_train10"``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"panel name must be a non-empty string, got {name!r}")
    if isinstance(encoders, str) or not encoders or not all(isinstance(e, str) for e in encoders):
        raise TypeError(f"encoders must be a non-empty sequence of names, got {encoders!r}")
    PANELS.register(name, tuple(encoders), overwrite=True)


def panel(name: str) -> list[str]:
    """Encoder names of the panel ``name`` (``paper_train10``, ``paper_heldout4``, ``paper14``,
    ``offline_cnn``, ...); ``ValueError`` listing the known panels otherwise."""
    ENCODERS.load_plugins()  # the panels are registered beside the specs
    return list(PANELS.get(name))


def list_panels() -> list[str]:
    """Sorted names of registered panels."""
    ENCODERS.load_plugins()
    return PANELS.names()


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of registered encoders (optionally only ``"image"`` or ``"text"``; listing
    by modality loads the specs of plugin entries, and skips one that fails to load)."""
    names = ENCODERS.names()
    if modality is None:
        return names
    check_choice("modality", modality, MODALITIES)
    kept = []
    for name in names:
        try:
            if ENCODERS.get(name).modality == modality:
                kept.append(name)
        except ImportError:  # a broken plugin, already warned about by name
            continue
    return kept


def get_spec(name: str) -> EncoderSpec:
    """The registered spec for ``name`` (or the one ``"module:attribute"`` names); ``ValueError``
    listing the known names otherwise. A plugin that failed to load breaks only its own names."""
    return ENCODERS.get(name)


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
    if spec.source in ADAPTERS:
        return ADAPTERS.get(spec.source)
    hint = _ADAPTER_HINTS.get(spec.source, "")
    raise ModuleNotFoundError(
        f"encoder {spec.name!r} needs the {spec.source!r} adapter, which is not installed. "
        + (hint + " " if hint else "")
        + f"Register one with repmatch.represent.register_adapter({spec.source!r}, builder)."
    )


def resolve_spec(
    name: str, *, caller: str = "resolve_spec()", accepted: str = "", **overrides: Any
) -> EncoderSpec:
    """The spec registered as ``name`` with ``overrides`` (:class:`EncoderSpec` fields) applied,
    as :func:`create` builds it; an unknown override raises ``TypeError`` naming ``caller`` and
    listing the fields (and ``accepted``, the caller's own keywords)."""
    spec = get_spec(name)
    fields = {f.name for f in dataclasses.fields(EncoderSpec)} - {"name", "weights"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"{caller} got unknown overrides {unknown}; accepted: {accepted + ' or ' if accepted else ''}"
            f"EncoderSpec fields {sorted(fields)}"
        )
    return dataclasses.replace(spec, **overrides) if overrides else spec


def create(name: str, **overrides: Any) -> Encoder:
    """Instantiate the encoder registered as ``name``, frozen (eval mode, no parameter grads).

    Keyword overrides: any :class:`EncoderSpec` field (a changed field changes the
    fingerprint), plus ``weights`` (path to a file or local HF directory; default: the
    package's bundled weights or ``REPMATCH_WEIGHTS``), ``pretrained`` (``False`` = random
    init, no files needed), ``device`` (``"meta"`` implies ``pretrained=False``) and ``dtype``.
    """
    weights = overrides.pop("weights", None)
    pretrained = overrides.pop("pretrained", True)
    device = overrides.pop("device", None)
    dtype = overrides.pop("dtype", None)
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {pretrained!r}")
    spec = resolve_spec(
        name, caller="create()", accepted="weights, pretrained, device, dtype", **overrides
    )
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
