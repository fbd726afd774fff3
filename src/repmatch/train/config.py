"""Training configuration: frozen keyword-only dataclasses validated in ``__post_init__``.

One dataclass per concern: :class:`LoopConfig` is the loop (batch, optimiser, controller,
intervals, EMA, sampling and held-out scoring); :class:`TrainConfig` is a run, its loop plus
where it lives and how it is seeded, holding the run's ``task`` section: a task config whose
type depends on the task, :class:`repmatch.train.GeneralTask` (your generator against your
references) or an application's (looked up by name in :data:`TASKS`). ``config.json`` holds
each value once::

    {"run_dir": ..., "batch_size": ..., "optim": {...}, "intervals": {...}, ...,
     "task": {"name": "general", "generator": ..., "references": ...}}

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
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import torch

from ..registry import Registry
from ..validate import check_choice, check_nonnegative_int, check_positive, check_scales
from .controller import ControllerConfig
from .task import TrainTask

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


#: ``(config, device) -> TrainTask``: builds a task for one process (see :func:`repmatch.train.train`).
TaskBuilder = Callable[["TrainConfig", torch.device], TrainTask]


@runtime_checkable
class TaskConfig(Protocol):
    """The ``task`` section of a :class:`TrainConfig`: a frozen dataclass of the task's own
    settings that builds the task.

    ``name`` (a class attribute) is the name it is found under in :data:`TASKS` (or its
    ``"module:attribute"``), written as ``task.name`` in ``config.json``; ``build`` is a
    :data:`TaskBuilder`, called by :func:`repmatch.train.train` on its device after seeding.
    """

    name: ClassVar[str]

    def build(self, config: TrainConfig, device: torch.device) -> TrainTask: ...


def _check_task_type(key: str, obj: Any) -> None:
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj) and callable(getattr(obj, "build", None))
            and isinstance(getattr(obj, "name", None), str)):
        raise TypeError(
            f"{key}: {obj!r} is not a task config type (a dataclass with a name and build(config, device))"
        )


#: Task names → task config types: the library's ``general`` (:class:`repmatch.train.GeneralTask`,
#: registered where it is defined), the tasks installed packages declare in the entry-point
#: group ``repmatch.tasks`` (the applications' ``toy``, ``fmnist``, ``fmnist-study``), and any
#: ``"module:attribute"``.
TASKS: Registry[type] = Registry("task", check=_check_task_type)


#: Fields a resumed run may change (how long, how often to log and save, where it runs); any
#: other difference from the checkpoint's config is refused.
RESUMABLE_FIELDS: tuple[str, ...] = (
    "run_dir", "device", "chunk_size", "progress", "tensorboard", "num_samples",
    "heldout_num_samples", "monitor_patience", "intervals.total_nimg", "intervals.log_every_nimg",
    "intervals.checkpoint_every_nimg", "intervals.sample_every_nimg",
    "intervals.heldout_every_nimg", "intervals.keep_checkpoints", "max_consecutive_skips",
)

#: Mappings compared whole on resume (their keys are the user's, not config fields).
_OPAQUE = ("generator_kwargs", "encoder_weights")

D = TypeVar("D")
L = TypeVar("L", bound="LoopConfig")


#: What :func:`_flatten` records at a section's own key, so that a section on one side and a
#: value (``null``) on the other, an optional dataclass switched on or off, differ.
_SECTION = object()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and key not in _OPAQUE:
            out[f"{prefix}{key}"] = _SECTION
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _nested_dataclass(hint: Any) -> type | None:
    """The dataclass a field annotation names, alone or in a union with ``None``."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a) and isinstance(a, type)]
        return found[0] if len(found) == 1 else None
    return None


def _from_plain(cls: type[D], data: Mapping[str, Any], key: str) -> D:
    """An instance of the dataclass ``cls`` from plain data (a parsed JSON/TOML mapping):
    nested dataclass fields are built from their mappings too; an unknown key is an error
    naming ``key`` (the section) and the accepted ones."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{key} must be a mapping of its fields, got {type(data).__name__}")
    assert dataclasses.is_dataclass(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown keys {unknown} in {key}; accepted: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = dict(data)
    for name, value in data.items():
        sub = _nested_dataclass(hints.get(name))
        if sub is not None and isinstance(value, Mapping):
            kwargs[name] = _from_plain(sub, value, f"{key}.{name}")
    return cls(**kwargs)


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON-able plain data (tuples become lists), the inverse of :func:`_from_plain`."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def _task_to_dict(task: TaskConfig) -> dict[str, Any]:
    """A task section as plain data: ``{"name": <its task name>, **fields}``."""
    return {"name": type(task).name, **_plain(task)}


def _task_from_dict(data: Mapping[str, Any]) -> TaskConfig:
    """The task section of ``data`` (``{"name": ..., **fields}``; ``name`` defaults to
    ``"general"``): its config type is :data:`TASKS` ``[name]``."""
    if not isinstance(data, Mapping):
        raise TypeError(f"task must be a mapping {{\"name\": ..., <its fields>}}, got {data!r}")
    fields = dict(data)
    name = fields.pop("name", "general")
    cls = TASKS.get(name, key="task")
    return _from_plain(cls, fields, f"task ({name})")


#: The top-level keys of the earlier flat format that left it: ``task_options``, ``joint`` and
#: the general task's fields (now :class:`repmatch.train.GeneralTask`'s, in the task section).
_FLAT_KEYS = (
    "task_options", "joint", "generator", "generator_kwargs", "noise_shape", "init_checkpoint",
    "sampler_steps", "references", "train_encoders", "heldout_encoders", "encoder_weights",
)


def _check_format(data: Mapping[str, Any]) -> None:
    """Refuse a config written before the task became a section (``"task"`` a name, with
    ``task_options`` or the general task's fields beside it), in one line."""
    if isinstance(data.get("task"), str) or any(k in data for k in _FLAT_KEYS):
        raise ValueError(
            "config: this config has the earlier flat format (the task's fields beside the loop's); the "
            "format changed: the task's fields now live in a \"task\" section ({\"name\": ..., ...}, "
            "docs/train.md); rewrite it or start a new run_dir"
        )


@dataclass(frozen=True, kw_only=True)
class LoopConfig:
    """How the loop trains: the batch, the optimiser, the controller, the intervals, the EMA,
    what it samples and scores, when it gives up. A :class:`TrainConfig` is a loop config plus
    where the run lives, what it optimises and how it is seeded (an application's recipe may
    hold loop configs, as the Fashion-MNIST job's arms do).

    Attributes:
        batch_size: the global generation batch N per optimizer step (fresh every step).
        chunk_size: rows per gradient-cache chunk on each rank (``None``: the whole shard).
        optim, controller, intervals: :class:`OptimConfig`, :class:`ControllerConfig`,
            :class:`IntervalConfig`.
        ema_halflife_nimg: half-life of the generator-weight EMA in images (``None``: off).
        num_samples: images in each sample grid.
        heldout_num_samples: generated images scored by held-out encoders per evaluation.
        monitor_patience: held-out evaluations without improvement before the
            anti-gaming warning may fire.
        max_consecutive_skips: stop with :class:`repmatch.train.NonFiniteTrainingError` after
            this many steps in a row were skipped for a non-finite value (a diverged run
            should not burn its budget silently).
    """

    batch_size: int
    chunk_size: int | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    intervals: IntervalConfig
    ema_halflife_nimg: int | None = None
    num_samples: int = 64
    heldout_num_samples: int = 1024
    monitor_patience: int = 3
    max_consecutive_skips: int = 20

    def __post_init__(self) -> None:
        check_positive("batch_size", self.batch_size, integer=True)
        _check_optional_positive("chunk_size", self.chunk_size, integer=True)
        _check_optional_positive("ema_halflife_nimg", self.ema_halflife_nimg, integer=True)
        check_positive("num_samples", self.num_samples, integer=True)
        check_positive("heldout_num_samples", self.heldout_num_samples, integer=True)
        check_positive("monitor_patience", self.monitor_patience, integer=True)
        check_positive("max_consecutive_skips", self.max_consecutive_skips, integer=True)
        for name, typ in (("optim", OptimConfig), ("controller", ControllerConfig), ("intervals", IntervalConfig)):
            if not isinstance(getattr(self, name), typ):
                raise TypeError(f"{name} must be a {typ.__name__}, got {type(getattr(self, name)).__name__}")

    @property
    def lr(self) -> float:
        """The learning rate after the √N rule."""
        return self.optim.lr_for(self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopConfig:
        """Build from nested plain data (:meth:`to_dict`); unknown keys are errors."""
        return _from_plain(LoopConfig, data, "loop")

    def replace(self: L, **changes: Any) -> L:
        """A copy with ``changes`` (validated again); a :class:`TrainConfig` stays one."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(LoopConfig):
    """A complete, serialisable training run: its loop (the :class:`LoopConfig` fields), where
    it lives, how it is seeded and run, and the task it optimises.

    Attributes:
        task: what the run optimises, a task config (:class:`repmatch.train.GeneralTask`: your
            generator against your references; ``repmatch.apps.toy.ToyTask``; an
            application's). Its ``build(config, device)`` makes the :class:`TrainTask`;
            :func:`repmatch.train.train` given a task object only records it.
        run_dir: where checkpoints, ``stats.jsonl``, samples and ``config.json`` go.
        seed: seeds weights init, the noise/condition stream and the dropout streams.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).
        progress: show a progress bar on rank 0.
    """

    task: TaskConfig
    run_dir: str
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (dataclasses.is_dataclass(self.task) and isinstance(self.task, TaskConfig)):
            raise TypeError(
                f"task must be a task config (a dataclass with a name and build(config, device), e.g. "
                f"GeneralTask), got {type(self.task).__name__}"
            )
        if not isinstance(self.run_dir, str) or not self.run_dir:
            raise ValueError(f"run_dir must be a non-empty path string, got {self.run_dir!r}")
        check_nonnegative_int("seed", self.seed)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))

    @classmethod
    def of(cls, loop: LoopConfig, **run: Any) -> TrainConfig:
        """The run of ``loop``'s settings with the run fields ``run`` (``task``, ``run_dir``, ...)."""
        return cls(**{f.name: getattr(loop, f.name) for f in dataclasses.fields(LoopConfig)}, **run)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; the ``task`` section carries its ``name``."""
        data = _plain(self)
        data["task"] = _task_to_dict(self.task)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from nested plain data (a parsed JSON/TOML file, or :meth:`to_dict`); unknown
        keys are errors, and so is an unknown task name (naming the known ones)."""
        _check_format(data)
        if "task" not in data:
            raise ValueError('task: required, a section {"name": "general" | <an application task>, <its fields>}')
        fields = dict(data)
        task = _task_from_dict(fields.pop("task"))
        return _from_plain(cls, {**fields, "task": task}, "config")

    def changed_fields(self, saved: Mapping[str, Any]) -> list[str]:
        """The fields (dotted) in which this config differs from ``saved`` (a checkpoint's
        ``to_dict()``), beyond :data:`RESUMABLE_FIELDS`; fields ``saved`` lacks are not compared.
        A ``saved`` config of the earlier flat format is refused (:func:`_check_format`)."""
        _check_format(saved)
        old, new = _flatten(saved), _flatten(self.to_dict())
        return sorted(k for k in old.keys() & new.keys() if old[k] != new[k] and k not in RESUMABLE_FIELDS)
