"""Pieces of the Fashion-MNIST job shared by its stages and by the ``fmnist`` training task:
the run-directory layout and the encoder battery (with the recipe's overrides)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ...represent import EncoderBattery, inference_encoder
from ...references import ClassCondition
from .encoders import FMNIST_ENCODERS, FmnistTrainConfig
from .recipe import FmnistRecipe

FMNIST_NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class Layout:
    """Where every stage writes inside the job's output directory ``root``."""

    root: Path

    @property
    def recipe(self) -> Path:
        """The job's recipe (``FmnistRecipe.to_dict``), saved by its first run."""
        return self.root / "config.json"

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> Layout:
        return cls(Path(root))

    @property
    def encoders(self) -> Path:
        return self.root / "encoders"

    @property
    def teacher(self) -> Path:
        return self.root / "teacher"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def train_features(self) -> Path:
        """Train split, whole battery: the evaluation reference set."""
        return self.features / "train"

    @property
    def test_features(self) -> Path:
        """Test split, whole battery: the real floor (validation set)."""
        return self.features / "test"

    @property
    def noise_features(self) -> Path:
        """Test rows after the test store's, whole battery: the second real draw of the noise
        level where the test store cannot hold two (``scoring.real_draws``)."""
        return self.features / "test-noise"

    def reference_features(self, recipe: FmnistRecipe) -> Path:
        """Train rows behind the Nyström references (the eval store when the subsets agree)."""
        return (
            self.train_features
            if recipe.reference_rows == recipe.eval_train_rows
            else self.features / "train-ref"
        )

    @property
    def references(self) -> Path:
        return self.root / "references"

    def arm(self, name: str) -> Path:
        return self.root / f"irdm-{name}"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def generated(self) -> Path:
        return self.root / "generated"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def marker(self, stage: str) -> Path:
        """``stage``'s marker, written when it finishes: ``{"seconds", "info"}``."""
        return self.stages / f"{stage}.json"


def load_recipe(layout: Layout) -> FmnistRecipe:
    """The recipe the job in ``layout`` saved when it first ran (``OUT/config.json``)."""
    if not layout.recipe.is_file():
        raise FileNotFoundError(
            f"pipeline_dir: {str(layout.root)!r} has no recipe ({layout.recipe.name}); run "
            "`repmatch fmnist --out` there first"
        )
    return FmnistRecipe.from_dict(json.loads(layout.recipe.read_text()))


def fmnist_encoder_recipe(recipe: FmnistRecipe) -> dict:
    """The ``FmnistTrainConfig`` recipe (spec ``options``) of the in-project encoders."""

    return FmnistTrainConfig(
        epochs=recipe.encoder_epochs, train_rows=recipe.encoder_train_rows
    ).recipe()


def make_battery(
    recipe: FmnistRecipe,
    names: Sequence[str],
    layout: Layout,
    *,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
    training: bool = False,
) -> EncoderBattery:
    """The encoders ``names`` as the recipe builds them: in-project Fashion-MNIST encoders from
    ``OUT/encoders`` (their recipe in the fingerprint), resolution overrides applied.

    ``training=True`` (the iRDM loss) enables the recipe's bf16 autocast on CUDA; features for
    references, floors and evaluation are always computed in float32. Otherwise (no gradient
    needed) on a CPU device, encoders run on the recipe's ``inference_backend``.
    """

    backend = recipe.inference_backend
    if training or torch.device(device).type != "cpu":
        backend = "torch"
    modules = []
    for name in names:
        overrides: dict = {}
        if name in FMNIST_ENCODERS:
            overrides = {
                "weights": layout.encoders / f"{name}.safetensors",
                "options": fmnist_encoder_recipe(recipe),
            }
        if name in recipe.input_sizes:
            overrides["input_size"] = recipe.input_sizes[name]
        modules.append(inference_encoder(name, backend, **overrides).to(device))
    use_bf16 = training and recipe.autocast_bf16 and torch.device(device).type == "cuda"
    return EncoderBattery(modules, chunk_size=chunk_size, autocast_bf16=use_bf16)


def class_condition(recipe: FmnistRecipe) -> ClassCondition:
    """The recipe's eq.-4 conditioning: ``φ ⊕ β·onehot(c)`` over the ten classes."""
    return ClassCondition(num_classes=FMNIST_NUM_CLASSES, beta=recipe.beta)


def joint_fingerprint(fingerprint: str, recipe: FmnistRecipe) -> str:
    """The joint feature space ``φ ⊕ β·onehot(c)`` of one encoder (names the reference)."""
    return class_condition(recipe).fingerprint(fingerprint)


def resolve_device(recipe: FmnistRecipe) -> torch.device:
    if recipe.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(recipe.device)
