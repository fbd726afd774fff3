"""One arm of a Fashion-MNIST study: fine-tune the job's one-step start, then score it.

Every study (:mod:`.studies`) shares the job's earlier stages (encoders, teacher, features,
floors, Nyström references: the *base*, a ``repmatch fmnist`` output directory) and changes
one design choice per arm, described by an :class:`ArmSpec`:

- the warm start is the teacher run in one Euler step (``FewStepGenerator(teacher, 1, ...)``,
  the job's ``start_1step``), the same for every arm;
- ``distance`` picks the training distance per encoder. ``mmd_nystrom`` uses the base's
  references (eq. 3, joint features eq. 4); every other name is a
  :mod:`repmatch.compare.distances` distance fitted on the same reference rows' features, with
  the references' kernel (median heuristic × the recipe's scales) for the MMD family;
- ``controller``: ``gated`` (the proportional Lagrangian) or ``uniform`` weights;
- ``joint=False`` trains on the image features alone (the marginal): Nyström references
  without the class part are built once under ``OUT/references-marginal``;
- ``monitor=True`` scores held-out encoders during training (their own Nyström references,
  built once under ``OUT/references-heldout`` from the base's train features) and so runs the
  anti-gaming monitor.

Scoring reads the job's evaluation: class-balanced samples, one extraction through the whole
battery, ``repmatch.evaluation.evaluate`` against the base's train features and stored floors
(the base recipe's projections: every arm is read on the same projections), class agreement
and within-class diversity (:mod:`.scoring`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch

from ...io import atomic_write_json
from ...validate import check_choice
from ...compare import distances as distance_registry
from ...compare import median_bandwidth
from ...data import open_dataset
from ...evaluation import evaluate
from ...features import FeatureStore, extract_features
from ...generators import FewStepGenerator, write_sample_grid, write_samples_npz
from ...references import (
    build_references,
    check_scales_tuple,
    load_references,
    reference_distance,
    save_references,
    training_floors,
)
from ...represent import ConditionPool, joint_features, one_hot_embedding
from ...train import (
    ControllerConfig,
    IntervalConfig,
    LoopConfig,
    OptimConfig,
    TrainConfig,
    TrainTask,
    latest_checkpoint,
    load_checkpoint,
    train,
)
from .conv_generator import ConvGenerator, ConvGeneratorConfig
from .parts import (
    FMNIST_NUM_CLASSES,
    IMAGE_SHAPE,
    Layout,
    class_condition,
    load_recipe,
    make_battery,
    resolve_device,
)
from .pipeline import classifier_of, eval_config, sample_scores
from .recipe import FmnistRecipe
from .scoring import RealDraws
from .teacher import load_teacher

#: Training distances an arm may use: the library's six and drifting with an affinity floor.
ARM_DISTANCES: tuple[str, ...] = (*distance_registry.NAMES, "drifting_floor")
#: The released port's affinity floor of ``drifting_floor`` (as the spiral study).
DRIFT_FLOOR = 1e-6

DistanceFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class StudyArmTask:
    """The task section of a study arm's run (``task.name = "fmnist-study"``): the design
    choices of the module doc and the base job's directory ``base``, whose ``config.json``
    holds the recipe. The study's output directory is the run's ``run_dir/../..``
    (``OUT/arms/<key>``)."""

    name: ClassVar[str] = "fmnist-study"

    base: str
    train_encoders: tuple[str, ...]
    distance: str = "mmd_nystrom"
    joint: bool = True
    monitor: bool = False
    generator: Literal["post", "scratch"] = "post"

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_encoders", tuple(self.train_encoders))
        if not self.train_encoders:
            raise ValueError("task.train_encoders must name at least one encoder")
        if self.distance not in ARM_DISTANCES:
            raise ValueError(f"task.distance must be one of {list(ARM_DISTANCES)}, got {self.distance!r}")
        check_choice("task.generator", self.generator, ("post", "scratch"))

    def build(self, config: TrainConfig, device: torch.device) -> TrainTask:
        recipe = load_recipe(Layout.of(self.base))
        return StudyBase(recipe, self.base, Path(config.run_dir).parent.parent).task(self)(config, device)


@dataclass(frozen=True, kw_only=True)
class ArmSpec:
    """One arm: its name ``key``, its ``seed``, how it trains (``loop``, see
    :func:`study_loop`) and what it trains (``task``)."""

    key: str
    seed: int
    loop: LoopConfig
    task: StudyArmTask

    @property
    def steps(self) -> int:
        return math.ceil(self.loop.intervals.total_nimg / self.loop.batch_size)


def study_loop(recipe: FmnistRecipe, *, batch_size: int, total_nimg: int, lr: float, chunk_size: int,
               log_every_nimg: int, controller: str = "gated", monitor: bool = False) -> LoopConfig:
    """An arm's loop: ``total_nimg`` images at batch ``batch_size`` (gradient caching over
    chunks of ``chunk_size``), Adam at the constant ``lr`` with gradient clipping at 1, the
    ``controller`` mode at the job's budget, no EMA (every arm is read from the weights its last
    step left), one checkpoint at the end, held-out scoring every eighth of the run when
    ``monitor``."""
    return LoopConfig(
        batch_size=batch_size,
        chunk_size=chunk_size,
        optim=OptimConfig(lr=lr, grad_clip_norm=1.0),
        # ControllerConfig refuses a mode outside CONTROLLER_MODES by name.
        controller=ControllerConfig(mode=cast(Literal["gated", "uniform"], controller),
                                    budget=recipe.post.controller.budget),
        intervals=IntervalConfig(
            total_nimg=total_nimg,
            log_every_nimg=log_every_nimg,
            checkpoint_every_nimg=total_nimg,
            sample_every_nimg=None,
            heldout_every_nimg=max(log_every_nimg, total_nimg // 8) if monitor else None,
        ),
        num_samples=100,
        heldout_num_samples=min(recipe.eval_samples, 256),
        monitor_patience=2,
    )


class StudyBase:
    """The base job's outputs (``layout``) and what the arms build once on top of them in
    ``out`` (marginal and held-out references; the real draws of the noise level)."""

    def __init__(self, recipe: FmnistRecipe, base: str | Path, out: str | Path) -> None:
        self.recipe = recipe
        self.layout = Layout.of(base)
        self.out = Path(out)
        self.device = resolve_device(recipe)

    # ------------------------------------------------------------------ training side
    def _reference_store(self) -> FeatureStore:
        return FeatureStore(self.layout.reference_features(self.recipe))

    def _built_references(self, kind: str, names: Sequence[str], store: FeatureStore,
                          joint: bool) -> dict[str, DistanceFn]:
        """Nyström references of ``names`` over ``store`` (joint or marginal), built once."""
        out = {}
        for name in names:
            directory = self.out / f"references-{kind}" / name
            fingerprint = store.fingerprints[name]
            condition = class_condition(self.recipe) if joint else None
            if not (directory / "scale0").exists():
                refs = build_references(
                    store.read(name), fingerprint=fingerprint, labels=store.labels,
                    condition=condition, num_landmarks=min(self.recipe.num_landmarks, len(store)),
                    bandwidth_scale=self.recipe.bandwidth_scale, seed=self.recipe.seed,
                    kmeans_iters=self.recipe.kmeans_iters, device=self.device,
                )
                save_references(refs, directory)
            expected = condition.fingerprint(fingerprint) if condition is not None else fingerprint
            out[name] = reference_distance(load_references(directory, self.device), expected)
        return out

    def _pool(self, name: str, store: FeatureStore, joint: bool) -> torch.Tensor:
        """``name``'s features of ``store``, joined with ``β·onehot(c)`` when ``joint`` (eq. 4)."""
        feats = store.read(name)
        if not joint:
            return feats
        return joint_features(feats, one_hot_embedding(store.labels.long(), FMNIST_NUM_CLASSES),
                              self.recipe.beta)

    def _fitted(self, distance: str, name: str, store: FeatureStore, joint: bool, seed: int) -> DistanceFn:
        """``distance`` (any but ``mmd_nystrom``, whose references are built once) fitted on the
        features of ``store``'s rows: the rows behind the base's Nyström references."""
        pool = self._pool(name, store, joint).to(self.device)
        kernel: dict[str, Any] = {}
        if distance.startswith("mmd_"):
            # The references' kernel: the median heuristic times the recipe's scales.
            kernel = {"bandwidth": median_bandwidth(pool, seed=self.recipe.seed),
                      "scales": check_scales_tuple(self.recipe.bandwidth_scale)}
        if distance == "mmd_rff":
            dist = distance_registry.create("mmd_rff", num_features=self.recipe.num_landmarks, seed=seed, **kernel)
        elif distance == "mmd_exact":
            # B fresh reference rows per call (B = the batch's size): the exact within-batch MMD.
            dist = distance_registry.create("mmd_exact", seed=seed, **kernel)
        elif distance == "sliced_wasserstein":
            dist = distance_registry.create("sliced_wasserstein", num_projections=self.recipe.num_projections,
                                            seed=seed)
        elif distance in ("drifting", "drifting_floor"):
            dist = distance_registry.create(
                "drifting", affinity_floor=DRIFT_FLOOR if distance == "drifting_floor" else 0.0, seed=seed)
        else:
            dist = distance_registry.create(distance)
        return dist.fit(pool)

    def _val(self, names: Sequence[str], joint: bool) -> dict[str, torch.Tensor]:
        store = FeatureStore(self.layout.test_features)
        return {n: self._pool(n, store, joint).to(self.device) for n in names}

    def task(self, spec: StudyArmTask) -> Callable[[TrainConfig, torch.device], TrainTask]:
        """The builder of ``spec``'s :class:`TrainTask` (called by ``train`` after seeding; the
        fitted distances draw from ``config.seed``)."""

        def build(config: TrainConfig, device: torch.device) -> TrainTask:
            recipe, layout, names = self.recipe, self.layout, spec.train_encoders
            battery = make_battery(recipe, names, layout, device=device, training=True)
            store = self._reference_store()
            if spec.distance == "mmd_nystrom" and spec.joint:
                refs = {n: reference_distance(load_references(layout.references / n, device),
                                              class_condition(recipe).fingerprint(battery.fingerprints[n]))
                        for n in names}
            elif spec.distance == "mmd_nystrom":
                refs = self._built_references("marginal", names, store, joint=False)
            else:
                refs = {n: self._fitted(spec.distance, n, store, spec.joint, config.seed) for n in names}
            held: Mapping[str, DistanceFn] = {}
            held_battery = None
            held_floors: dict[str, float] = {}
            if spec.monitor:
                heldout = recipe.heldout_encoders
                held_battery = make_battery(recipe, heldout, layout, device=device)
                held = self._built_references("heldout", heldout, FeatureStore(layout.train_features), joint=True)
                held_floors = training_floors(held, self._val(heldout, joint=True), config.heldout_num_samples).values
            pool = ConditionPool.from_labels(store.labels.long(), FMNIST_NUM_CLASSES)
            return TrainTask(
                generator=self._generator(spec.generator, trainable=True),
                encode=battery,
                distances=refs,
                floors=training_floors(refs, self._val(names, spec.joint), config.batch_size).values,
                conditions=pool,
                joint_beta=recipe.beta if spec.joint else None,
                heldout_encode=held_battery,
                heldout_distances=held,
                heldout_floors=held_floors,
            )

        return build

    def train_arm(self, spec: ArmSpec, progress: bool = False) -> dict[str, Any]:
        """Train (or resume) ``spec`` under ``OUT/arms/<key>``; its summary and wall time."""
        run_dir = self.out / "arms" / spec.key
        t0 = time.perf_counter()
        config = TrainConfig.of(spec.loop, task=spec.task, run_dir=str(run_dir), seed=spec.seed,
                                device=self.recipe.device, progress=progress)
        summary = train(config, self.task(spec.task))
        return {"steps": summary["step"], "nimg": summary["nimg"], "skipped": summary["skipped"],
                "train_seconds": time.perf_counter() - t0}

    # ------------------------------------------------------------------ scoring side
    def _generator(self, kind: str, trainable: bool = False) -> torch.nn.Module:
        """``post``: the teacher in one Euler step (the job's ``start_1step``); ``scratch``: a
        fresh ``ConvGenerator`` of the recipe's width (initialised from the current seed)."""
        if kind == "post":
            return FewStepGenerator(load_teacher(self.layout.teacher, trainable=trainable), 1, IMAGE_SHAPE)
        return ConvGenerator(ConvGeneratorConfig(width=self.recipe.scratch_width, num_classes=FMNIST_NUM_CLASSES))

    def start_model(self, kind: str = "post", seed: int = 0) -> torch.nn.Module:
        """The untrained start of ``kind``'s arms (eval mode): for ``post`` the teacher in one
        Euler step, for ``scratch`` a ``ConvGenerator`` initialised under ``seed``."""
        torch.manual_seed(seed)
        return self._generator(kind).to(self.device).eval().requires_grad_(False)

    def load_arm(self, spec: ArmSpec) -> torch.nn.Module:
        """The trained one-step generator of ``spec`` (eval mode)."""
        model = self._generator(spec.task.generator)
        path = latest_checkpoint(self.out / "arms" / spec.key)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {self.out / 'arms' / spec.key}: train the arm first")
        state = load_checkpoint(path)
        model.load_state_dict(state["ema"] if state.get("ema") is not None else state["generator"])
        return model.to(self.device).eval().requires_grad_(False)

    def score(self, key: str, model: torch.nn.Module, seed: int, draws: RealDraws,
              mmd: bool = False, grid: bool = False) -> dict[str, Any]:
        """The job's evaluation of ``model`` under ``OUT/eval/<key>``: per-encoder SW ratios,
        SW_r,k, held-out mean, class agreement, within-class diversity, and with ``mmd`` the
        RFF-MMD ratio per encoder (a second neutral distance). ``grid`` also writes a per-class
        sample grid to ``OUT/samples/<key>.png``."""
        recipe, layout = self.recipe, self.layout
        where = self.out / "eval" / key
        samples = write_samples_npz(model, where / "samples.npz", num_samples=recipe.eval_samples,
                                    seed=seed + 1, batch_size=recipe.feature_batch_size)
        if grid:
            write_sample_grid(model, self.out / "samples" / f"{key}.png", seed=seed)
        battery = make_battery(recipe, recipe.encoders, layout, device=self.device)
        store = extract_features(open_dataset(str(samples)), battery, where / "features",
                                 batch_size=recipe.feature_batch_size, device=self.device,
                                 progress=False)
        config = dataclasses.replace(eval_config(recipe, self.device), cross_checks=("mmd",) if mmd else ())
        out = evaluate(str(store.root), str(layout.train_features), str(layout.test_features),
                       encoders=list(recipe.encoders), out_dir=where, config=config,
                       held_out=list(recipe.heldout_encoders))
        result: dict[str, Any] = {
            "per_encoder": out["sw"]["per_encoder"], "mean": out["sw"]["mean"],
            "held_out_mean": out["sw"]["held_out_mean"],
        }
        if mmd:
            result["mmd_per_encoder"] = out["mmd"]["per_encoder"]
        result.update(sample_scores(store, classifier_of(battery), recipe, draws, recipe.eval_samples))
        atomic_write_json(where / "scores.json", result)
        return result


def read_stats(run_dir: Path) -> list[dict[str, Any]]:
    """The training log ``stats.jsonl`` of an arm, one dict per line."""
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
