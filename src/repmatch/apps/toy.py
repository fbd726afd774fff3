"""The ``toy`` task (:class:`ToyTask`) and its presets (plain functions returning a
:class:`TrainConfig`).

The ``toy`` task is a complete iRDM run in miniature that trains on a CPU in seconds: 4×4
grey "images" drawn from a mixture of Gaussian blobs (one class per blob), two frozen random
feature maps as the training battery and a third as the held-out encoder, Nyström references
built with :class:`repmatch.NystromReference` and the eq.-3 loss
:func:`repmatch.mmd_nystrom_loss`, floors on a real validation split, and optionally
class-conditional joint features (eq. 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..validate import check_positive
from ..compare import NystromReference, joint_bandwidths, mmd_nystrom_loss
from ..generators import MLPGenerator
from ..references import training_floors
from ..represent import ConditionPool, joint_features
from ..train import (
    ControllerConfig,
    IntervalConfig,
    JointConfig,
    OptimConfig,
    TrainConfig,
    TrainTask,
)


@dataclass(frozen=True, kw_only=True)
class ToyTask:
    """The toy task's settings (``task.name = "toy"``).

    Attributes:
        num_classes: Gaussian blobs (one class each); num_real, num_val: reference and
            validation images; num_landmarks: Nyström landmarks per reference.
        noise_dim, hidden, dropout: the :class:`repmatch.generators.MLPGenerator`.
        joint: class-conditional joint features ``φ(x) ⊕ β·onehot(c)`` (eq. 4) and a
            class-conditional generator; ``None`` matches the image marginal.
    """

    name: ClassVar[str] = "toy"

    num_classes: int = 4
    num_real: int = 1024
    num_val: int = 256
    num_landmarks: int = 32
    noise_dim: int = 8
    hidden: int = 64
    dropout: float = 0.0
    joint: JointConfig | None = None

    def __post_init__(self) -> None:
        for key in ("num_classes", "num_real", "num_val", "num_landmarks", "noise_dim", "hidden"):
            check_positive(f"task.{key}", getattr(self, key), integer=True)
        if self.joint is not None and not isinstance(self.joint, JointConfig):
            raise TypeError(f"task.joint must be a JointConfig or None, got {type(self.joint).__name__}")

    def build(self, config: TrainConfig, device: torch.device) -> TrainTask:
        return build_toy_task(config, device)


class _ToyEncoders(nn.Module):
    """Frozen random feature maps of 4×4 images: ``lin`` (linear), ``tanh``, ``cube`` (held out)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        maps = {"lin": torch.randn(16, 8, generator=g), "tanh": torch.randn(16, 6, generator=g),
                "cube": torch.randn(16, 5, generator=g)}
        self.names = names
        for name in names:
            self.register_buffer(name, maps[name] / 4.0)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.flatten(1) - 0.5
        fns = {"lin": lambda h: h, "tanh": torch.tanh, "cube": lambda h: h**3}
        return {n: fns[n](x @ getattr(self, n)) for n in self.names}


def _toy_data(num: int, num_classes: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centers = torch.rand(num_classes, 16, generator=torch.Generator().manual_seed(99)) * 0.6 + 0.2
    labels = torch.randint(num_classes, (num,), generator=g)
    images = (centers[labels] + 0.05 * torch.randn(num, 16, generator=g)).clamp(0, 1)
    return images.view(num, 1, 4, 4), labels


def build_toy_task(config: TrainConfig, device: torch.device) -> TrainTask:
    """The toy :class:`TrainTask` of ``config.task``, a :class:`ToyTask` (a
    :data:`repmatch.train.TaskBuilder`)."""
    opt = config.task
    if not isinstance(opt, ToyTask):
        raise TypeError(f"build_toy_task needs config.task to be a ToyTask, got {type(opt).__name__}")
    joint = opt.joint
    conditional = joint is not None

    g = torch.Generator().manual_seed(config.seed + 17)
    real, real_labels = _toy_data(opt.num_real, opt.num_classes, g)
    val, val_labels = _toy_data(opt.num_val, opt.num_classes, g)
    train_enc = _ToyEncoders(("lin", "tanh")).to(device)
    held_enc = _ToyEncoders(("cube",)).to(device)
    pool = ConditionPool.from_labels(real_labels, opt.num_classes) if conditional else None
    beta = None if joint is None else joint.beta

    def features(enc: _ToyEncoders, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            feats = enc(images.to(device))
        if beta is None:
            return feats
        emb = ConditionPool.from_labels(labels, opt.num_classes).embeddings.to(device)
        return {k: joint_features(v, emb, beta) for k, v in feats.items()}

    def references(
        enc: _ToyEncoders,
    ) -> tuple[dict[str, Callable[[torch.Tensor], torch.Tensor]], dict[str, torch.Tensor]]:
        ref_feats, val_feats = features(enc, real, real_labels), features(enc, val, val_labels)
        dists: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        for name, f in ref_feats.items():
            bws = None if joint is None else joint_bandwidths(f, joint.bandwidth_scale)
            refs = NystromReference.build_multiscale(
                f, num_landmarks=opt.num_landmarks, bandwidths=bws, factors=(1.0,), seed=config.seed
            )

            # A def rather than a lambda so that mypy sees the one-argument distance; the
            # default binds this encoder's refs.
            def dist(x: torch.Tensor, refs: tuple[NystromReference, ...] = refs) -> torch.Tensor:
                return mmd_nystrom_loss(x, refs)

            dists[name] = dist
        return dists, val_feats

    dists, val_feats = references(train_enc)
    held_dists, held_val = references(held_enc)
    return TrainTask(
        generator=MLPGenerator(opt.noise_dim, (1, 4, 4), hidden=opt.hidden, dropout=opt.dropout,
                               num_classes=opt.num_classes if conditional else 0),
        encode=train_enc,
        distances=dists,
        floors=training_floors(dists, val_feats, config.batch_size).values,
        conditions=pool,
        joint_beta=beta,
        heldout_encode=held_enc,
        heldout_distances=held_dists,
        heldout_floors=training_floors(held_dists, held_val, config.heldout_num_samples).values,
    )


def toy(run_dir: str = "runs/toy") -> TrainConfig:
    """Unconditional toy run: trains on a CPU in a few seconds."""
    return TrainConfig(
        task=ToyTask(), run_dir=run_dir, seed=0, batch_size=128, chunk_size=64, device="cpu",
        optim=OptimConfig(lr_at_batch_5120=1e-2 * (5120 / 128) ** 0.5, grad_clip_norm=1.0),
        controller=ControllerConfig(budget=10.0, temperature=1.0, score_ema=0.9),
        intervals=IntervalConfig(total_nimg=128 * 40, log_every_nimg=128 * 10, checkpoint_every_nimg=128 * 20,
                                 sample_every_nimg=128 * 20, heldout_every_nimg=128 * 10),
        ema_halflife_nimg=1024, heldout_num_samples=256, num_samples=16, progress=False,
    )


def toy_conditional(run_dir: str = "runs/toy_conditional") -> TrainConfig:
    """Class-conditional toy run on joint features Φ = φ(x) ⊕ β·onehot(c) (eq. 4)."""
    return toy(run_dir).replace(task=ToyTask(joint=JointConfig(beta=1.0, bandwidth_scale=0.5)))
