"""Encoders for feature extraction without gradient: one feature space, a faster runtime.

Features, floors, references and evaluation never differentiate through an encoder, so an
encoder may run there on an inference-only backend. A backend runs the encoder's own graph and
weights: the spec, the preprocessing and hence the fingerprint are unchanged, and the features
agree with :func:`repmatch.represent.create`'s within float32 rounding (tests check it on real
images), as features of one encoder at two batch sizes do.

* ``"torch"``: :func:`repmatch.represent.create` itself (differentiable).
* ``"onnxruntime"``: encoders with an ONNX graph (``source="onnx"``: ``open_nsfw``) run the cut
  graph that ``create`` converts with onnx2torch in onnxruntime on the CPU instead (faster on
  a CPU: ``benchmarks/bench_eval.py``, figures in ``docs/encoders.md``), and skip the conversion;
  every other encoder is built by ``create`` as with ``"torch"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..validate import check_choice
from .base import Encoder, ImageEncoder
from .offline import onnxruntime_backbone
from .registry import create, resolve_spec

INFERENCE_BACKENDS = ("torch", "onnxruntime")


def inference_encoder(
    name: str,
    backend: str = "torch",
    *,
    weights: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    **overrides: Any,
) -> Encoder:
    """The encoder ``name`` for extraction without gradient, on ``backend`` (module docstring).

    ``weights`` and ``overrides`` (:class:`EncoderSpec` fields) as for :func:`create`;
    ``threads``: onnxruntime's intra-op threads (default ``torch.get_num_threads()``). An
    onnxruntime encoder raises when asked for a gradient.
    """
    check_choice("backend", backend, INFERENCE_BACKENDS)
    spec = resolve_spec(name, caller="inference_encoder()", accepted="weights, threads", **overrides)
    if backend == "torch" or spec.source != "onnx":
        return create(name, weights=weights, **overrides)
    path = None if weights is None else Path(weights).expanduser()
    backbone = onnxruntime_backbone(spec, weights=path, threads=threads)
    return ImageEncoder(spec, backbone, pretrained=True).freeze()
