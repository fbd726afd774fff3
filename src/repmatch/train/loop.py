"""The training loop (paper §3.2–3.3): one readable function, intervals counted in images.

Every step draws a *fresh* global batch of N noises (and conditions from the pool) — never a
stale buffer — shards it across ranks, and accumulates the exact full-batch gradient of

    L = Σ_φ λ_φ · raw_φ / |raw_φ|,    raw_φ = D_φ(features_φ(g_θ(z, c)), reference_φ)

with gradient caching (:func:`~repmatch.train.cached_backward`), where the weights λ come from
the gated proportional Lagrangian controller fed with this step's scores ``raw_φ``. The step
is skipped (and logged) when the loss or the gradient norm is not finite, and when every
encoder is at its floor (all λ = 0); ``max_consecutive_skips`` non-finite steps in a row stop
the run with :class:`NonFiniteTrainingError`. AdamW at ``lr = lr_at_batch_5120·sqrt(N/5120)``,
gradient clipping, optional weight EMA. Resume-from-latest restores parameters, optimizer,
EMA, controller, monitor, counters and every RNG stream, so an interrupted run continues
exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm  # type: ignore[import-untyped]

from ..io import atomic_write_json
from ..generators import Generator
from ..images import make_grid, save_png
from .checkpoint import (
    append_stats,
    capture_rng,
    ema_update_,
    load_latest_checkpoint,
    restore_rng,
    run_lock,
    save_checkpoint,
    truncate_stats,
)
from .config import RESUMABLE_FIELDS, TaskBuilder, TrainConfig
from .controller import LagrangianController, scale_free
from .distributed import DistEnv, distributed_cached_backward, init_distributed, unwrap
from .task import TrainTask

if TYPE_CHECKING:  # an optional extra, imported on use
    from torch.utils.tensorboard import SummaryWriter


class NonFiniteTrainingError(FloatingPointError):
    """Raised when ``max_consecutive_skips`` steps in a row had a non-finite value."""


class AntiGamingMonitor:
    """Warns when a training encoder sits at/below its floor while held-out ones stall.

    Held-out progress is the mean held-out excess ``s - b``; it has *stopped improving* when
    the best of the last ``patience`` evaluations is no better than the best before them.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.history: list[float] = []

    def update(self, heldout_excess: Mapping[str, float], train_excess: Mapping[str, float]) -> str | None:
        self.history.append(sum(heldout_excess.values()) / max(len(heldout_excess), 1))
        if len(self.history) <= self.patience:
            return None
        before, recent = self.history[: -self.patience], self.history[-self.patience :]
        stalled = min(recent) >= min(before)
        gamed = sorted(n for n, e in train_excess.items() if e <= 0)
        if stalled and gamed:
            return (
                f"training encoders {gamed} are at or below their real floor while the held-out "
                f"encoders have not improved for {self.patience} evaluations: the generator may be "
                "gaming the training encoders"
            )
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = list(state["history"])


def _device(config: TrainConfig) -> str | None:
    return None if config.device == "auto" else config.device


def _crossed(before: int, after: int, every: int | None) -> bool:
    return every is not None and before // every != after // every


def _slice_rows(x: Any, start: int, stop: int) -> Any:
    return None if x is None else x[start:stop]


def _tensor_sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum(terms)`` of non-empty ``terms`` (``sum`` is typed to return 0 for empty ones)."""
    total = sum(terms)
    assert isinstance(total, torch.Tensor)
    return total


class _Trainer:
    """State of one run; :func:`train` drives it."""

    def __init__(self, config: TrainConfig, task: TrainTask | TaskBuilder, env: DistEnv) -> None:
        self.config, self.env = config, env
        if config.batch_size % env.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the world size {env.world_size}"
            )
        torch.manual_seed(config.seed)  # weight init inside the task builder
        self.task = task if isinstance(task, TrainTask) else task(config, env.device)
        self.generator = self.task.generator.to(env.device)
        self.model: nn.Module = self.generator
        if env.world_size > 1:

            self.model = DistributedDataParallel(
                self.generator, device_ids=[env.device.index] if env.device.type == "cuda" else None
            )
        self.names = list(self.task.distances)
        # Noise in the generator's parameter dtype (float64 models in exactness tests).
        self.noise_dtype = next((p.dtype for p in self.generator.parameters() if p.is_floating_point()), torch.float32)
        self.lr = config.lr
        self.optimizer = torch.optim.AdamW(
            self.generator.parameters(), lr=self.lr, betas=config.optim.betas,
            eps=config.optim.eps, weight_decay=config.optim.weight_decay,
        )
        self.controller = LagrangianController(self.names, self.task.floors, config.controller)
        self.monitor = AntiGamingMonitor(config.monitor_patience)
        self.ema = None
        if config.ema_halflife_nimg is not None:
            self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        # The noise/condition stream is shared by all ranks (each takes its rows), so the global
        # batch does not depend on the world size; dropout streams differ per rank.
        self.noise_rng = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed + 1 + env.rank)
        self.nimg = self.step = self.skipped = 0
        self.consecutive_skips = 0  # non-finite steps in a row (reset by any finite step)
        self.run_dir = Path(config.run_dir)
        self.stats_path = self.run_dir / "stats.jsonl"
        self.tb: SummaryWriter | None = None
        self._nonfinite_output = False  # set when a generator output of this step was not finite

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "nimg": self.nimg, "step": self.step, "skipped": self.skipped,
            "consecutive_skips": self.consecutive_skips,
            "generator": self.generator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "controller": self.controller.state_dict(),
            "monitor": self.monitor.state_dict(),
            "rng": self._all_rng(),
            "config": self.config.to_dict(),
        }

    def _all_rng(self) -> list[dict[str, Any]]:
        mine = capture_rng(self.noise_rng)
        if self.env.world_size == 1:
            return [mine]

        out: list[Any] = [None] * self.env.world_size
        dist.all_gather_object(out, mine)
        return out

    def resume(self) -> bool:
        found = load_latest_checkpoint(self.run_dir)
        if found is None:
            return False
        path, state = found
        changed = self.config.changed_fields(state["config"])
        if changed:
            raise ValueError(
                f"run_dir {str(self.run_dir)!r} holds a run with another config ({', '.join(changed)} "
                f"differ); resume with the same settings (may change: {', '.join(RESUMABLE_FIELDS)}) "
                "or use another run_dir"
            )
        if len(state["rng"]) != self.env.world_size:
            raise ValueError(
                f"checkpoint {path} was written by {len(state['rng'])} ranks; resume with the same world size"
            )
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.controller.load_state_dict(state["controller"])
        self.monitor.load_state_dict(state["monitor"])
        self.nimg, self.step, self.skipped = state["nimg"], state["step"], state["skipped"]
        self.consecutive_skips = int(state.get("consecutive_skips", 0))  # absent before 0.1
        restore_rng(state["rng"][self.env.rank], self.noise_rng)
        if self.env.is_main:
            truncate_stats(self.stats_path, "nimg", self.nimg)
        return True

    # ------------------------------------------------------------------ one step
    def _features(self, model: nn.Module, noise: torch.Tensor, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        pool, dev = self.task.conditions, self.env.device
        cond = None
        if pool is not None:
            assert index is not None  # step_once draws rows of the pool whenever there is one
            cond = pool.condition(index, dev)
        images = model(noise, cond)
        if not bool(torch.isfinite(images.detach()).all()):
            self._nonfinite_output = True
        return self.task.features(images, index)

    def step_once(self) -> dict[str, Any]:
        cfg, env = self.config, self.env
        n = cfg.batch_size
        noise_shape = cast("Generator", self.generator).noise_shape  # nn.Module: Tensor | Module
        noise = torch.randn(n, *noise_shape, generator=self.noise_rng, dtype=self.noise_dtype)
        index = None if self.task.conditions is None else self.task.conditions.sample(n, self.noise_rng)
        per_rank = n // env.world_size
        lo, hi = env.rank * per_rank, (env.rank + 1) * per_rank
        noise, index = noise[lo:hi].to(env.device), _slice_rows(index, lo, hi)
        chunk = cfg.chunk_size or per_rank
        chunks = [
            (noise[i : i + chunk], _slice_rows(index, i, i + chunk)) for i in range(0, per_rank, chunk)
        ]
        info: dict[str, Any] = {}
        where: list[str] = []  # where a non-finite value appeared, for the skip record
        self._nonfinite_output = False

        def loss(feats: dict[str, torch.Tensor]) -> torch.Tensor:
            bad = [k for k in self.names if not bool(torch.isfinite(feats[k].detach()).all())]
            if bad:
                # The distances refuse non-finite features; a NaN surrogate marks the step
                # non-finite (its gradient is discarded) and leaves the controller untouched.
                where.extend(f"features[{k}]" for k in bad)
                return _tensor_sum(feats[k].sum() for k in self.names) * math.nan
            raw = {k: self.task.distances[k](feats[k]) for k in self.names}
            scores = {k: float(v.detach()) for k, v in raw.items()}
            info["score"] = scores
            if not all(math.isfinite(s) for s in scores.values()):
                # Non-finite: the step is skipped, the controller untouched.
                where.extend(f"loss[{k}]" for k, s in scores.items() if not math.isfinite(s))
                return _tensor_sum(raw.values())
            weights = self.controller.update(scores)
            info["weight"] = weights
            # The loss below is scale-free (its value only counts active weights); this is the
            # weighted raw distance it descends, for the log.
            info["objective"] = sum(weights[k] * scores[k] for k in self.names)
            return _tensor_sum(weights[k] * scale_free(raw[k]) for k in self.names)

        self.optimizer.zero_grad(set_to_none=True)
        value = distributed_cached_backward(
            self.model, lambda c: self._features(self.model, c[0], c[1]), chunks, loss
        )
        params = [p for p in self.generator.parameters() if p.grad is not None]
        clip = cfg.optim.grad_clip_norm if cfg.optim.grad_clip_norm is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip)) if params else 0.0
        status = "ok"
        if not (math.isfinite(float(value)) and math.isfinite(grad_norm)):
            status = "nonfinite"
            if self._nonfinite_output:
                where.insert(0, "generator output")
            if not where:
                where.append("gradient")
            info["where"] = where
        elif all(w == 0.0 for w in info["weight"].values()):
            status = "satisfied"  # every encoder at its floor: no update (λ = 0)
        if status == "ok":
            self.optimizer.step()
            if self.ema is not None:
                assert cfg.ema_halflife_nimg is not None  # the EMA exists only with a half-life
                ema_update_(self.ema, self.generator, 0.5 ** (n / cfg.ema_halflife_nimg))
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
        self.consecutive_skips = self.consecutive_skips + 1 if status == "nonfinite" else 0
        self.nimg += n
        self.step += 1
        return {"loss": float(value), "grad_norm": grad_norm, "status": status, **info}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _generate(self, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images from fixed noise (its own generator: the training RNG streams are untouched)."""
        g = torch.Generator().manual_seed(seed)
        model = self.ema if self.ema is not None else self.generator
        was_training = model.training
        model.eval()
        noise_shape = cast("Generator", self.generator).noise_shape  # nn.Module: Tensor | Module
        noise = torch.randn(count, *noise_shape, generator=g, dtype=self.noise_dtype)
        noise = noise.to(self.env.device)
        pool = self.task.conditions
        index: torch.Tensor | None = None
        cond = None
        if pool is not None:
            index = pool.sample(count, g)
            cond = pool.condition(index, self.env.device)
        images = model(noise, cond)
        model.train(was_training)
        return images, index

    @torch.no_grad()
    def heldout_scores(self) -> dict[str, float]:
        """Excess ``s - b`` of each held-out encoder on ``heldout_num_samples`` generated images."""
        images, index = self._generate(self.config.heldout_num_samples, self.config.seed + 7919)
        feats = self.task.heldout_features(images, index)
        return {
            k: float(d(feats[k])) - self.task.heldout_floors[k] for k, d in self.task.heldout_distances.items()
        }

    # ------------------------------------------------------------------ logging
    def log(self, record: dict[str, Any]) -> None:
        if not self.env.is_main:
            return
        append_stats(self.stats_path, record)
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(key, value, record["nimg"])
                elif isinstance(value, dict):
                    for sub, v in value.items():
                        self.tb.add_scalar(f"{key}/{sub}", v, record["nimg"])


def train(
    config: TrainConfig, task: TrainTask | TaskBuilder | None = None, *, session_nimg: int | None = None
) -> dict[str, Any]:
    """Train (or resume) the run described by ``config``; return a summary.

    Args:
        config: the run. Its resolved form is saved as ``<run_dir>/config.json``.
        task: what to optimise: ``None`` for the task of ``config.task`` (its
            ``build(config, device)``: for :class:`repmatch.train.GeneralTask` your generator
            against your references), a :class:`TrainTask`, or a builder
            ``(config, device) -> TrainTask`` called after ``torch.manual_seed(config.seed)``
            on the device this process trains on (so weight init is seeded and each
            ``torchrun`` rank builds on its own GPU).
        session_nimg: stop this session after about this many images (checkpointing first),
            as a time-sliced job would; the next call resumes from the latest checkpoint.
    """
    env = init_distributed(_device(config))
    trainer = _Trainer(config, config.task.build if task is None else task, env)
    # One writer per run directory (rank 0 speaks for a torchrun job).
    with run_lock(trainer.run_dir) if env.is_main else contextlib.nullcontext():
        return _run(trainer, config, env, session_nimg)


def _open_run(trainer: _Trainer) -> bool:
    """Resume from the newest checkpoint (whether one was found), save ``config.json`` and open
    the TensorBoard writer."""
    config = trainer.config
    resumed = trainer.resume()
    if trainer.env.is_main:
        atomic_write_json(trainer.run_dir / "config.json", config.to_dict())
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError('tensorboard=True needs the `tensorboard` package: pip install "repmatch[tensorboard]"') from exc
            trainer.tb = SummaryWriter(str(trainer.run_dir / "tensorboard"))
    return resumed


def _check_skip(trainer: _Trainer, last: dict[str, Any]) -> None:
    """Warn about and log a skipped non-finite step; stop after ``max_consecutive_skips``."""
    now = trainer.nimg
    where = last.get("where", [])
    if trainer.env.is_main:
        warnings.warn(f"non-finite value at nimg={now} ({', '.join(where)}): step skipped", RuntimeWarning)
    trainer.log({"nimg": now, "step": trainer.step, "event": "nonfinite_skip", "loss": last["loss"],
                 "where": where})
    if trainer.consecutive_skips >= trainer.config.max_consecutive_skips:
        # The parameters are those of the last finite step (skips never update them),
        # so the latest checkpoint is a sound place to resume from after a fix.
        raise NonFiniteTrainingError(
            f"training stopped at nimg={now}: {trainer.consecutive_skips} consecutive steps "
            f"were non-finite (last in {', '.join(where) or 'the loss'}); "
            "lower the learning rate, check the generator, or raise max_consecutive_skips"
        )


def _warn_satisfied(nimg: int) -> None:
    warnings.warn(
        f"every training encoder is at or below its real floor at nimg={nimg}: no update. "
        "If the samples are still poor, the floors are too high (a validation set too "
        "small, or measured at another batch size): rebuild them with more validation "
        "images (repmatch references --val)",
        RuntimeWarning,
    )


def _new_window(nimg: int) -> dict[str, Any]:
    """The logging window's running sums, from ``nimg`` on."""
    return {"loss": 0.0, "steps": 0, "t0": time.perf_counter(), "nimg0": nimg}


def _log_window(trainer: _Trainer, window: dict[str, Any], last: dict[str, Any]) -> None:
    """One ``stats.jsonl`` record of the window's mean loss and this step's state."""
    now = trainer.nimg
    elapsed = time.perf_counter() - window["t0"]
    excess = trainer.controller.excess() if trainer.controller.smoothed is not None else {}
    trainer.log({
        "nimg": now, "step": trainer.step, "lr": trainer.lr, "status": last["status"],
        # No finite step in the window: no mean loss (null), not a misleading 0.
        "loss": window["loss"] / window["steps"] if window["steps"] else None,
        "grad_norm": last["grad_norm"],
        "score": last.get("score", {}), "excess": excess, "weight": last.get("weight", {}),
        "objective": last.get("objective"),
        "skipped": trainer.skipped, "img_per_s": (now - window["nimg0"]) / max(elapsed, 1e-9),
    })


def _score_heldout(trainer: _Trainer) -> None:
    """Score the held-out encoders, log them and let the anti-gaming monitor speak."""
    held = trainer.heldout_scores()
    warning = trainer.monitor.update(held, trainer.controller.excess())
    trainer.log({"nimg": trainer.nimg, "step": trainer.step, "heldout_excess": held, "monitor": warning})
    if warning and trainer.env.is_main:
        warnings.warn(warning, RuntimeWarning)


def _save_samples(trainer: _Trainer) -> None:
    images, _ = trainer._generate(trainer.config.num_samples, trainer.config.seed + 104729)
    grid = make_grid(images.float(), nrow=max(1, math.ceil(math.sqrt(len(images)))))
    save_png(trainer.run_dir / "samples" / f"samples-{trainer.nimg:012d}.png", grid)


def _run(trainer: _Trainer, config: TrainConfig, env: DistEnv, session_nimg: int | None) -> dict[str, Any]:
    resumed = _open_run(trainer)
    iv = config.intervals
    start_nimg = trainer.nimg
    limit = iv.total_nimg if session_nimg is None else min(iv.total_nimg, start_nimg + session_nimg)
    bar = None
    if config.progress and env.is_main:
        bar = tqdm(total=iv.total_nimg, initial=trainer.nimg, unit="img", dynamic_ncols=True,
                   desc=f"train {trainer.run_dir.name}")
    window = _new_window(trainer.nimg)
    last: dict[str, Any] = {}
    warned_satisfied = False
    while trainer.nimg < limit:
        before = trainer.nimg
        last = trainer.step_once()
        now = trainer.nimg
        if bar is not None:
            bar.update(now - before)
            # The scale-free loss is Σλ by construction; the weighted raw distance moves.
            objective = last.get("objective")
            bar.set_postfix(objective="–" if objective is None else f"{objective:.4g}", status=last["status"])
        if last["status"] == "nonfinite":
            _check_skip(trainer, last)
        else:
            window["loss"] += last["loss"]
            window["steps"] += 1
        if last["status"] == "satisfied" and not warned_satisfied and env.is_main:
            warned_satisfied = True  # once per call: a run may legitimately end at its floors
            _warn_satisfied(now)
        if _crossed(before, now, iv.log_every_nimg):
            _log_window(trainer, window, last)
            window = _new_window(now)
        if trainer.task.heldout_distances and _crossed(before, now, iv.heldout_every_nimg):
            _score_heldout(trainer)
        if env.is_main and _crossed(before, now, iv.sample_every_nimg):
            _save_samples(trainer)
        if _crossed(before, now, iv.checkpoint_every_nimg) or now >= limit:
            state = trainer.state_dict()  # collective under torch.distributed: every rank calls it
            if env.is_main:
                save_checkpoint(trainer.run_dir, now, state, iv.keep_checkpoints)
    if bar is not None:
        bar.close()
    if trainer.tb is not None:
        trainer.tb.close()
    return {
        "nimg": trainer.nimg, "step": trainer.step, "skipped": trainer.skipped, "resumed": resumed,
        "resumed_from_nimg": start_nimg if resumed else None, "last": last,
        "generator": unwrap(trainer.model),
    }
