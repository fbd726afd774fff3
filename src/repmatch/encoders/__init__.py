"""Encoder registry, preprocessing and the frozen encoder battery.

    >>> import repmatch.encoders as enc
    >>> enc.list()                         # registered names
    >>> e = enc.create("efficientnet_lite0")
    >>> e(images).shape                    # images (N, 3, H, W) in [0, 1] -> (N, e.spec.dim)
    >>> enc.panel("paper14")               # the paper's 14-encoder panel (Table 5)
    >>> battery = enc.EncoderBattery(enc.panel("offline_cnn"))
    >>> battery(images)                    # {name: (N, D)}, gradients flow to images
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._preprocess import preprocess
    from ._registry import (
        EncoderSpec,
        MissingWeightsError,
        create,
        find_weights,
        get_spec,
        list_encoders,
        list_panels,
        panel,
        register_adapter,
        register_encoder,
        register_panel,
    )
    from ._registry import list_encoders as list
    from .base import Encoder, ImageEncoder, TextEncoder
    from .battery import EncoderBattery

# Lazy (see repmatch._lazy): the CLI registers `fmnist-encoders` from this package without
# importing torch.
_EXPORTS = {
    **dict.fromkeys(
        ("EncoderSpec", "MissingWeightsError", "create", "find_weights", "get_spec", "list_encoders",
         "list_panels", "panel", "register_adapter", "register_encoder", "register_panel"),
        "._registry",
    ),
    "list": "._registry:list_encoders",
    **dict.fromkeys(("Encoder", "ImageEncoder", "TextEncoder"), ".base"),
    "EncoderBattery": ".battery",
    "preprocess": "._preprocess",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Encoder",
    "EncoderBattery",
    "EncoderSpec",
    "ImageEncoder",
    "MissingWeightsError",
    "TextEncoder",
    "create",
    "find_weights",
    "get_spec",
    "list",
    "list_encoders",
    "list_panels",
    "panel",
    "preprocess",
    "register_adapter",
    "register_encoder",
    "register_panel",
]
assert set(__all__) == set(_EXPORTS)  # one list of public names, checked at import
