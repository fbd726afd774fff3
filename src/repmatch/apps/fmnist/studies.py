"""The paper's controlled studies on real images: Fashion-MNIST clients of the library.

Each study fine-tunes the same warm start (the job's teacher in one Euler step) from the same
base (``repmatch fmnist`` stages encoders → references, by default the ``fmnist-tiny`` preset's;
:mod:`.study_arms`) and changes one design choice per arm:

- ``fmnist-batch`` (paper Fig. 4 / Table 6): generation batch N, one training encoder, the
  Nyström arm, a matched image budget (on a CPU the cost per image barely depends on N, so
  equal images are equal wall-clock; the measured seconds are reported), lr ∝ √N from one
  reference point ``lr`` at ``lr_batch``;
- ``fmnist-distances`` (Table 4): the training distances on one encoder (uniform weight: no
  floor gating), read by two neutral distances on that encoder (its SW ratio and its RFF-MMD
  ratio, each over the real floor);
- ``fmnist-controller`` (Table 3): gated proportional Lagrangian vs uniform weights on the whole
  training battery;
- ``fmnist-gaming`` (§3.3, Fig. 5): one training encoder against the battery with the
  controller, held-out encoders monitored during training (the anti-gaming warning), both
  from the same fresh ``ConvGenerator`` (``generator="scratch"``; the other studies post-train);
- ``fmnist-joint`` (Table 2): joint image–class features (eq. 4) vs the image marginal.

Every arm is scored by the job's evaluation (:meth:`.study_arms.StudyBase.score`); every seed
retrains every arm and redraws its sample noise, while the SW projections stay the base's (every
arm is read on the same projections). The noise row is the job's: two disjoint draws of real
test images of the sample sets' size, scored like a model.

:data:`FMNIST_BATCH` ... :data:`FMNIST_JOINT` are the studies as ``repmatch study NAME`` runs
them (:class:`repmatch.studies.Study`), registered through the ``repmatch.studies`` entry points
in ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ...io import atomic_write_json, atomic_write_text
from ...progress import bar
from ...validate import check_choice, check_positive
from ...evaluation import FLOORS_FILE, load_floors
from ...features import FeatureStore
from .parts import make_battery
from .pipeline import run_pipeline
from .recipe import FmnistRecipe, arm_loop, get_recipe
from .scoring import noise_level, real_draws
from .study_arms import ARM_DISTANCES, ArmSpec, StudyArmTask, StudyBase, read_stats, study_loop

STUDIES: tuple[str, ...] = (
    "fmnist-batch", "fmnist-distances", "fmnist-controller", "fmnist-gaming", "fmnist-joint"
)
#: The base job's stages every study reads.
BASE_STAGES: tuple[str, ...] = ("encoders", "teacher", "features", "floors", "references")

CLAIMS = {
    "fmnist-batch": "the smallest N regresses despite the most steps; quality climbs to a broad "
    "optimum at large N (Fig. 4, Table 6)",
    "fmnist-distances": "mmd_nystrom ≻ mmd_rff ≻ mmd_exact ≻ frechet ≻ sliced_wasserstein ≻ "
    "drifting; exact MMD does not beat Nyström; the SW-trained arm does not win the SW reading "
    "(Table 4)",
    "fmnist-controller": "gated edges uniform on the mean and clearly cuts the worst encoder's "
    "ratio (Table 3)",
    "fmnist-gaming": "a single encoder can be driven to its real floor while held-out encoders "
    "and the images stay off; the battery with the controller resists (§3.3, Fig. 5)",
    "fmnist-joint": "joint features buy conditioning fidelity at no cost in quality (Table 2)",
}


@dataclass(frozen=True, kw_only=True)
class FmnistStudyConfig:
    """One study's resolved settings (``config.json``).

    ``batch_sizes``: N of each arm of ``fmnist-batch``; the other studies train at
    ``batch_sizes[0]``. ``budget_nimg``: images per arm. ``lr`` is the rate at ``lr_batch``;
    an arm at N trains at ``lr·sqrt(N / lr_batch)`` (the paper's rule, this reference point).
    ``encoder``: the single training encoder (batch, distances, gaming's single arm).
    """

    name: str
    base: str
    recipe: FmnistRecipe
    seeds: tuple[int, ...]
    arms: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    budget_nimg: int
    lr: float
    lr_batch: int
    chunk_size: int
    encoder: str
    generator: Literal["post", "scratch"] = "post"
    quick: bool = False

    def __post_init__(self) -> None:
        check_choice("study", self.name, STUDIES)
        check_choice("generator", self.generator, ("post", "scratch"))
        check_positive("budget_nimg", self.budget_nimg, integer=True)
        check_positive("lr", self.lr)
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        for n in self.batch_sizes:
            check_positive("batch_sizes[i]", n, integer=True)
        valid = arm_names(self.name, self.batch_sizes)
        for arm in self.arms:
            if arm not in valid:
                raise ValueError(f"arms of {self.name} must be among {list(valid)}, got {arm!r}")
        if self.encoder not in self.recipe.train_encoders:
            raise ValueError(f"encoder must be one of the base recipe's training encoders "
                             f"{list(self.recipe.train_encoders)}, got {self.encoder!r}")

    def lr_at(self, batch_size: int) -> float:
        return self.lr * math.sqrt(batch_size / self.lr_batch)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["recipe"] = self.recipe.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FmnistStudyConfig:
        """Inverse of :meth:`to_dict` (a study's ``config.json``)."""
        tuples = {k: tuple(d[k]) for k in ("seeds", "arms", "batch_sizes")}
        return cls(**{**d, **tuples, "recipe": FmnistRecipe.from_dict(d["recipe"])})


def arm_names(study: str, batch_sizes: Sequence[int]) -> tuple[str, ...]:
    """The arms a study can run."""
    return {
        "fmnist-batch": tuple(f"N={n}" for n in batch_sizes),
        "fmnist-distances": ARM_DISTANCES,
        "fmnist-controller": ("gated", "uniform"),
        "fmnist-gaming": ("single", "battery"),
        "fmnist-joint": ("joint", "marginal"),
    }[study]


def smoke_recipe() -> FmnistRecipe:
    """The base of ``--quick``: every stage at smoke size (seconds on a CPU)."""
    arm = arm_loop(batch_size=16, chunk_size=16, total_nimg=32, lr=1e-3, log_every_nimg=16,
                   heldout_num_samples=100)
    return FmnistRecipe(
        name="fmnist-smoke", heldout_encoders=("fmnist_autoencoder",),
        input_sizes={"efficientnet_lite0": 32}, encoder_epochs=1, encoder_train_rows=256,
        teacher_model="tiny", teacher_steps=4, teacher_batch_size=16, teacher_warmup_steps=1,
        reference_rows=200, eval_train_rows=100, val_rows=100, eval_samples=100,
        num_projections=32, num_landmarks=32, kmeans_iters=2, post=arm, scratch=arm,
        scratch_width=8, device="cpu", feature_batch_size=100,
    )


def resolve_config(
    name: str,
    *,
    out: str | Path,
    base: str | Path | None = None,
    quick: bool = False,
    seeds: Sequence[int] | None = None,
    arms: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    iterations: int | None = None,
    lr: float | None = None,
    generator: Literal["post", "scratch"] | None = None,
) -> FmnistStudyConfig:
    """The study's settings: the defaults below, then the overrides given.

    Full runs start from the ``fmnist-tiny`` base (its teacher, encoders and references);
    ``iterations`` sets the budget to that many steps at the study's reference batch size;
    ``lr`` the rate there (default: the main job's post-training rate, 5e-4 at N = 128; for
    ``fmnist-gaming``, which trains fresh ``ConvGenerator``s, its from-scratch rate, 3e-3).
    """
    check_choice("study", name, STUDIES)
    recipe = smoke_recipe() if quick else get_recipe("fmnist-tiny")
    base_dir = str(base) if base is not None else str(Path(out) / "base")
    ref_n = 8 if quick else 128
    table: dict[str, dict[str, Any]] = {
        "fmnist-batch": {"batch_sizes": (8, 32) if quick else (64, 256, 1024, 4096),
                         "budget_nimg": 64 if quick else 16384, "encoder": recipe.train_encoders[-1]},
        "fmnist-distances": {"batch_sizes": (ref_n if quick else 256,),
                             "budget_nimg": 16 if quick else 256 * 48, "encoder": recipe.train_encoders[0]},
        "fmnist-controller": {"batch_sizes": (ref_n,), "budget_nimg": 16 if quick else 128 * 100},
        # From a fresh ConvGenerator at the main job's from-scratch rate: from the teacher's
        # start the trained encoder's ratio plateaued near 2.2 (docs/fmnist_studies.md).
        "fmnist-gaming": {"batch_sizes": (ref_n,), "budget_nimg": 32 if quick else 128 * 400,
                          "generator": "scratch", "lr": recipe.scratch.lr},
        "fmnist-joint": {"batch_sizes": (ref_n,), "budget_nimg": 16 if quick else 128 * 100},
    }
    defaults = table[name]
    n_values = tuple(batch_sizes) if batch_sizes else defaults["batch_sizes"]
    budget = defaults["budget_nimg"] if iterations is None else iterations * (
        ref_n if name == "fmnist-batch" else n_values[0])
    return FmnistStudyConfig(
        name=name,
        base=base_dir,
        recipe=recipe,
        seeds=tuple(seeds) if seeds else ((0,) if quick else (0, 1)),
        arms=tuple(arms) if arms else arm_names(name, n_values),
        batch_sizes=n_values,
        budget_nimg=budget,
        lr=defaults.get("lr", recipe.post.lr) if lr is None else lr,
        lr_batch=recipe.post.batch_size if not quick else ref_n,
        chunk_size=8 if quick else 512,
        encoder=defaults.get("encoder", recipe.train_encoders[0]),
        generator=generator or defaults.get("generator", "post"),
        quick=quick,
    )


def arm_spec(config: FmnistStudyConfig, arm: str, seed: int) -> ArmSpec:
    """The :class:`ArmSpec` of ``arm`` at ``seed``."""
    recipe = config.recipe
    n = config.batch_sizes[0]
    controller = "gated"
    kw: dict[str, Any] = {"train_encoders": recipe.train_encoders}
    if config.name == "fmnist-batch":
        n = int(arm.removeprefix("N="))
        kw = {"train_encoders": (config.encoder,)}
    elif config.name == "fmnist-distances":
        # Uniform weights: one encoder, and no floor gating, which would stop an arm whose loss
        # is not zero on real data (drifting's field loss) before it trains.
        kw, controller = {"train_encoders": (config.encoder,), "distance": arm}, "uniform"
    elif config.name == "fmnist-controller":
        controller = arm
    elif config.name == "fmnist-gaming":
        kw = {"train_encoders": (config.encoder,) if arm == "single" else recipe.train_encoders,
              "monitor": True}
    else:
        kw["joint"] = arm == "joint"
    task = StudyArmTask(base=str(Path(config.base)), generator=config.generator, **kw)
    loop = study_loop(recipe, batch_size=n, total_nimg=config.budget_nimg, lr=config.lr_at(n),
                      chunk_size=min(n, config.chunk_size), log_every_nimg=max(n, config.budget_nimg // 32),
                      controller=controller, monitor=task.monitor)
    return ArmSpec(key=f"{arm.replace('=', '')}-seed{seed}", seed=seed, loop=loop, task=task)


# ---------------------------------------------------------------------------- running
def ensure_base(config: FmnistStudyConfig, log: Callable[[str], None], progress: bool) -> None:
    """Run (or find finished) the base job's stages in ``config.base``."""
    run_pipeline(config.recipe, config.base, stages=list(BASE_STAGES), log=log, progress=progress)


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def _summary_metrics(config: FmnistStudyConfig, score: dict[str, Any]) -> dict[str, float]:
    """The numbers a study's table reads from one arm's scores (flat)."""
    out = {f"sw:{e}": v for e, v in score["per_encoder"].items()}
    out["sw_mean"] = score["mean"]
    if score.get("held_out_mean") is not None:
        out["held_out_mean"] = score["held_out_mean"]
    for e, v in score.get("mmd_per_encoder", {}).items():
        out[f"mmd:{e}"] = v
    for key in ("class_agreement", "diversity"):
        if key in score:
            out[key] = score[key]
    train = [score["per_encoder"][e] for e in config.recipe.train_encoders]
    out["worst_train"] = max(train)
    return out


def _monitor_events(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """The held-out checks of a monitored arm: their nimg, mean held-out excess and the first
    anti-gaming warning (``None`` if it never fired)."""
    checks = [s for s in stats if "heldout_excess" in s]
    warned = [s["nimg"] for s in checks if s.get("monitor")]
    return {
        "nimg": [s["nimg"] for s in checks],
        "heldout_excess": [s["heldout_excess"] for s in checks],
        "first_warning_nimg": warned[0] if warned else None,
        "warnings": len(warned),
    }


def run_study(
    config: FmnistStudyConfig,
    out: str | Path,
    *,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Run the study ``config`` (from :func:`resolve_config`) in ``out`` (resumable: a trained
    arm is not retrained); returns the paths of ``results.json``, the Markdown table, the figure
    and ``config.json``."""
    name = config.name
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    saved = root / "config.json"
    # Trained arms resume from their checkpoints: only under the settings they were trained with.
    if saved.is_file() and json.loads(saved.read_text()) != json.loads(json.dumps(config.to_dict())):
        raise ValueError(f"{saved} holds another configuration of this study; use another --out "
                         "or the same options")
    atomic_write_json(saved, config.to_dict())
    t0 = time.perf_counter()
    ensure_base(config, log, progress)
    study = StudyBase(config.recipe, config.base, root)
    recipe = config.recipe
    battery = make_battery(recipe, recipe.encoders, study.layout, device=study.device)
    draws = real_draws(study.layout, battery, recipe.eval_samples, seed=recipe.seed,
                       batch_size=recipe.feature_batch_size, device=study.device)
    floors = load_floors(study.layout.train_features / FLOORS_FILE)
    noise = noise_level(draws, FeatureStore(study.layout.train_features), floors.values,
                        num_samples=recipe.eval_samples, num_projections=recipe.num_projections,
                        seed=recipe.seed, held_out=recipe.heldout_encoders, chunk_size=1024)
    mmd = name == "fmnist-distances"
    start = study.score("start", study.start_model(config.generator, recipe.seed), recipe.seed, draws, mmd=mmd, grid=True)
    results: dict[str, Any] = {"study": name, "claim": CLAIMS[name], "arms": {}, "noise": noise,
                               "start": _summary_metrics(config, start)}
    cells = [(arm, seed) for arm in config.arms for seed in config.seeds]
    for arm, seed in bar(cells, desc=name, unit="arm", enabled=progress):
        spec = arm_spec(config, arm, seed)
        log(f"[{name}] {arm}, seed {seed}: N = {spec.loop.batch_size}, {spec.steps} steps, lr {spec.loop.lr:.3g}")
        trained = study.train_arm(spec)
        score = study.score(spec.key, study.load_arm(spec), seed, draws, mmd=mmd, grid=seed == config.seeds[0])
        stats = read_stats(root / "arms" / spec.key)
        cell = {"spec": dataclasses.asdict(spec), **trained, "scores": _summary_metrics(config, score),
                "curve": [{k: s[k] for k in ("nimg", "score", "excess", "weight") if k in s}
                          for s in stats if "score" in s]}
        if spec.task.monitor:
            cell["monitor"] = _monitor_events(stats)
        results["arms"].setdefault(arm, {"seeds": {}})["seeds"][str(seed)] = cell
    for arm, entry in results["arms"].items():
        per_seed = [c["scores"] for c in entry["seeds"].values()]
        entry["summary"] = {k: _mean_sd([s[k] for s in per_seed]) for k in per_seed[0]}
        entry["train_seconds"] = _mean_sd([c["train_seconds"] for c in entry["seeds"].values()])
    results["wall_seconds"] = time.perf_counter() - t0
    atomic_write_json(root / "results.json", results)
    table = root / f"{name}.md"
    atomic_write_text(table, study_table(config, results))
    figure = plot_study(config, results, root / f"{name}.png")
    return {"results": root / "results.json", "table": table, "figure": figure,
            "config": root / "config.json"}


@dataclass(frozen=True)
class FmnistStudy:
    """A Fashion-MNIST study as ``repmatch study NAME`` runs it (a :class:`repmatch.studies.Study`)."""

    name: str

    @property
    def help(self) -> str:
        return f"Fashion-MNIST study (default: seeds 0,1); the paper's claim: {CLAIMS[self.name]}."

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--base", default=None,
                            help="a `repmatch fmnist` output directory whose stages encoders.."
                            "references to start from (fmnist-tiny preset; --quick: a smoke recipe); "
                            "missing stages are run there (default: OUT/base)")
        parser.add_argument("--lr", type=float, default=None,
                            help="the learning rate at the study's reference batch size "
                            "(fmnist-batch scales it by sqrt(N / reference))")
        parser.add_argument("--generator", choices=("post", "scratch"), default=None,
                            help="post-train the teacher's one-step start (post; the default but "
                            "for fmnist-gaming) or train fresh ConvGenerators (scratch)")

    def config(self, args: argparse.Namespace) -> FmnistStudyConfig:
        """The study's settings from the parsed options (:func:`resolve_config`)."""
        return resolve_config(self.name, out=args.out, base=args.base, quick=args.quick,
                              seeds=args.seeds, arms=args.arms, batch_sizes=args.batch_sizes,
                              iterations=args.iterations, lr=args.lr, generator=args.generator)

    def resolve(self, args: argparse.Namespace) -> dict[str, Any]:
        return self.config(args).to_dict()

    def run(self, args: argparse.Namespace, *, progress: bool) -> dict[str, Path]:
        return run_study(self.config(args), args.out, progress=progress)


FMNIST_BATCH = FmnistStudy("fmnist-batch")
FMNIST_DISTANCES = FmnistStudy("fmnist-distances")
FMNIST_CONTROLLER = FmnistStudy("fmnist-controller")
FMNIST_GAMING = FmnistStudy("fmnist-gaming")
FMNIST_JOINT = FmnistStudy("fmnist-joint")


# ---------------------------------------------------------------------------- reporting
def _columns(config: FmnistStudyConfig) -> list[tuple[str, str]]:
    """``(label, metric key)`` of the study's table."""
    recipe, enc = config.recipe, config.encoder
    held = [(f"{e} †", f"sw:{e}") for e in recipe.heldout_encoders]
    common = [(f"SW_r,{len(recipe.encoders)}", "sw_mean"), ("held-out mean", "held_out_mean"),
              ("class agreement", "class_agreement"), ("diversity", "diversity")]
    if config.name == "fmnist-distances":
        return [(f"SW ratio ({enc})", f"sw:{enc}"), (f"RFF-MMD ratio ({enc})", f"mmd:{enc}"), *held,
                *common]
    if config.name == "fmnist-batch":
        return [(f"{enc} (trained)", f"sw:{enc}"),
                *[(e, f"sw:{e}") for e in recipe.train_encoders if e != enc], *held, *common]
    cols = [(e, f"sw:{e}") for e in recipe.train_encoders] + [("worst trained", "worst_train")]
    return [*cols, *held, *common]


def _fmt(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "–"
    return f"{summary['mean']:.3f} ± {summary['sd']:.3f}"


def study_table(config: FmnistStudyConfig, results: dict[str, Any]) -> str:
    """Markdown: one row per arm (mean ± sd over seeds), the untrained start and the noise row."""
    cols = [c for c in _columns(config) if c[1] in results["start"]]
    head = "| arm | " + " | ".join(label for label, _ in cols) + " | train s |\n"
    head += "|---|" + "---:|" * (len(cols) + 1) + "\n"
    rows = []
    start = results["start"]
    start_name = "untrained start (1 step)" if config.generator == "post" else "untrained ConvGenerator"
    rows.append(f"| {start_name} | " + " | ".join(f"{start[k]:.3f}" for _, k in cols) + " | – |\n")
    for arm in _arm_order(config, results):
        entry = results["arms"][arm]
        s = entry["summary"]
        loop = next(iter(entry["seeds"].values()))["spec"]["loop"]
        steps = loop["intervals"]["total_nimg"] // loop["batch_size"]
        label = f"{arm} ({steps} steps, lr {loop['optim']['lr']:.2g})" if config.name == "fmnist-batch" else arm
        rows.append(f"| {label} | " + " | ".join(_fmt(s.get(k)) for _, k in cols)
                    + f" | {entry['train_seconds']['mean']:.0f} |\n")
    noise = results["noise"]

    def noise_cell(key: str) -> str:
        if key.startswith("sw:"):
            return f"{noise['per_encoder'][key[3:]]:.3f}"
        if key == "sw_mean":
            return f"{noise['mean']:.3f}"
        if key == "held_out_mean" and noise.get("held_out_mean") is not None:
            return f"{noise['held_out_mean']:.3f}"
        return "–"

    rows.append(f"| noise ± (two real draws of {noise['draw_size']}) | "
                + " | ".join(noise_cell(k) for _, k in cols) + " | – |\n")
    seeds = ", ".join(str(s) for s in config.seeds)
    text = f"# {config.name}: {CLAIMS[config.name].split(' (')[0]}?\n\n"
    text += f"Paper: {CLAIMS[config.name]}.\n\n" + head + "".join(rows)
    text += (f"\nMean ± sd over seeds {seeds}; SW ratios SW(gen, train) / SW(test, train), "
             f"{config.recipe.eval_samples} samples, lower is better, 1 is a fresh real draw; "
             "† held out (never trained against). Budget: "
             f"{config.budget_nimg} images per arm from "
             + ("the teacher's one-step start. " if config.generator == "post" else "a fresh ConvGenerator. ")
             + f"Wall time {results['wall_seconds']:.0f} s.\n")
    if config.name == "fmnist-gaming":
        for arm in _arm_order(config, results):
            for seed, cell in results["arms"][arm]["seeds"].items():
                first = cell["monitor"]["first_warning_nimg"]
                text += (f"- {arm}, seed {seed}: anti-gaming warning "
                         + ("never fired" if first is None else f"first at {first} images "
                            f"({cell['monitor']['warnings']} of {len(cell['monitor']['nimg'])} checks)")
                         + "\n")
    return text


def _arm_order(config: FmnistStudyConfig, results: dict[str, Any]) -> list[str]:
    """The arms of ``results`` in the configuration's order (a JSON file sorts its keys)."""
    return [a for a in config.arms if a in results["arms"]]


def _label(config: FmnistStudyConfig, key: str) -> str:
    """A figure legend's name of a metric key."""
    if key.startswith("sw:"):
        name = key[3:]
        return name + (" †" if name in config.recipe.heldout_encoders else " (trained)"
                       if name == config.encoder or config.name in ("fmnist-controller", "fmnist-joint") else "")
    return {"sw_mean": f"SW_r,{len(config.recipe.encoders)}", "held_out_mean": "held-out mean",
            "worst_train": "worst trained encoder"}.get(key, key)


def plot_study(config: FmnistStudyConfig, results: dict[str, Any], path: Path) -> Path:
    """The study's figure: per arm (mean ± sd over seeds) the trained encoder(s)' SW ratio, the
    held-out mean and SW_r,k; ``fmnist-batch`` against N on a log axis; ``fmnist-gaming`` adds
    the trained and held-out excess over training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (f"sw:{config.encoder}", "sw_mean", "held_out_mean") if k in results["start"]]
    if config.name in ("fmnist-controller", "fmnist-joint"):
        keys = ["worst_train", "sw_mean", "held_out_mean"]
    if config.name == "fmnist-gaming":  # the trained encoder beside each other encoder
        keys = [f"sw:{e}" for e in config.recipe.encoders]
    arms = _arm_order(config, results)
    gaming = config.name == "fmnist-gaming"
    fig, axes = plt.subplots(1, 2 if gaming else 1, figsize=(12 if gaming else 8, 3.6), squeeze=False)
    ax = axes[0][0]
    if config.name == "fmnist-batch":
        xs = [int(a.removeprefix("N=")) for a in arms]
        for key in keys:
            ys = [results["arms"][a]["summary"][key] for a in arms]
            ax.errorbar(xs, [y["mean"] for y in ys], yerr=[y["sd"] for y in ys], marker="o", capsize=3,
                        label=_label(config, key))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("generation batch N (matched image budget)")
    else:
        width = 0.8 / len(keys)
        for i, key in enumerate(keys):
            ys = [results["arms"][a]["summary"][key] for a in arms]
            ax.bar([j + i * width for j in range(len(arms))], [y["mean"] for y in ys], width,
                   yerr=[y["sd"] for y in ys], capsize=2, label=_label(config, key))
        ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(arms))], arms,
                      rotation=20 if len(arms) > 4 else 0)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_ylabel("SW ratio (1 = real)")
    ax.set_title(config.name)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if gaming:
        ax2 = axes[0][1]
        for arm in arms:
            cell = next(iter(results["arms"][arm]["seeds"].values()))
            mon = cell["monitor"]
            held = [sum(h.values()) / len(h) for h in mon["heldout_excess"]]
            ax2.plot(mon["nimg"], held, marker="o", label=f"{arm}: held-out excess")
            train = [(c["nimg"], c["excess"].get(config.encoder)) for c in cell["curve"] if c.get("excess")]
            ax2.plot([t for t, _ in train], [e for _, e in train], ls=":", label=f"{arm}: {config.encoder} excess")
            if mon["first_warning_nimg"] is not None:
                ax2.axvline(mon["first_warning_nimg"], color="red", lw=0.8)
        ax2.axhline(0.0, color="gray", lw=0.8, ls="--")
        ax2.set_xlabel("images (red: first anti-gaming warning)")
        ax2.set_ylabel("distance − real floor")
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
