"""In-project Fashion-MNIST encoders: input contract, weights handling, tiny training through the real path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from repmatch.apps.fmnist.encoders import (
    FMNIST_ENCODERS,
    FMNIST_MEAN,
    FMNIST_STD,
    FmnistTrainConfig,
    Grayscale,
    fit_fmnist_encoder,
    fmnist_cache_dir,
    train_fmnist_encoder,
)
from repmatch.data import FashionMNIST, default_fmnist_root
from repmatch.represent import MissingWeightsError, create, get_spec

needs_fmnist = pytest.mark.skipif(
    not (default_fmnist_root() / "train-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST idx files not installed"
)
TINY = FmnistTrainConfig(epochs=1, batch_size=32, train_rows=256)


@needs_fmnist
def test_normalisation_constants_are_the_train_split_statistics() -> None:
    x = FashionMNIST("train").images.astype(np.float64) / 255
    assert abs(x.mean() - FMNIST_MEAN) < 5e-5 and abs(x.std() - FMNIST_STD) < 5e-5


def test_grayscale_matches_pillow_luma() -> None:
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64)
    ours = Grayscale()(torch.from_numpy(rgb).permute(2, 0, 1)[None].double())[0, 0].numpy()
    assert np.abs(ours - ref).max() <= 0.5 + 1e-6  # Pillow rounds to integers
    gray = torch.rand(2, 1, 5, 5)
    torch.testing.assert_close(Grayscale()(gray.expand(-1, 3, -1, -1)), gray)


@pytest.mark.parametrize("name", FMNIST_ENCODERS)
def test_input_contract(name: str) -> None:
    torch.manual_seed(0)
    enc = create(name, pretrained=False)
    spec = get_spec(name)
    assert spec.source == "in-project" and spec.input_size == (28, 28) and enc.fingerprint.endswith("~random")
    x = torch.rand(4, 1, 56, 56)
    feats = enc(x)
    assert feats.shape == (4, spec.dim)
    # Three equal channels are the grayscale image; any size is resized bicubic+antialias to 28.
    torch.testing.assert_close(enc(x.expand(-1, 3, -1, -1)), feats, rtol=1e-5, atol=1e-5)
    small = F.interpolate(x, size=(28, 28), mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(enc(small), feats, rtol=1e-5, atol=1e-5)
    manual = enc.backbone(((small - FMNIST_MEAN) / FMNIST_STD).expand(-1, 3, -1, -1))
    torch.testing.assert_close(manual, feats, rtol=1e-5, atol=1e-5)


def test_missing_weights_name_the_file_and_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPMATCH_CACHE", str(tmp_path))
    assert fmnist_cache_dir() == tmp_path / "fmnist"
    with pytest.raises(MissingWeightsError, match=r"fmnist_classifier\.safetensors.*repmatch fmnist-encoders"):
        create("fmnist_classifier")


@needs_fmnist
def test_tiny_training_through_the_real_path(tmp_path: Path) -> None:
    reports = {n: train_fmnist_encoder(n, TINY, out_dir=tmp_path, progress=False) for n in FMNIST_ENCODERS}
    assert reports["fmnist_classifier"]["test_accuracy"] > 0.3  # 8 steps on 256 images; chance is 0.1
    # A zero output scores E[x^2] of the normalised pixels, about 1 (mean 0, std 1 by construction).
    assert reports["fmnist_autoencoder"]["test_mse"] < 0.95
    for name in FMNIST_ENCODERS:
        path = tmp_path / f"{name}.safetensors"
        assert reports[name]["path"] == str(path)
        with pytest.raises(ValueError, match="recipe"):
            create(name, weights=path)  # the registered spec names the full recipe
        enc = create(name, weights=path, options=TINY.recipe())
        assert enc.fingerprint != get_spec(name).fingerprint and enc.pretrained
        x = torch.rand(3, 1, 28, 28)
        from safetensors.torch import load_file

        from repmatch.apps.fmnist.encoders import _MODELS

        model = _MODELS[name]()
        model.load_state_dict(load_file(str(path)))
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(enc(x), model((x - FMNIST_MEAN) / FMNIST_STD), rtol=1e-5, atol=1e-5)


@needs_fmnist
def test_training_is_reproducible() -> None:
    ds = FashionMNIST("test")
    images, labels = torch.from_numpy(ds.images[:96]), torch.from_numpy(ds.labels[:96])
    cfg = FmnistTrainConfig(epochs=1, batch_size=32)
    for name in FMNIST_ENCODERS:
        a = fit_fmnist_encoder(name, cfg, images, labels).state_dict()
        b = fit_fmnist_encoder(name, cfg, images, labels).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        c = fit_fmnist_encoder(name, FmnistTrainConfig(epochs=1, batch_size=32, seed=1), images, labels).state_dict()
        assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="epochs"):
        FmnistTrainConfig(epochs=0)


def test_cli_dry_run_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from repmatch.cli import main

    assert main(["fmnist-encoders", "--epochs", "1", "--out", "w", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recipe"] == {**FmnistTrainConfig().recipe(), "epochs": 1} and out["encoders"] == list(FMNIST_ENCODERS)
    with pytest.raises(ValueError, match="encoders"):
        main(["--debug", "fmnist-encoders", "--encoders", "fmnist_vae", "--dry-run"])


@pytest.mark.slow
@needs_fmnist
def test_cached_classifier_accuracy() -> None:
    path = fmnist_cache_dir() / "fmnist_classifier.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} absent: run `repmatch fmnist-encoders` first")
    enc = create("fmnist_classifier")
    test = FashionMNIST("test")
    x = torch.from_numpy(test.images).float() / 255
    with torch.no_grad():
        pred = torch.cat([enc.backbone.logits(enc.preprocess(c)).argmax(1) for c in x.split(1000)])
    assert (pred.numpy() == test.labels).mean() >= 0.89
