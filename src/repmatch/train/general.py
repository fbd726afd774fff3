"""The general task: your generator against the references of your data (:class:`GeneralTask`).

Built from a :class:`TrainConfig` whose ``task`` is a :class:`GeneralTask`, so
``repmatch train --config FILE`` and ``train(config)`` run it:

- the generator is :func:`repmatch.generators.build_generator` of ``task.generator``
  (initial weights, K-step sampler wrapper, ``noise_shape``);
- the training battery is ``task.train_encoders`` (frozen, differentiable), each with the
  eq.-3 loss against its Nyström references in ``task.references``, whose fingerprints must
  match the battery's (the same feature space);
- floors are the real floors stored with the references (``repmatch references --val``), or 0
  with a warning when none were measured (the controller then never gates an encoder off);
- references built joint with a condition make the run conditional: the condition pool is the
  reference's own conditions (App. E.1) and the features are ``φ(x) ⊕ β·τ(c)`` with the
  references' ``β``; the generator receives the class labels ``(N,)``, or for text the caption
  embeddings ``(N, E)``, as its condition;
- held-out encoders are scored (against their references), never trained on: those in
  ``task.heldout_encoders``, and, as in evaluation, every encoder of the references whose spec
  is ``held_out`` (:class:`repmatch.represent.EncoderSpec`) unless ``task.train_encoders``
  names it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..generators import build_generator
from ..references.conditions import ClassCondition, TextCondition
from ..references.directory import References
from ..represent import ConditionPool, EncoderBattery, get_spec
from ..validate import check_positive
from .config import TASKS, TrainConfig
from .task import TrainTask

DistanceFn = Callable[[torch.Tensor], torch.Tensor]


def _check_names(key: str, names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{key} must be a list of encoder names, got {names!r}")
    return tuple(names)


@dataclass(frozen=True, kw_only=True)
class GeneralTask:
    """The general task's settings (``task.name = "general"``; see the module doc).

    Attributes:
        generator: what builds your generator, anything
            :func:`repmatch.generators.build_generator` accepts (e.g. ``"module:callable"``
            returning an ``nn.Module`` called as ``(noise, condition) -> images in [0, 1]``,
            imported from the working directory or ``PYTHONPATH``); checked when the task is
            built. ``generator_kwargs`` are passed to it.
        noise_shape: per-sample noise shape (required unless the module has ``noise_shape``).
        init_checkpoint: initial weights for the module (``.safetensors``, a weights-only
            ``torch.save`` state dict, or a repmatch checkpoint).
        sampler_steps: wrap the module, a velocity model ``v(x_t, t, condition)``, as a K-step
            Euler sampler (:class:`repmatch.generators.FewStepGenerator`): few-step
            post-training; ``noise_shape`` is then the image shape.
        references: the directory ``repmatch references`` wrote (references, floors, and the
            condition pool when the references are class-joint).
        train_encoders: encoders trained against (default: every encoder of ``references``
            that is not held out); heldout_encoders: scored, never trained on (besides the
            encoders whose spec is ``held_out``).
        encoder_weights: ``{encoder: path}`` for encoders whose weights you supply.
    """

    name: ClassVar[str] = "general"

    generator: str
    generator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    noise_shape: tuple[int, ...] | None = None
    init_checkpoint: str | None = None
    sampler_steps: int | None = None
    references: str
    train_encoders: tuple[str, ...] = ()
    heldout_encoders: tuple[str, ...] = ()
    encoder_weights: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("generator", "references", "init_checkpoint"):
            value = getattr(self, key)
            if (value is not None or key != "init_checkpoint") and (not isinstance(value, str) or not value):
                raise ValueError(f"task.{key} must be a non-empty string, got {value!r}")
        for key in ("generator_kwargs", "encoder_weights"):
            if not isinstance(getattr(self, key), Mapping):
                raise TypeError(f"task.{key} must be a mapping, got {type(getattr(self, key)).__name__}")
        shape = self.noise_shape
        if shape is not None:
            if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
            ):
                raise ValueError(f"task.noise_shape must be a non-empty list of positive ints, got {shape!r}")
            object.__setattr__(self, "noise_shape", tuple(shape))
        if self.sampler_steps is not None:
            check_positive("task.sampler_steps", self.sampler_steps, integer=True)
        for key in ("train_encoders", "heldout_encoders"):
            object.__setattr__(self, key, _check_names(f"task.{key}", getattr(self, key)))
        overlap = sorted(set(self.train_encoders) & set(self.heldout_encoders))
        if overlap:
            raise ValueError(f"task.heldout_encoders must not repeat task.train_encoders, got {overlap} in both")

    def build(self, config: TrainConfig, device: torch.device) -> TrainTask:
        return general_task(config, device)


def _spec_held_out(name: str) -> bool:
    """Whether ``name``'s registered spec is evaluation-only (an unregistered name is not)."""
    try:
        return get_spec(name).held_out
    except ValueError:
        return False


def split_encoders(task: GeneralTask, available: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(train, held out)`` among the reference encoders ``available``: held out are
    ``task.heldout_encoders`` and every encoder whose spec is ``held_out`` that
    ``task.train_encoders`` does not name; trained, ``task.train_encoders`` or else the rest."""
    held = list(task.heldout_encoders) + [
        n for n in available
        if n not in task.heldout_encoders and n not in task.train_encoders and _spec_held_out(n)
    ]
    return list(task.train_encoders) or [n for n in available if n not in held], held


def general_task(config: TrainConfig, device: torch.device) -> TrainTask:
    """The :class:`TrainTask` of ``config.task``, a :class:`GeneralTask` (see module doc)."""
    task = config.task
    if not isinstance(task, GeneralTask):
        raise TypeError(f"general_task needs config.task to be a GeneralTask, got {type(task).__name__}")
    refs = References.open(task.references)
    train_names, held = split_encoders(task, refs.encoders)
    missing = sorted(set(train_names + held) - set(refs.encoders))
    if missing:
        raise ValueError(
            f"train_encoders/heldout_encoders: {missing} have no references in {task.references} "
            f"(it has {refs.encoders})"
        )
    if not train_names:
        raise ValueError("train_encoders: no encoder left to train against")
    generator = build_generator(
        task.generator, kwargs=task.generator_kwargs, noise_shape=task.noise_shape,
        init_checkpoint=task.init_checkpoint, sampler_steps=task.sampler_steps,
    )

    def side(names: Sequence[str]) -> tuple[EncoderBattery, dict[str, DistanceFn]]:
        weights = {n: w for n, w in task.encoder_weights.items() if n in names}
        battery = EncoderBattery(list(names), weights=weights, device=device)
        return battery, {n: refs.distance(n, battery.fingerprints[n], device) for n in names}

    battery, distances = side(train_names)
    floors = refs.floors(train_names)
    if floors is None:
        warnings.warn(
            f"references in {task.references} have no real floors (build them with --val): "
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


# The library's own task, registered where it is defined (the package imports this module).
TASKS.register("general", GeneralTask)
