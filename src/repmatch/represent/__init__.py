"""The representation axis (paper §3.2–3.3): encoder specs, preprocessing, the registry and
its adapters, the offline and paper encoders, the frozen battery and joint features (eq. 4).

    >>> import repmatch.represent as rep
    >>> rep.list()                         # registered names
    >>> e = rep.create("efficientnet_lite0")
    >>> e(images).shape                    # images (N, 3, H, W) in [0, 1] -> (N, e.spec.dim)
    >>> rep.panel("paper14")               # the paper's 14-encoder panel (Table 5)
    >>> battery = rep.EncoderBattery(rep.panel("offline_cnn"))
    >>> battery(images)                    # {name: (N, D)}, gradients flow to images
    >>> rep.inference_encoder("open_nsfw", "onnxruntime")  # same features, no gradient, faster
"""

from .base import Encoder, ImageEncoder, TextEncoder
from .battery import EncoderBattery
from .inference import INFERENCE_BACKENDS, inference_encoder
from .joint import ConditionPool, joint_features, one_hot_embedding
from .preprocessing import preprocess
from .registry import (
    PLUGIN_GROUP,
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
    resolve_spec,
)
from .registry import list_encoders as list  # the registry's short name, like timm.list_models
from .spec import EncoderSpec

__all__ = [
    "INFERENCE_BACKENDS",
    "PLUGIN_GROUP",
    "ConditionPool",
    "Encoder",
    "EncoderBattery",
    "EncoderSpec",
    "ImageEncoder",
    "MissingWeightsError",
    "TextEncoder",
    "create",
    "find_weights",
    "get_spec",
    "inference_encoder",
    "joint_features",
    "list",
    "list_encoders",
    "list_panels",
    "one_hot_embedding",
    "panel",
    "preprocess",
    "register_adapter",
    "register_encoder",
    "register_panel",
    "resolve_spec",
]
