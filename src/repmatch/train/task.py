"""What a training run optimises: generator, training encoders, references, floors.

:func:`repmatch.train.train` receives a :class:`TrainTask` (or a builder
``(config, device) -> TrainTask``, :data:`repmatch.train.TaskBuilder`, which it calls on the
right device after seeding), like EDM2's injected loss: the loop knows no dataset, encoder or
task name. The task also owns the features the distances see, including the joint
image–condition features of eq. 4::

    Φ(x, c) = φ(x) ⊕ β·τ(c)      when joint_beta = β is set, else φ(x)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..represent.joint import ConditionPool, joint_features

Encode = Callable[[torch.Tensor], dict[str, torch.Tensor]]
DistanceFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(kw_only=True)
class TrainTask:
    """Everything the loop needs besides the config.

    Attributes:
        generator: ``g(noise, condition) -> images (N, C, H, W)`` with ``noise_shape``.
        encode: training battery, ``images -> {name: (N, D)}`` (frozen, differentiable).
        distances: per training encoder, ``features (N, D') -> scalar`` against its frozen
            reference (``D' = D + E`` with joint features); e.g. ``mmd_nystrom_loss``.
        floors: per training encoder, its real floor: the same distance on real validation
            features (:func:`repmatch.references.training_floors`).
        conditions: the condition pool (``None`` for unconditional generation).
        joint_beta: β of eq. 4; when set, features are ``φ(x) ⊕ β·τ(c)``.
        heldout_encode, heldout_distances, heldout_floors: encoders scored, never trained on.
    """

    generator: nn.Module
    encode: Encode
    distances: Mapping[str, DistanceFn]
    floors: Mapping[str, float]
    conditions: ConditionPool | None = None
    joint_beta: float | None = None
    heldout_encode: Encode | None = None
    heldout_distances: Mapping[str, DistanceFn] = field(default_factory=dict)
    heldout_floors: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not hasattr(self.generator, "noise_shape"):
            raise TypeError("generator must have a noise_shape attribute (the Generator protocol)")
        if not self.distances:
            raise ValueError("distances must name at least one training encoder")
        if set(self.floors) != set(self.distances):
            raise ValueError(f"floors has encoders {sorted(self.floors)}, distances {sorted(self.distances)}")
        if set(self.heldout_floors) != set(self.heldout_distances):
            raise ValueError("heldout_floors and heldout_distances must name the same encoders")
        if self.heldout_distances and self.heldout_encode is None:
            raise ValueError("heldout_distances given without heldout_encode")
        if self.joint_beta is not None and self.conditions is None:
            raise ValueError("joint_beta needs a condition pool (conditions)")

    def _joint(self, feats: dict[str, torch.Tensor], index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if self.joint_beta is None or self.conditions is None or index is None:
            return feats
        emb = self.conditions.embedding(index, next(iter(feats.values())).device)
        return {k: joint_features(v, emb, self.joint_beta) for k, v in feats.items()}

    def features(self, images: torch.Tensor, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """What the training distances see: ``encode(images)``, joined with ``τ(c)`` of the
        pool rows ``index`` (the conditions that produced ``images``) when ``joint_beta`` is set."""
        return self._joint(self.encode(images), index)

    def heldout_features(self, images: torch.Tensor, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """:meth:`features` for the held-out encoders."""
        if self.heldout_encode is None:
            raise ValueError("this task has no held-out encoders (heldout_encode is None)")
        return self._joint(self.heldout_encode(images), index)

