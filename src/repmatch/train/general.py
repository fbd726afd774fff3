"""The general task: your generator against the references of your data (``task="general"``).

Built from a :class:`TrainConfig` alone, so ``repmatch train --config FILE`` and
``train(config)`` run it:

- the generator is :func:`repmatch.generators.build_generator` of ``config.generator``
  (initial weights, K-step sampler wrapper, ``noise_shape``);
- the training battery is ``config.train_encoders`` (frozen, differentiable), each with the
  eq.-3 loss against its Nyström references in ``config.references``, whose fingerprints must
  match the battery's (the same feature space);
- floors are the real floors stored with the references (``repmatch references --val``), or 0
  with a warning when none were measured (the controller then never gates an encoder off);
- references built joint with a condition make the run conditional: the condition pool is the
  reference's own conditions (App. E.1) and the features are ``φ(x) ⊕ β·τ(c)`` with the
  references' ``β``; the generator receives the class labels ``(N,)``, or for text the caption
  embeddings ``(N, E)``, as its condition;
- ``config.heldout_encoders`` are scored (against their references), never trained on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

from ..generators import build_generator
from ..references.conditions import ClassCondition, TextCondition
from ..references.directory import References
from ..represent import ConditionPool, EncoderBattery
from .config import TrainConfig
from .task import TrainTask

DistanceFn = Callable[[torch.Tensor], torch.Tensor]


def _battery(config: TrainConfig, names: Sequence[str], device: torch.device) -> EncoderBattery:
    weights = {n: w for n, w in config.encoder_weights.items() if n in names}
    return EncoderBattery(list(names), weights=weights, device=device)


def general_task(config: TrainConfig, device: torch.device) -> TrainTask:
    """The :class:`TrainTask` of ``config``'s general fields (see module doc)."""
    if config.generator is None:
        raise ValueError("generator: required by the general task ('module:callable' returning an nn.Module)")
    if config.references is None:
        raise ValueError("references: required by the general task (a directory written by `repmatch references`)")
    refs = References.open(config.references)
    held = list(config.heldout_encoders)
    train_names = list(config.train_encoders) or [n for n in refs.encoders if n not in held]
    missing = sorted(set(train_names + held) - set(refs.encoders))
    if missing:
        raise ValueError(
            f"train_encoders/heldout_encoders: {missing} have no references in {config.references} "
            f"(it has {refs.encoders})"
        )
    if not train_names:
        raise ValueError("train_encoders: no encoder left to train against")
    generator = build_generator(
        config.generator, kwargs=config.generator_kwargs, noise_shape=config.noise_shape,
        init_checkpoint=config.init_checkpoint, sampler_steps=config.sampler_steps,
    )

    def side(names: Sequence[str]) -> tuple[EncoderBattery, dict[str, DistanceFn]]:
        battery = _battery(config, names, device)
        return battery, {n: refs.distance(n, battery.fingerprints[n], device) for n in names}

    battery, distances = side(train_names)
    floors = refs.floors(train_names)
    if floors is None:
        warnings.warn(
            f"references in {config.references} have no real floors (build them with --val): "
            "floors are 0, so the controller never gates an encoder off",
            RuntimeWarning, stacklevel=2,
        )
        floors = dict.fromkeys(train_names, 0.0)
    elif refs.floor_batch_size != config.batch_size:
        warnings.warn(
            f"the real floors were measured at batch size {refs.floor_batch_size}, the run uses "
            f"{config.batch_size}; the eq.-3 estimate depends on it (rebuild with --floor-batch-size "
            f"{config.batch_size})",
            RuntimeWarning, stacklevel=2,
        )
    condition = refs.condition
    pool = None
    if isinstance(condition, ClassCondition):
        pool = ConditionPool.from_labels(refs.conditions(), condition.num_classes)
    elif isinstance(condition, TextCondition):
        # The generator is conditioned on the caption embedding itself.
        embeddings = refs.conditions()
        pool = ConditionPool(embeddings, embeddings)
    held_battery, held_distances = side(held) if held else (None, {})
    held_floors = refs.floors(held) if held else {}
    return TrainTask(
        generator=generator,
        encode=battery,
        distances=distances,
        floors=floors,
        conditions=pool,
        joint_beta=None if condition is None else condition.beta,
        heldout_encode=held_battery,
        heldout_distances=held_distances,
        heldout_floors=held_floors if held_floors is not None else dict.fromkeys(held, 0.0),
    )
