"""Training configuration: frozen keyword-only dataclasses validated in ``__post_init__``.

The learning-rate rule (paper §3.2, after Malladi et al., 2022) scales the rate with the
square root of the global generation batch ``N``::

    lr(N) = lr_at_batch_5120 · sqrt(N / 5120)

The reference point is the paper's ImageNet recipe, ``1.6e-6`` at ``N = 5120`` (§4.1). A run
far from that regime may instead fix ``lr`` (a constant rate, whatever ``N``).
All intervals are counted in generated images (``*_nimg``), like EDM2.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..validate import check_choice, check_nonnegative_int, check_positive, check_scales
from .controller import ControllerConfig

LR_REFERENCE_BATCH = 5120


def _check_optional_positive(name: str, value: Any, integer: bool = False) -> None:
    if value is not None:
        check_positive(name, value, integer=integer)


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """AdamW settings and the √N learning-rate rule.

    Attributes:
        lr_at_batch_5120: learning rate at the reference global batch ``N = 5120``, scaled
            as ``√(N/5120)`` (default ``1.6e-6`` when ``lr`` is not given).
        lr: a constant learning rate, used as is for every ``N``; exclusive with
            ``lr_at_batch_5120``.
        betas, weight_decay, eps: AdamW.
        grad_clip_norm: global gradient-norm clip; ``None`` disables clipping.
    """

    lr_at_batch_5120: float | None = None
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8
    grad_clip_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if self.lr is not None and self.lr_at_batch_5120 is not None:
            raise ValueError("optim: give lr_at_batch_5120 (scaled by √(N/5120)) or lr (constant), not both")
        if self.lr is None and self.lr_at_batch_5120 is None:
            object.__setattr__(self, "lr_at_batch_5120", 1.6e-6)
        _check_optional_positive("optim.lr_at_batch_5120", self.lr_at_batch_5120)
        _check_optional_positive("optim.lr", self.lr)
        object.__setattr__(self, "betas", tuple(self.betas))
        if len(self.betas) != 2 or not all(
            isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in self.betas
        ):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.betas!r}")
        if isinstance(self.weight_decay, bool) or not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be a non-negative number, got {self.weight_decay!r}")
        check_positive("optim.eps", self.eps)
        _check_optional_positive("optim.grad_clip_norm", self.grad_clip_norm)

    def lr_for(self, batch_size: int) -> float:
        """The learning rate for a global batch of ``batch_size`` images."""
        if self.lr is not None:
            return self.lr
        assert self.lr_at_batch_5120 is not None  # set in __post_init__
        return self.lr_at_batch_5120 * math.sqrt(batch_size / LR_REFERENCE_BATCH)


@dataclass(frozen=True, kw_only=True)
class IntervalConfig:
    """How long to train and how often to act, counted in generated images.

    ``None`` disables an action (sampling, held-out scoring); logging and checkpointing default
    to every ``total_nimg / 20`` and ``total_nimg / 4`` images. An action fires at the first
    step whose image counter crosses a multiple of its interval.
    """

    total_nimg: int
    log_every_nimg: int | None = None
    checkpoint_every_nimg: int | None = None
    sample_every_nimg: int | None = None
    heldout_every_nimg: int | None = None
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        check_positive("intervals.total_nimg", self.total_nimg, integer=True)
        if self.log_every_nimg is None:
            object.__setattr__(self, "log_every_nimg", max(1, self.total_nimg // 20))
        if self.checkpoint_every_nimg is None:
            object.__setattr__(self, "checkpoint_every_nimg", max(1, self.total_nimg // 4))
        check_positive("intervals.log_every_nimg", self.log_every_nimg, integer=True)
        check_positive("intervals.checkpoint_every_nimg", self.checkpoint_every_nimg, integer=True)
        _check_optional_positive("intervals.sample_every_nimg", self.sample_every_nimg, integer=True)
        _check_optional_positive("intervals.heldout_every_nimg", self.heldout_every_nimg, integer=True)
        check_positive("intervals.keep_checkpoints", self.keep_checkpoints, integer=True)


@dataclass(frozen=True, kw_only=True)
class JointConfig:
    """Joint image–condition features, paper eq. 4: ``Φ(x, c) = φ(x) ⊕ β·τ(c)``.

    The condition embedding ``τ`` comes with the task's condition pool
    (:class:`repmatch.represent.ConditionPool`: one-hot classes or embedded prompts).

    Attributes:
        beta: β, the weight of the condition component.
        bandwidth_scale: the joint kernel's bandwidth is this × the median heuristic on joint
            reference features (the paper uses 0.25 for text, App. E.1); a list of scales
            makes a multi-scale kernel (one Nyström reference per scale, summed).
    """

    beta: float = 1.0
    bandwidth_scale: float | tuple[float, ...] = 0.25

    def __post_init__(self) -> None:
        check_positive("joint.beta", self.beta)
        object.__setattr__(self, "bandwidth_scale", check_scales("joint.bandwidth_scale", self.bandwidth_scale))


#: Fields a resumed run may change (how long, how often to log and save, where it runs); any
#: other difference from the checkpoint's config is refused.
RESUMABLE_FIELDS: tuple[str, ...] = (
    "run_dir", "device", "chunk_size", "progress", "tensorboard", "num_samples",
    "heldout_num_samples", "monitor_patience", "intervals.total_nimg", "intervals.log_every_nimg",
    "intervals.checkpoint_every_nimg", "intervals.sample_every_nimg",
    "intervals.heldout_every_nimg", "intervals.keep_checkpoints", "max_consecutive_skips",
)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and key != "task_options" and key != "generator_kwargs":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A complete, serialisable training run.

    Attributes:
        task: ``"general"`` (your generator against references, the fields below), or the
            name under which the command line finds an application's task builder (``toy``,
            ``fmnist``); :func:`repmatch.train.train` given a task object only records it.
        task_options: JSON-able options for an application's builder (validated by it).
        generator: a registered generator source (``"mlp"``, :data:`repmatch.generators.GENERATORS`)
            or ``"module:callable"`` returning your generator (an ``nn.Module`` called as
            ``(noise, condition) -> images in [0, 1]``), imported from the working directory or
            ``PYTHONPATH``; ``generator_kwargs`` are passed to the callable.
        noise_shape: per-sample noise shape (required unless the module has ``noise_shape``).
        init_checkpoint: initial weights for the module the callable returns (``.safetensors``,
            a weights-only ``torch.save`` state dict, or a repmatch checkpoint).
        sampler_steps: wrap the module, a velocity model ``v(x_t, t, condition)``, as a K-step
            Euler sampler (:class:`repmatch.generators.FewStepGenerator`): few-step
            post-training; ``noise_shape`` is then the image shape.
        references: the directory ``repmatch references`` wrote (references, floors, and the
            condition pool when the references are class-joint).
        train_encoders: encoders trained against (default: every encoder of ``references``
            not in ``heldout_encoders``); heldout_encoders: scored, never trained on.
        encoder_weights: ``{encoder: path}`` for encoders whose weights you supply.
        run_dir: where checkpoints, ``stats.jsonl``, samples and ``config.json`` go.
        seed: seeds weights init, the noise/condition stream and the dropout streams.
        batch_size: the global generation batch N per optimizer step (fresh every step).
        chunk_size: rows per gradient-cache chunk on each rank (``None``: the whole shard).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        ema_halflife_nimg: half-life of the generator-weight EMA in images (``None``: off).
        joint: joint conditional features (``None``: match the image marginal).
        tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).
        progress: show a progress bar on rank 0.
        num_samples: images in each sample grid.
        heldout_num_samples: generated images scored by held-out encoders per evaluation.
        monitor_patience: held-out evaluations without improvement before the
            anti-gaming warning may fire.
        max_consecutive_skips: stop with :class:`repmatch.train.NonFiniteTrainingError` after
            this many steps in a row were skipped for a non-finite value (a diverged run
            should not burn its budget silently).
    """

    task: str = "general"
    task_options: Mapping[str, Any] = field(default_factory=dict)
    generator: str | None = None
    generator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    noise_shape: tuple[int, ...] | None = None
    init_checkpoint: str | None = None
    sampler_steps: int | None = None
    references: str | None = None
    train_encoders: tuple[str, ...] = ()
    heldout_encoders: tuple[str, ...] = ()
    encoder_weights: Mapping[str, str] = field(default_factory=dict)
    run_dir: str
    seed: int = 0
    batch_size: int
    chunk_size: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    optim: OptimConfig = field(default_factory=OptimConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    intervals: IntervalConfig
    ema_halflife_nimg: int | None = None
    joint: JointConfig | None = None
    tensorboard: bool = False
    progress: bool = True
    num_samples: int = 64
    heldout_num_samples: int = 1024
    monitor_patience: int = 3
    max_consecutive_skips: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task must be a non-empty task name, got {self.task!r}")
        if not isinstance(self.task_options, Mapping):
            raise TypeError(f"task_options must be a mapping, got {type(self.task_options).__name__}")
        for key in ("generator", "init_checkpoint", "references"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{key} must be a non-empty string or null, got {value!r}")
        for key in ("generator_kwargs", "encoder_weights"):
            if not isinstance(getattr(self, key), Mapping):
                raise TypeError(f"{key} must be a mapping, got {type(getattr(self, key)).__name__}")
        if self.noise_shape is not None:
            shape = self.noise_shape
            if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not shape or not all(
                isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
            ):
                raise ValueError(f"noise_shape must be a non-empty list of positive ints, got {shape!r}")
            object.__setattr__(self, "noise_shape", tuple(shape))
        _check_optional_positive("sampler_steps", self.sampler_steps, integer=True)
        for key in ("train_encoders", "heldout_encoders"):
            names = getattr(self, key)
            if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"{key} must be a list of encoder names, got {names!r}")
            object.__setattr__(self, key, tuple(names))
        overlap = sorted(set(self.train_encoders) & set(self.heldout_encoders))
        if overlap:
            raise ValueError(f"heldout_encoders must not repeat train_encoders, got {overlap} in both")
        if not isinstance(self.run_dir, str) or not self.run_dir:
            raise ValueError(f"run_dir must be a non-empty path string, got {self.run_dir!r}")
        check_nonnegative_int("seed", self.seed)
        check_positive("batch_size", self.batch_size, integer=True)
        _check_optional_positive("chunk_size", self.chunk_size, integer=True)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        _check_optional_positive("ema_halflife_nimg", self.ema_halflife_nimg, integer=True)
        check_positive("num_samples", self.num_samples, integer=True)
        check_positive("heldout_num_samples", self.heldout_num_samples, integer=True)
        check_positive("monitor_patience", self.monitor_patience, integer=True)
        check_positive("max_consecutive_skips", self.max_consecutive_skips, integer=True)
        for name, typ in (("optim", OptimConfig), ("controller", ControllerConfig), ("intervals", IntervalConfig)):
            if not isinstance(getattr(self, name), typ):
                raise TypeError(f"{name} must be a {typ.__name__}, got {type(getattr(self, name)).__name__}")
        if self.joint is not None and not isinstance(self.joint, JointConfig):
            raise TypeError(f"joint must be a JointConfig or None, got {type(self.joint).__name__}")

    @property
    def lr(self) -> float:
        """The learning rate after the √N rule."""
        return self.optim.lr_for(self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from nested plain data (a parsed JSON/TOML file); unknown keys are errors."""
        nested = {"optim": OptimConfig, "controller": ControllerConfig, "intervals": IntervalConfig, "joint": JointConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; accepted: {sorted(known)}")
        kwargs = dict(data)
        for key, sub in nested.items():
            if key in kwargs and kwargs[key] is not None and not isinstance(kwargs[key], sub):
                sub_known = {f.name for f in dataclasses.fields(sub)}
                bad = sorted(set(kwargs[key]) - sub_known)
                if bad:
                    raise ValueError(f"unknown keys {bad} in {key}; accepted: {sorted(sub_known)}")
                kwargs[key] = sub(**kwargs[key])
        return cls(**kwargs)

    def changed_fields(self, saved: Mapping[str, Any]) -> list[str]:
        """The fields (dotted) in which this config differs from ``saved`` (a checkpoint's
        ``to_dict()``), beyond :data:`RESUMABLE_FIELDS`; fields ``saved`` lacks are not compared."""
        old, new = _flatten(saved), _flatten(self.to_dict())
        return sorted(k for k in old.keys() & new.keys() if old[k] != new[k] and k not in RESUMABLE_FIELDS)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
