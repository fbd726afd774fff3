"""Encoder registry, preprocessing and the frozen encoder battery.

    >>> import repmatch.encoders as enc
    >>> enc.list()                         # registered names
    >>> e = enc.create("efficientnet_lite0")
    >>> e(images).shape                    # images (N, 3, H, W) in [0, 1] -> (N, e.spec.dim)
    >>> enc.panel("paper14")               # the paper's 14-encoder panel (Table 5)
    >>> battery = enc.EncoderBattery(enc.panel("offline_cnn"))
    >>> battery(images)                    # {name: (N, D)}, gradients flow to images
"""

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
from ._registry import list_encoders as list  # noqa: A001  (public name per the API: enc.list())
from .base import Encoder, ImageEncoder, TextEncoder
from .battery import EncoderBattery
from .preprocess import preprocess

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
