"""The ``fmnist`` task: class-conditional one-step Fashion-MNIST generators trained by iRDM.

Built from the outputs of the ``repmatch fmnist`` job (see :mod:`repmatch.pipelines.fmnist`):
joint image–class Nyström references ``Φ(x, c) = φ(x) ⊕ β·onehot(c)`` (eq. 4) per training
encoder, the real test split as the floor, and one of two generators:

- ``arm="post"``: the flow-matching teacher run in one Euler step
  (``FewStepGenerator(load_teacher(..., trainable=True), 1, (1, 28, 28))``), post-trained;
- ``arm="scratch"``: a freshly initialised :class:`repmatch.models.ConvGenerator`.

``task_options``: ``{"arm": "post" | "scratch", "pipeline_dir": OUT, "recipe": FmnistRecipe dict}``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validate import check_choice
from .config import TrainConfig
from .joint import ConditionPool, joint_features, one_hot_embedding
from .task import TrainTask, estimate_floors, register_task

TASK_OPTIONS = ("arm", "pipeline_dir", "recipe")


def _references(recipe, layout, battery, names, device):
    from ..distances import mmd_nystrom_loss
    from ..pipelines.fmnist_parts import joint_fingerprint, load_references

    dists: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for name in names:
        refs = load_references(layout.references / name, device)
        expected = joint_fingerprint(battery.fingerprints[name], recipe)
        for ref in refs:
            if ref.fingerprint != expected:
                raise ValueError(
                    f"reference {layout.references / name} was built for {ref.fingerprint!r}, but "
                    f"the battery gives {expected!r}; rerun the references stage"
                )
        # Several scales: the multi-scale kernel's loss (mmd_nystrom_loss sums them).
        dists[name] = lambda x, refs=refs, fp=expected: mmd_nystrom_loss(x, refs, fingerprint=fp)
    return dists


def _val_features(layout, names, beta, device):
    from ..pipelines.fmnist_parts import FMNIST_NUM_CLASSES
    from ..reference import FeatureStore

    store = FeatureStore(layout.test_features)
    emb = one_hot_embedding(store.labels.long(), FMNIST_NUM_CLASSES)
    return {n: joint_features(store.read(n), emb, beta).to(device) for n in names}


@register_task("fmnist")
def build_fmnist_task(config: TrainConfig, device: torch.device) -> TrainTask:
    from ..pipelines.fmnist_parts import FMNIST_NUM_CLASSES, IMAGE_SHAPE, Layout, make_battery
    from ..pipelines.fmnist_recipe import FmnistRecipe
    from ..reference import FeatureStore

    opts = dict(config.task_options)
    unknown = sorted(set(opts) - set(TASK_OPTIONS))
    missing = sorted(set(TASK_OPTIONS) - set(opts))
    if unknown or missing:
        raise ValueError(
            f"fmnist task_options must have exactly {list(TASK_OPTIONS)}; unknown {unknown}, missing {missing}"
        )
    arm = check_choice("task_options.arm", opts["arm"], ("post", "scratch"))
    recipe = FmnistRecipe.from_dict(opts["recipe"])
    layout = Layout.of(opts["pipeline_dir"])
    if config.joint is None or config.joint.condition != "class":
        raise ValueError(
            "the fmnist task needs joint=JointConfig(condition='class') (eq. 4 features)"
        )
    beta = config.joint.beta

    battery = make_battery(recipe, recipe.train_encoders, layout, device=device, training=True)
    dists = _references(recipe, layout, battery, recipe.train_encoders, device)
    # The condition pool mirrors the reference's own labels (App. E.1).
    ref_labels = FeatureStore(layout.reference_features(recipe)).labels.long()
    pool = ConditionPool.from_labels(ref_labels, FMNIST_NUM_CLASSES)
    val = _val_features(layout, recipe.train_encoders, beta, device)

    if arm == "post":
        from ..models import load_teacher
        from .generator import FewStepGenerator

        generator = FewStepGenerator(load_teacher(layout.teacher, trainable=True), 1, IMAGE_SHAPE)
    else:
        from ..models import ConvGenerator
        from ..models.conv_generator import ConvGeneratorConfig

        generator = ConvGenerator(
            ConvGeneratorConfig(width=recipe.scratch_width, num_classes=FMNIST_NUM_CLASSES)
        )

    held: dict = {}
    held_battery = None
    held_floors: dict[str, float] = {}
    if recipe.monitor_heldout and recipe.heldout_encoders:
        held_battery = make_battery(recipe, recipe.heldout_encoders, layout, device=device)
        held = _references(recipe, layout, held_battery, recipe.heldout_encoders, device)
        held_val = _val_features(layout, recipe.heldout_encoders, beta, device)
        held_floors = estimate_floors(held, held_val, config.heldout_num_samples)
    return TrainTask(
        generator=generator,
        encode=battery,
        distances=dists,
        floors=estimate_floors(dists, val, config.batch_size),
        conditions=pool,
        joint_beta=beta,
        heldout_encode=held_battery,
        heldout_distances=held,
        heldout_floors=held_floors,
    )
