"""Fashion-MNIST networks: shapes, ranges, contracts, per-sample independence, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repmatch.apps.fmnist.conv_generator import ConvGenerator, ConvGeneratorConfig
from repmatch.apps.fmnist.unet import (
    VelocityUNet,
    VelocityUNetConfig,
    velocity_unet_cpu,
    velocity_unet_gpu,
    velocity_unet_tiny,
)
from repmatch.generators import (
    FewStepGenerator,
    sample_per_class,
    write_sample_grid,
    write_samples_npz,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize_zero_inits(model: torch.nn.Module) -> None:
    # The output layers are zero-initialised on purpose; tests that need a non-trivial
    # function of the inputs fill every parameter with noise first.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("make", [velocity_unet_tiny, velocity_unet_cpu])
def test_velocity_unet_shape_and_zero_init(make):
    model = VelocityUNet(make())
    x = torch.randn(3, 1, 28, 28)
    v = model(x, torch.rand(3), torch.tensor([0, 5, 9]))
    assert v.shape == x.shape
    # Zero-initialised output conv: an untrained network predicts exactly v = 0.
    assert torch.count_nonzero(v) == 0


def test_velocity_unet_gpu_preset_builds_and_runs():
    model = VelocityUNet(velocity_unet_gpu()).eval()
    _randomize_zero_inits(model)
    v = model(torch.randn(2, 1, 28, 28), 0.5, torch.tensor([1, 2]))
    assert v.shape == (2, 1, 28, 28) and torch.isfinite(v).all()


def test_velocity_unet_uses_time_and_class_and_is_per_sample():
    torch.manual_seed(0)
    model = VelocityUNet(VelocityUNetConfig(channels=(8, 16), attention=True)).eval()
    _randomize_zero_inits(model)
    x = torch.randn(4, 1, 28, 28)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    c = torch.tensor([0, 3, 3, 9])
    v = model(x, t, c)
    assert not torch.allclose(v, model(x, t.flip(0), c))
    assert not torch.allclose(v, model(x, t, (c + 1) % 10))
    # GroupNorm only: each row must not depend on its batch-mates (gradient caching relies on it).
    rows = torch.cat([model(x[i : i + 1], t[i : i + 1], c[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(rows, v, rtol=1e-5, atol=1e-5)
    # A scalar t broadcasts to every row.
    torch.testing.assert_close(model(x, 0.3, c), model(x, torch.full((4,), 0.3), c))


def test_velocity_unet_gradients_reach_every_parameter():
    model = VelocityUNet(velocity_unet_tiny())
    _randomize_zero_inits(model)
    model(torch.randn(2, 1, 28, 28), torch.rand(2), torch.tensor([1, 2])).square().sum().backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_unconditional_velocity_unet():
    model = VelocityUNet(VelocityUNetConfig(channels=(8, 16), num_classes=0))
    assert model(torch.randn(2, 1, 28, 28), torch.rand(2), None).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="condition must be None"):
        model(torch.randn(2, 1, 28, 28), torch.rand(2), torch.tensor([0, 1]))


def test_conv_generator_contract():
    cfg = ConvGeneratorConfig(latent_dim=16, width=16)
    g = ConvGenerator(cfg)
    assert g.noise_shape == (16,)
    noise = torch.randn(6, *g.noise_shape) * 5  # large inputs must still land in [0, 1]
    labels = torch.arange(6)
    img = g(noise, labels)
    assert img.shape == (6, 1, 28, 28)
    assert img.min() >= 0 and img.max() <= 1
    assert not torch.allclose(img, g(noise, (labels + 1) % 10))
    rows = torch.cat([g(noise[i : i + 1], labels[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(rows, img, rtol=1e-5, atol=1e-6)
    img.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def test_conv_generator_default_and_other_sizes():
    g = ConvGenerator()
    assert g(torch.randn(2, *g.noise_shape), torch.tensor([0, 9])).shape == (2, 1, 28, 28)
    rgb = ConvGenerator(
        ConvGeneratorConfig(latent_dim=8, width=8, image_size=32, image_channels=3, num_classes=0)
    )
    assert rgb(torch.randn(2, 8)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": (12, 16)}, "multiples of 8"),
        ({"channels": (8, 16, 16, 32)}, "divisible by"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_classes": -1}, "num_classes"),
        ({"blocks_per_level": 0}, "blocks_per_level"),
    ],
)
def test_velocity_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VelocityUNetConfig(**kwargs)


def test_config_round_trip():
    cfg = velocity_unet_gpu()
    assert VelocityUNetConfig.from_dict(cfg.to_dict()) == cfg
    assert ConvGeneratorConfig(**ConvGeneratorConfig(width=32).to_dict()) == ConvGeneratorConfig(
        width=32
    )


def test_bad_inputs_name_the_parameter():
    model = VelocityUNet(velocity_unet_tiny())
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="x_t must have shape"):
        model(torch.randn(2, 28, 28), torch.rand(2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="t must be"):
        model(x, torch.rand(3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        model(x, torch.rand(2), torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="integer class labels"):
        model(x, torch.rand(2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model(x, torch.rand(2), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model(x, torch.rand(2), [0, 1])
    g = ConvGenerator(ConvGeneratorConfig(latent_dim=8, width=8))
    with pytest.raises(ValueError, match=r"noise must have shape \(N, 8\)"):
        g(torch.randn(2, 1, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="width"):
        ConvGeneratorConfig(width=12)


def test_sample_per_class_uses_matched_noise_across_generators(tmp_path):
    class Echo(torch.nn.Module):
        """Returns its noise (shifted into [0, 1]) and records the labels it was given."""

        noise_shape = (1, 28, 28)

        def __init__(self) -> None:
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, noise, condition):
            self.seen = condition
            return noise.sigmoid() + self.anchor

    echo = Echo()
    images, labels = sample_per_class(echo, num_classes=3, per_class=4, seed=5)
    assert images.shape == (12, 1, 28, 28)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(echo.seen, labels)
    again, _ = sample_per_class(echo, num_classes=3, per_class=4, seed=5)
    assert torch.equal(images, again)
    other, _ = sample_per_class(echo, num_classes=3, per_class=4, seed=6)
    assert not torch.equal(images, other)
    # A velocity model's few-step sampler sees the same noise for the same seed.
    teacher = VelocityUNet(velocity_unet_tiny()).eval()
    onestep = FewStepGenerator(teacher, 1, (1, 28, 28))
    out, _ = sample_per_class(onestep, num_classes=3, per_class=4, seed=5)
    noise = torch.logit(images.clamp(1e-6, 1 - 1e-6))
    torch.testing.assert_close(out, ((noise + 1) / 2).clamp(0, 1), rtol=1e-4, atol=1e-4)
    path = write_sample_grid(ConvGenerator(), tmp_path / "g.png", per_class=3)
    from PIL import Image

    assert Image.open(path).size == (2 * (3 * 30 + 2), 2 * (10 * 30 + 2))
    with pytest.raises(TypeError, match="noise_shape"):
        sample_per_class(torch.nn.Linear(2, 2))


def test_write_samples_npz_is_chunk_invariant_and_readable(tmp_path):
    from repmatch.data import NpzImages

    g = ConvGenerator(ConvGeneratorConfig(latent_dim=8, width=8)).eval()
    a = write_samples_npz(g, tmp_path / "a.npz", num_samples=23, seed=3, batch_size=7)
    b = write_samples_npz(g, tmp_path / "b.npz", num_samples=23, seed=3, batch_size=50)
    with np.load(a) as fa, np.load(b) as fb:
        np.testing.assert_array_equal(fa["images"], fb["images"])
        np.testing.assert_array_equal(fa["labels"], np.arange(23) % 10)
        assert fa["images"].dtype == np.uint8 and fa["images"].shape == (23, 1, 28, 28)
        # The first rows are exactly the generator applied to the seeded stream's first draws.
        noise = torch.randn((23, 8), generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            direct = g(noise, torch.arange(23) % 10)
        np.testing.assert_array_equal(
            fa["images"], (direct * 255 + 0.5).floor().to(torch.uint8).numpy()
        )
    ds = NpzImages(a)  # the data package's reader (what `repmatch eval` uses) accepts the file
    image, label = ds[11]
    assert len(ds) == 23 and label == 1
    torch.testing.assert_close(image, (direct[11] * 255 + 0.5).floor() / 255)
