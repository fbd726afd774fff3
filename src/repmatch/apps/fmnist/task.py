"""The ``fmnist`` task: class-conditional one-step Fashion-MNIST generators trained by iRDM.

Built from the outputs of the ``repmatch fmnist`` job (see :mod:`repmatch.apps.fmnist.pipeline`):
joint image–class Nyström references ``Φ(x, c) = φ(x) ⊕ β·onehot(c)`` (eq. 4) per training
encoder, the real test split as the floor, and one of two generators:

- ``arm="post"``: the flow-matching teacher run in one Euler step
  (``FewStepGenerator(load_teacher(..., trainable=True), 1, (1, 28, 28))``), post-trained;
- ``arm="scratch"``: a freshly initialised :class:`repmatch.apps.fmnist.conv_generator.ConvGenerator`.

A run's ``task`` section is a :class:`FmnistArmTask`, ``{"name": "fmnist", "arm": ...,
"pipeline_dir": OUT}``: the recipe is the job's own, saved in ``OUT/config.json``, so the run's
``config.json`` repeats none of it; its loop settings are the recipe's arm
(:func:`arm_train_config`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ...validate import check_choice
from ...features import FeatureStore
from ...generators import FewStepGenerator
from ...represent import ConditionPool, EncoderBattery, joint_features, one_hot_embedding
from ...references import load_references, reference_distance, training_floors
from ...train import TaskBuilder, TrainConfig, TrainTask
from .conv_generator import ConvGenerator, ConvGeneratorConfig
from .parts import (
    FMNIST_NUM_CLASSES,
    IMAGE_SHAPE,
    Layout,
    joint_fingerprint,
    load_recipe,
    make_battery,
)
from .recipe import FmnistRecipe, get_recipe
from .teacher import load_teacher


@dataclass(frozen=True, kw_only=True)
class FmnistArmTask:
    """One iRDM arm of the job whose earlier stages ran in ``pipeline_dir`` (``task.name =
    "fmnist"``): ``arm`` is ``"post"`` or ``"scratch"``; the recipe is read from the job's
    ``config.json`` when the task is built."""

    name: ClassVar[str] = "fmnist"

    arm: str
    pipeline_dir: str

    def __post_init__(self) -> None:
        check_choice("task.arm", self.arm, ("post", "scratch"))
        if not isinstance(self.pipeline_dir, str) or not self.pipeline_dir:
            raise ValueError(f"task.pipeline_dir must be a non-empty path string, got {self.pipeline_dir!r}")

    def build(self, config: TrainConfig, device: torch.device) -> TrainTask:
        layout = Layout.of(self.pipeline_dir)
        return fmnist_task(load_recipe(layout), layout, self.arm)(config, device)


def _references(
    recipe: FmnistRecipe, layout: Layout, battery: EncoderBattery, names: Sequence[str], device: torch.device
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    # Several scales: the multi-scale kernel's loss (mmd_nystrom_loss sums them).
    return {
        name: reference_distance(
            load_references(layout.references / name, device),
            joint_fingerprint(battery.fingerprints[name], recipe),
        )
        for name in names
    }


def _val_features(
    layout: Layout, names: Sequence[str], beta: float, device: torch.device
) -> dict[str, torch.Tensor]:
    store = FeatureStore(layout.test_features)
    emb = one_hot_embedding(store.labels.long(), FMNIST_NUM_CLASSES)
    return {n: joint_features(store.read(n), emb, beta).to(device) for n in names}


def fmnist_task(recipe: FmnistRecipe, layout: Layout, arm: str) -> TaskBuilder:
    """The builder of one iRDM arm's :class:`TrainTask` (``arm`` is ``"post"`` or ``"scratch"``),
    reading the teacher, features and references that the job's earlier stages wrote under
    ``layout``; :func:`repmatch.train.train` calls it on its device after seeding."""
    arm = check_choice("arm", arm, ("post", "scratch"))
    return functools.partial(_build, recipe, layout, arm)


def _build(recipe: FmnistRecipe, layout: Layout, arm: str, config: TrainConfig, device: torch.device) -> TrainTask:
    beta = recipe.beta

    battery = make_battery(recipe, recipe.train_encoders, layout, device=device, training=True)
    dists = _references(recipe, layout, battery, recipe.train_encoders, device)
    # The condition pool mirrors the reference's own labels (App. E.1).
    ref_labels = FeatureStore(layout.reference_features(recipe)).labels.long()
    pool = ConditionPool.from_labels(ref_labels, FMNIST_NUM_CLASSES)
    val = _val_features(layout, recipe.train_encoders, beta, device)

    generator: torch.nn.Module
    if arm == "post":
        generator = FewStepGenerator(load_teacher(layout.teacher, trainable=True), 1, IMAGE_SHAPE)
    else:
        generator = ConvGenerator(
            ConvGeneratorConfig(width=recipe.scratch_width, num_classes=FMNIST_NUM_CLASSES)
        )

    held: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    held_battery = None
    held_floors: dict[str, float] = {}
    if config.intervals.heldout_every_nimg is not None and recipe.heldout_encoders:
        held_battery = make_battery(recipe, recipe.heldout_encoders, layout, device=device)
        held = _references(recipe, layout, held_battery, recipe.heldout_encoders, device)
        held_val = _val_features(layout, recipe.heldout_encoders, beta, device)
        held_floors = training_floors(held, held_val, config.heldout_num_samples).values
    return TrainTask(
        generator=generator,
        encode=battery,
        distances=dists,
        floors=training_floors(dists, val, config.batch_size).values,
        conditions=pool,
        joint_beta=beta,
        heldout_encode=held_battery,
        heldout_distances=held,
        heldout_floors=held_floors,
    )


def arm_train_config(recipe: FmnistRecipe, layout: Layout, arm: str) -> TrainConfig:
    """The :class:`repmatch.train.TrainConfig` of one iRDM arm (``post`` or ``scratch``): the
    recipe's loop settings of that arm, the task :class:`FmnistArmTask`."""
    check_choice("arm", arm, ("post", "scratch"))
    return TrainConfig.of(
        getattr(recipe, arm), task=FmnistArmTask(arm=arm, pipeline_dir=str(layout.root)),
        run_dir=str(layout.arm(arm)), seed=recipe.seed, device=recipe.device, progress=False,
    )


def arm_preset(
    recipe_name: str, run_dir: str | None = None, pipeline_dir: str | None = None, arm: str = "post"
) -> TrainConfig:
    """The config of one iRDM arm of the job ``recipe_name`` whose earlier stages ran in
    ``pipeline_dir`` (default ``runs/<recipe_name>``)."""
    config = arm_train_config(get_recipe(recipe_name), Layout.of(pipeline_dir or f"runs/{recipe_name}"), arm)
    return config if run_dir is None else config.replace(run_dir=run_dir)


def fmnist_tiny_arm(run_dir: str | None = None) -> TrainConfig:
    """iRDM ``post`` arm of the ``fmnist-tiny`` job (needs its earlier stages: ``repmatch fmnist``)."""
    return arm_preset("fmnist-tiny", run_dir)


def fmnist_cpu_arm(run_dir: str | None = None) -> TrainConfig:
    """iRDM ``post`` arm of the ``fmnist-cpu`` job (needs its earlier stages: ``repmatch fmnist``)."""
    return arm_preset("fmnist-cpu", run_dir)


def fmnist_arm(run_dir: str | None = None) -> TrainConfig:
    """iRDM ``post`` arm of the full ``fmnist`` job for one GPU (needs its earlier stages)."""
    return arm_preset("fmnist", run_dir)
