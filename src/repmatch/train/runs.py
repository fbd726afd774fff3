"""A trained generator, back from its run directory (``repmatch sample``, ``repmatch eval``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..generators import build_generator
from ..references.conditions import ClassCondition, TextCondition
from ..references.directory import References
from .checkpoint import latest_checkpoint, load_checkpoint
from .config import TrainConfig
from .general import GeneralTask


@dataclass(frozen=True, kw_only=True)
class RunGenerator:
    """A trained generator and what it is conditioned on.

    Attributes:
        generator: in eval mode, frozen.
        num_classes: classes of a class-conditional run (0 otherwise).
        conditions: a text-conditioned run's condition pool, caption embeddings ``(P, E)``
            (``None`` otherwise); ``captions`` their texts.
    """

    generator: nn.Module
    num_classes: int = 0
    conditions: torch.Tensor | None = None
    captions: list[str] | None = None


def load_run_generator(
    run_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    ema: bool = True,
    device: torch.device | str = "cpu",
) -> RunGenerator:
    """The generator of the run in ``run_dir`` and its conditioning.

    Weights: ``checkpoint`` or the run's newest checkpoint, its EMA when the run kept one (and
    ``ema``). The generator is rebuilt from ``config.json``: the general task's
    ``generator`` fields, or, for another task, its ``build`` (found by the task's name in
    :data:`repmatch.train.TASKS`).
    """
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"run_dir: {str(run)!r} has no config.json (not a training run directory)")
    config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    path = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run)
    if path is None or not path.is_file():
        raise FileNotFoundError(f"checkpoint: no checkpoint {'at ' + str(path) if path else 'in ' + str(run)}")
    device = torch.device(device)
    num_classes, conditions, captions = 0, None, None
    spec = config.task
    if isinstance(spec, GeneralTask):
        generator = build_generator(
            spec.generator, kwargs=spec.generator_kwargs, noise_shape=spec.noise_shape,
            sampler_steps=spec.sampler_steps,
        )
        refs = References.open(spec.references)
        if isinstance(refs.condition, ClassCondition):
            num_classes = refs.condition.num_classes
        elif isinstance(refs.condition, TextCondition):
            conditions, captions = refs.conditions(), refs.captions()
    else:
        task = spec.build(config, device)
        generator = task.generator
        # An application's pool is class-conditional: its one-hot embedding is that wide.
        num_classes = 0 if task.conditions is None else int(task.conditions.embeddings.shape[1])
    state = load_checkpoint(path)
    weights = state["ema"] if ema and state.get("ema") is not None else state["generator"]
    generator.load_state_dict(weights)
    return RunGenerator(generator=generator.to(device).eval().requires_grad_(False),
                        num_classes=num_classes, conditions=conditions, captions=captions)
