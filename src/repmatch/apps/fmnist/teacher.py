"""Train the few-step Fashion-MNIST teacher: class-conditional rectified flow + 4-step Euler.

One readable loop (EDM2-style): each step draws a batch of training images with replacement,
times ``t`` and noise ``ε`` from one seeded generator, minimises the flow-matching loss
(:func:`repmatch.apps.fmnist.flow_matching.flow_matching_loss`) with Adam (linear warm-up, then
constant learning rate, gradient clipping) and updates an EMA of the weights. The EMA network,
sampled with ``sample_steps`` Euler steps (:class:`repmatch.generators.FewStepGenerator`), is the
"few-step teacher" that iRDM post-trains into a one-step generator (paper §3, §4.2).

Run directory written by :func:`train_teacher`::

    OUT/config.json                 resolved TeacherConfig + model config
    OUT/checkpoints/ckpt-<step>.pt  latest full state (model, EMA, optimizer, RNG, step); resume source
    OUT/stats.jsonl                 one JSON object per log_every steps: step, nimg, loss, lr, time_s
    OUT/teacher.safetensors         EMA weights; metadata carries the model config (load_teacher)
    OUT/samples/teacher_<K>step.png per-class sample grid (one row per class) from K Euler steps

Checkpoints, the EMA update and ``stats.jsonl`` use the run-state toolkit shared with the iRDM
loop (:mod:`repmatch.train.checkpoint`). Every file is written atomically; rerunning with the
same OUT resumes from the newest checkpoint and reproduces an uninterrupted run bit-for-bit on
the same device.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ...io import atomic_save_safetensors, atomic_write_json
from ...progress import bar
from ...validate import check_choice, check_nonnegative_int, check_positive
from ...data import FashionMNIST
from ...generators import FewStepGenerator, write_sample_grid
from ...train import (
    append_stats,
    ema_update_,
    load_latest_checkpoint,
    save_checkpoint,
    truncate_stats,
)
from .encoders import fmnist_cache_dir
from .flow_matching import TIME_SAMPLINGS, flow_matching_loss, sample_time
from .unet import VELOCITY_PRESETS, VelocityUNet, VelocityUNetConfig

# Fields that may change between a run and its resumption without changing the trajectory.
_RESUMABLE_CHANGES = ("steps", "log_every", "checkpoint_every")


def default_teacher_dir(preset: str) -> Path:
    """``$REPMATCH_CACHE/fmnist/teacher-<preset>`` (``~/.cache/repmatch/...`` by default).

    Trained weights live outside the repository and are never committed.
    """

    return fmnist_cache_dir() / f"teacher-{preset}"


@dataclass(frozen=True, kw_only=True)
class TeacherConfig:
    """Flow-matching teacher training (counts are optimizer steps; ``nimg = step · batch_size``)."""

    model: str = "cpu"
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    time_sampling: str = "uniform"
    sample_steps: int = 4
    seed: int = 0
    log_every: int = 25
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        check_choice("model", self.model, tuple(VELOCITY_PRESETS))
        check_choice("time_sampling", self.time_sampling, TIME_SAMPLINGS)
        for name in ("steps", "batch_size", "sample_steps", "log_every", "checkpoint_every"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("lr", self.lr)
        check_positive("grad_clip", self.grad_clip)
        check_nonnegative_int("warmup_steps", self.warmup_steps)
        if not (0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        check_nonnegative_int("seed", self.seed)

    def model_config(self) -> VelocityUNetConfig:
        return VELOCITY_PRESETS[self.model]()

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup_steps``, then constant (so extending ``steps`` resumes exactly)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr


@dataclass(frozen=True, kw_only=True)
class TeacherResult:
    """What :func:`train_teacher` produced: the EMA network and where the run stopped."""

    model: VelocityUNet
    step: int
    finished: bool
    last_loss: float
    out_dir: Path


def _ema_decay(config: TeacherConfig, step: int) -> float:
    # Short runs: a fixed 0.999 would keep ~e^{-steps/1000} of the random init in the average,
    # so the decay ramps up as (1 + k) / (10 + k) until it reaches ema_decay.
    return min(config.ema_decay, (1 + step) / (10 + step))


def _load_train_split() -> tuple[torch.Tensor, torch.Tensor]:

    train = FashionMNIST("train")
    return torch.from_numpy(train.images), torch.from_numpy(train.labels)


def _check_data(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(
            "images must be a uint8 tensor (N, C, H, W), got "
            f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}"
        )
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (images.shape[0],):
        raise ValueError(f"labels must be a tensor of shape ({images.shape[0]},)")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in _RESUMABLE_CHANGES}


@dataclass(eq=False, kw_only=True)
class _TeacherRun:
    """The state one teacher run carries from step to step (and through its checkpoints)."""

    model: VelocityUNet
    ema: VelocityUNet
    opt: torch.optim.Optimizer
    gen: torch.Generator
    step: int = 0
    elapsed: float = 0.0
    # Losses since the last stats line; checkpointed so that a resumed run logs identically.
    window: list[float] = field(default_factory=list)


def _new_run(config: TeacherConfig, model_cfg: VelocityUNetConfig, device: torch.device) -> _TeacherRun:
    """A fresh network, its EMA copy, Adam and the batch generator, all seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    model = VelocityUNet(model_cfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    return _TeacherRun(model=model, ema=ema, opt=opt, gen=gen)


def _resume(run: _TeacherRun, config: TeacherConfig, out: Path, device: torch.device) -> None:
    """Restore ``run`` from the newest checkpoint in ``out`` that loads (a damaged one is
    skipped, named) and cut ``stats.jsonl`` back to it; a fresh start empties it."""
    found = load_latest_checkpoint(out)
    stats_path = out / "stats.jsonl"
    if found is None:
        # A fresh start: drop lines an interrupted run logged before its first checkpoint.
        truncate_stats(stats_path, "step", 0)
        return
    ckpt_path, state = found
    if _comparable(state["config"]) != _comparable(asdict(config)):
        raise ValueError(
            f"{ckpt_path} was trained with config {state['config']}, which differs from "
            f"{asdict(config)} beyond {_RESUMABLE_CHANGES}; use another --out or the same settings"
        )
    run.model.load_state_dict(state["model"])
    run.ema.load_state_dict(state["ema"])
    run.opt.load_state_dict(state["optimizer"])
    run.gen.set_state(state["generator"])
    torch.random.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    run.step, run.elapsed, run.window = state["step"], state["elapsed_s"], state["loss_window"]
    truncate_stats(stats_path, "step", run.step)


def _checkpoint(run: _TeacherRun, config: TeacherConfig, out: Path, device: torch.device) -> None:
    """Save the full state (weights, EMA, optimizer, RNGs, step); only the newest is kept."""
    save_checkpoint(
        out,
        run.step,
        {
            "config": asdict(config),
            "step": run.step,
            "elapsed_s": run.elapsed,
            "loss_window": run.window,
            "model": run.model.state_dict(),
            "ema": run.ema.state_dict(),
            "optimizer": run.opt.state_dict(),
            "generator": run.gen.get_state(),
            "torch_rng": torch.random.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        keep=1,
    )


def _train_step(
    run: _TeacherRun, config: TeacherConfig, images: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> tuple[float, float]:
    """One optimizer step on a batch drawn with replacement; returns ``(loss, lr)``."""
    idx = torch.randint(images.shape[0], (config.batch_size,), generator=run.gen)
    noise = torch.randn((config.batch_size, *images.shape[1:]), generator=run.gen)
    t = sample_time(config.batch_size, schedule=config.time_sampling, generator=run.gen)
    idx, noise, t = idx.to(device), noise.to(device), t.to(device)
    x = images[idx].float() / 127.5 - 1.0

    lr = config.lr_at(run.step)
    for group in run.opt.param_groups:
        group["lr"] = lr
    loss = flow_matching_loss(run.model, x, labels[idx], t=t, noise=noise)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite flow-matching loss {loss.item()} at step {run.step}")
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.opt.step()
    ema_update_(run.ema, run.model, _ema_decay(config, run.step))
    run.step += 1
    return loss.item(), lr


def _log_window(run: _TeacherRun, config: TeacherConfig, stats_path: Path, lr: float, time_s: float) -> None:
    """Append the mean loss since the last line to ``stats.jsonl`` and start a new window."""
    append_stats(stats_path, {
        "step": run.step,
        "nimg": run.step * config.batch_size,
        "loss": sum(run.window) / len(run.window),
        "lr": lr,
        "time_s": round(time_s, 3),
    })
    run.window.clear()


def _train_until_done(
    run: _TeacherRun,
    config: TeacherConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    out: Path,
    device: torch.device,
    max_seconds: float | None,
    progress: bool,
) -> float:
    """Step until ``config.steps`` (or ``max_seconds`` of this call), logging and checkpointing
    every whole interval, then checkpoint; returns the last loss (NaN if no step ran)."""
    stats_path = out / "stats.jsonl"
    call_start = start = time.perf_counter()
    last_loss = math.nan
    shown = bar(total=config.steps, initial=run.step, desc="teacher", unit="step", enabled=progress)
    run.model.train()
    while run.step < config.steps:
        if max_seconds is not None and time.perf_counter() - call_start >= max_seconds:
            break
        last_loss, lr = _train_step(run, config, images, labels, device)
        run.window.append(last_loss)
        shown.update(1)
        shown.set_postfix(loss=f"{last_loss:.4f}")
        # Only whole intervals are logged: a resumed run logs what a straight one would.
        if run.step % config.log_every == 0:
            _log_window(run, config, stats_path, lr, run.elapsed + time.perf_counter() - start)
        if run.step % config.checkpoint_every == 0:
            run.elapsed, start = run.elapsed + time.perf_counter() - start, time.perf_counter()
            _checkpoint(run, config, out, device)
    shown.close()
    run.elapsed += time.perf_counter() - start
    _checkpoint(run, config, out, device)
    return last_loss


def _export_teacher(
    ema: VelocityUNet, config: TeacherConfig, model_cfg: VelocityUNetConfig, step: int, image_shape: torch.Size, out: Path
) -> None:
    """Write ``teacher.safetensors`` (EMA weights, configs in the metadata) and the sample grid."""
    ema.eval()
    atomic_save_safetensors(
        out / "teacher.safetensors",
        ema.state_dict(),
        metadata={
            "model_config": json.dumps(model_cfg.to_dict()),
            "teacher_config": json.dumps(asdict(config)),
            "step": str(step),
        },
    )
    sampler = FewStepGenerator(ema, config.sample_steps, image_shape)
    write_sample_grid(
        sampler,
        out / "samples" / f"teacher_{config.sample_steps}step.png",
        num_classes=model_cfg.num_classes,
        seed=config.seed,
    )


def train_teacher(
    config: TeacherConfig,
    out_dir: str | os.PathLike[str],
    *,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    max_seconds: float | None = None,
    progress: bool = True,
) -> TeacherResult:
    """Train (or resume) the flow-matching teacher in ``out_dir``; see the module docstring.

    ``data``: ``(images uint8 (N, 1, 28, 28), labels int64 (N,))``; defaults to the
    Fashion-MNIST train split. ``max_seconds`` stops early (checkpointed, resumable) once that
    much wall time has passed in this call. Raises ``FloatingPointError`` on a non-finite loss
    rather than letting it reach the optimizer.
    """

    out = Path(out_dir)
    device = torch.device(device)
    model_cfg = config.model_config()
    images, labels = data if data is not None else _load_train_split()
    _check_data(images, labels, model_cfg.num_classes)
    images, labels = images.to(device), labels.to(device)

    run = _new_run(config, model_cfg, device)
    _resume(run, config, out, device)
    atomic_write_json(
        out / "config.json", {"teacher": asdict(config), "model": model_cfg.to_dict()}
    )
    last_loss = _train_until_done(
        run, config, images, labels, out=out, device=device, max_seconds=max_seconds, progress=progress
    )
    _export_teacher(run.ema, config, model_cfg, run.step, images.shape[1:], out)
    finished = run.step >= config.steps
    return TeacherResult(model=run.ema, step=run.step, finished=finished, last_loss=last_loss, out_dir=out)


def load_teacher(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    trainable: bool = False,
) -> VelocityUNet:
    """Load the EMA teacher written by :func:`train_teacher` (``teacher.safetensors``).

    ``path`` is the weights file or the run directory holding it. By default the network is
    frozen (eval mode, no gradients): a teacher to sample. ``trainable=True`` returns it in
    train mode with gradients on, the starting point of iRDM post-training, e.g.
    ``FewStepGenerator(load_teacher(p, trainable=True), 1, (1, 28, 28))``.
    """

    path = Path(path)
    if path.is_dir():
        path = path / "teacher.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"teacher weights {path} not found: train them with `repmatch teacher --out DIR` "
            "and pass DIR/teacher.safetensors"
        )
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "model_config" not in meta:
        raise ValueError(f"{path} has no 'model_config' metadata; was it written by train_teacher?")
    model = VelocityUNet(VelocityUNetConfig.from_dict(json.loads(meta["model_config"])))
    model.load_state_dict(load_file(str(path), device="cpu"))
    model.to(device).train(trainable).requires_grad_(trainable)
    return model
