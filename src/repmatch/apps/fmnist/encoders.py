"""In-project Fashion-MNIST encoders (the "FID for MNIST" practice): small nets trained here.

Two encoders, registered with ``source="in-project"``:

- ``fmnist_classifier``: a 3-conv supervised CNN; feature = its penultimate layer (128-d,
  after ReLU), the layer FID-style MNIST metrics read;
- ``fmnist_autoencoder``: a convolutional autoencoder; feature = its 64-d linear bottleneck.

Input contract (as every image encoder, via :func:`repmatch.represent.preprocess`): images
``(N, 1|3, H, W)`` in [0, 1], any size -> bicubic antialiased resize to 28x28 ("squash": the
whole image, aspect not kept) -> ``(x - 0.2860) / 0.3530`` (the train split's pixel mean and
std) -> grayscale by ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` inside the backbone
(the same weights Pillow's ``convert("L")`` uses; a grayscale image, broadcast to three equal
channels, passes through unchanged because the weights sum to 1).

Weights are never shipped: ``repmatch fmnist-encoders`` trains both on the 60k train split,
seeded, and writes ``<name>.safetensors`` atomically to ``$REPMATCH_CACHE/fmnist/`` (default
``~/.cache/repmatch/fmnist/``). The training recipe is part of the spec (``options``), hence of
its fingerprint, and is recorded in the weight file; loading weights trained with another
recipe raises instead of silently naming a different feature space.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from ...io import atomic_save_safetensors, cache_dir
from ...progress import bar
from ...validate import check_choice, check_positive
from ...data import FashionMNIST
from ...represent.preprocessing import preprocess
from ...represent.registry import (
    EncoderSpec,
    MissingWeightsError,
    get_spec,
    register_encoder,
    register_panel,
)

FMNIST_MEAN = 0.2860
FMNIST_STD = 0.3530
LUMA = (0.299, 0.587, 0.114)
FMNIST_ENCODERS = ("fmnist_classifier", "fmnist_autoencoder")


@dataclass(frozen=True, kw_only=True)
class FmnistTrainConfig:
    """The training recipe of the Fashion-MNIST encoders (Adam, cosine-decayed learning rate).

    ``train_rows=None`` uses the whole 60k train split. The defaults are the registered
    recipe: weights trained otherwise only load with ``create(name, options=cfg.recipe())``.
    """

    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    train_rows: int | None = None

    def __post_init__(self) -> None:
        check_positive("epochs", self.epochs, integer=True)
        check_positive("batch_size", self.batch_size, integer=True)
        check_positive("lr", self.lr)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.train_rows is not None:
            check_positive("train_rows", self.train_rows, integer=True)

    def recipe(self) -> dict[str, Any]:
        """The recipe as a spec ``options`` mapping (``train_rows`` 0 = the whole split)."""
        out = asdict(self)
        out["train_rows"] = out["train_rows"] or 0
        return out


class Grayscale(nn.Module):
    """``(N, 3, H, W) -> (N, 1, H, W)``: BT.601 luma (exact for three equal channels)."""

    weight: torch.Tensor  # a buffer (register_buffer)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight).sum(dim=1, keepdim=True)


class FmnistClassifier(nn.Module):
    """Two stride-2 conv+BN+ReLU (28 -> 14 -> 7) -> fc 128 (the feature) -> fc 10 (logits).

    Stride-2 convolutions instead of conv+pool: a third of the CPU training time for the
    same accuracy class (~91% on the test split).
    """

    def __init__(self, dim: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.gray = Grayscale()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc1 = nn.Linear(64 * 7 * 7, dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(N, 3, 28, 28)`` -> penultimate features ``(N, dim)``."""
        return F.relu(self.fc1(self.conv(self.gray(x))))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self(x)))


class FmnistAutoencoder(nn.Module):
    """Strided-conv encoder -> linear 64-d bottleneck (the feature) -> transposed-conv decoder."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.gray = Grayscale()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 7 * 7, dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(N, 3, 28, 28)`` -> bottleneck ``(N, dim)``."""
        return self.encoder(self.gray(x))

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared error between the decoded bottleneck and the normalised gray input."""
        target = self.gray(x)
        return F.mse_loss(self.decoder(self.encoder(target)), target)


_MODELS: dict[str, type[FmnistClassifier] | type[FmnistAutoencoder]] = {
    "fmnist_classifier": FmnistClassifier, "fmnist_autoencoder": FmnistAutoencoder
}


def fmnist_cache_dir() -> Path:
    """``$REPMATCH_CACHE/fmnist`` (default ``~/.cache/repmatch/fmnist``): where weights live."""
    return cache_dir() / "fmnist"


def _spec(name: str, dim: int, pooling: str, description: str) -> EncoderSpec:
    return EncoderSpec(
        name=name,
        source="in-project",
        checkpoint=f"{name}.safetensors",
        dim=dim,
        input_size=28,
        mean=(FMNIST_MEAN,) * 3,
        std=(FMNIST_STD,) * 3,
        interpolation="bicubic",
        antialias=True,
        crop_pct=1.0,
        crop_mode="squash",
        pooling=pooling,
        options=FmnistTrainConfig().recipe(),
        description=description,
    )


def _build(spec: EncoderSpec, *, weights: Path | None, pretrained: bool) -> nn.Module:
    model = _MODELS[spec.name](dim=spec.dim)
    if not pretrained:
        return model
    path = weights if weights is not None else fmnist_cache_dir() / spec.checkpoint
    if not path.is_file():
        raise MissingWeightsError(
            f"weights for encoder {spec.name!r}: {str(path)!r} does not exist. Produce it with "
            "`repmatch fmnist-encoders` (trains the Fashion-MNIST encoders on CPU in a few "
            f"minutes; set REPMATCH_CACHE to relocate the cache), pass create({spec.name!r}, "
            "weights='/path/to/file.safetensors'), or use pretrained=False for random weights"
        )

    with safe_open(str(path), framework="pt") as f:
        recipe = json.loads((f.metadata() or {}).get("recipe", "null"))
    if recipe != spec.option_dict:
        raise ValueError(
            f"weights: {str(path)!r} was trained with recipe {recipe}, but the spec of "
            f"{spec.name!r} names recipe {spec.option_dict}; retrain with `repmatch fmnist-encoders` "
            "using that recipe, or create the encoder with options=<the file's recipe>"
        )
    model.load_state_dict(load_file(str(path)))
    return model


register_encoder(
    _spec("fmnist_classifier", 128, "output:fc1", "Supervised Fashion-MNIST CNN, penultimate layer (in-project).")
)(_build)
register_encoder(
    _spec("fmnist_autoencoder", 64, "output:bottleneck", "Fashion-MNIST conv autoencoder bottleneck (in-project).")
)(_build)
register_panel("fmnist", list(FMNIST_ENCODERS))


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * step / total))


def fit_fmnist_encoder(
    name: str, config: FmnistTrainConfig, images: torch.Tensor, labels: torch.Tensor, *, progress: bool = False
) -> nn.Module:
    """Train a fresh ``name`` model on uint8 ``images (N, 1, 28, 28)`` and int64 ``labels (N,)``.

    Deterministic for a given recipe on a given machine: seeded init and shuffling, no data
    augmentation. Classifier: cross-entropy; autoencoder: reconstruction MSE. Adam with a
    cosine-decayed learning rate. Returns the model in eval mode.
    """

    spec = get_spec(check_choice("name", name, FMNIST_ENCODERS))
    torch.manual_seed(config.seed)
    model = _MODELS[name](dim=spec.dim)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    total = config.epochs * math.ceil(len(images) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine(s, total))
    shown = bar(total=total, desc=f"train {name}", unit="step", enabled=progress)
    for _ in range(config.epochs):
        order = torch.randperm(len(images), generator=gen)
        for b in range(0, len(images), config.batch_size):
            idx = order[b : b + config.batch_size]
            x = preprocess(images[idx].float().div_(255.0), spec)
            if isinstance(model, FmnistClassifier):  # i.e. name == "fmnist_classifier"
                loss = F.cross_entropy(model.logits(x), labels[idx])
            else:
                loss = model.reconstruction_loss(x)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} for {name!r}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            shown.update()
            shown.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    shown.close()
    return model.eval()


def train_fmnist_encoder(
    name: str,
    config: FmnistTrainConfig = FmnistTrainConfig(),
    *,
    out_dir: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``name`` on the Fashion-MNIST train split, test it, write ``<out_dir>/<name>.safetensors``.

    ``out_dir`` defaults to :func:`fmnist_cache_dir` (where :func:`create` looks). The whole
    model (including the classifier head / decoder) is saved atomically, with the recipe and
    the report in the safetensors metadata. Returns the report: ``path``, ``seconds``
    (training), and ``test_accuracy`` (classifier) or ``test_mse`` (autoencoder, in
    normalised pixel units).
    """

    spec = get_spec(check_choice("name", name, FMNIST_ENCODERS))
    train, test = FashionMNIST("train", root=root), FashionMNIST("test", root=root)
    rows = config.train_rows or len(train)
    images, labels = torch.from_numpy(train.images[:rows]), torch.from_numpy(train.labels[:rows])
    t0 = time.perf_counter()
    model = fit_fmnist_encoder(name, config, images, labels, progress=progress)
    report: dict[str, Any] = {"name": name, "seconds": round(time.perf_counter() - t0, 1), "train_rows": len(images)}
    report.update(evaluate_fmnist_encoder(model, name, test))
    path = (Path(out_dir) if out_dir is not None else fmnist_cache_dir()) / spec.checkpoint
    metadata = {"recipe": json.dumps(config.recipe(), sort_keys=True), "report": json.dumps(report)}
    atomic_save_safetensors(path, model.state_dict(), metadata=metadata)
    report["path"] = str(path)
    return report


@torch.inference_mode()
def evaluate_fmnist_encoder(model: nn.Module, name: str, test: Any, batch_size: int = 1000) -> dict[str, float]:
    """Test-split metric: ``test_accuracy`` of the classifier, ``test_mse`` of the autoencoder."""
    spec = get_spec(name)
    images, labels = torch.from_numpy(test.images), torch.from_numpy(test.labels)
    correct, sq, n = 0, 0.0, 0
    for b in range(0, len(images), batch_size):
        x = preprocess(images[b : b + batch_size].float().div_(255.0), spec)
        # name says which model this is (nn.Module types other attributes as Tensor | Module).
        if name == "fmnist_classifier":
            logits = cast(FmnistClassifier, model).logits(x)
            correct += int((logits.argmax(1) == labels[b : b + batch_size]).sum())
        else:
            sq += float(cast(FmnistAutoencoder, model).reconstruction_loss(x)) * len(x)
        n += len(x)
    return {"test_accuracy": correct / n} if name == "fmnist_classifier" else {"test_mse": sq / n}
