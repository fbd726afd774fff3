"""The Fashion-MNIST job: one-step generators trained and post-trained with iRDM (paper §4.1–4.2).

Stages (each resumable; a finished stage leaves ``OUT/stages/<stage>.json`` with its wall time
and is skipped on a rerun):

1. ``encoders``   train the in-project encoders (``fmnist_classifier``, ``fmnist_autoencoder``)
2. ``teacher``    train the class-conditional flow-matching teacher (4-step Euler sampler)
3. ``features``   extract train/test features through the whole battery (feature stores)
4. ``floors``     real floors SW(test, train) per encoder (``repmatch floors``)
5. ``references`` Nyström references on joint image–class features (eq. 4), training encoders
6. ``post``       iRDM post-training of the teacher into one step
7. ``scratch``    iRDM from a fresh ``ConvGenerator``
8. ``samples``    class-balanced ``.npz`` (``OUT/generated``) and per-class grids
                  (``OUT/samples``) of the 4-step teacher, the untrained one-step start and
                  both iRDM models
9. ``eval``       the SW_r,k panel of each (``repmatch eval``) → ``OUT/eval/<model>/``,
                  ``OUT/results.md``, with class agreement, within-class diversity and each
                  column's noise level from the same feature stores (:mod:`.scoring`)
10. ``report``    ``OUT/report.html`` (``repmatch report``) in words: ``OUT/report.json``
                  names the classes and models, the real test images' reference row and
                  each arm's training log

Everything reuses the project's pieces: ``train_fmnist_encoder``, ``train_teacher``,
``extract_features``, ``metric_floors``/``evaluate``, ``NystromReference``,
``repmatch.train.train``, ``write_samples_npz``/``write_sample_grid``, ``write_report``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from ...io import atomic_write_json, atomic_write_text
from ...progress import bar
from ...references import build_references, save_references
from ...validate import check_choice
from ...data import open_dataset
from ...evaluation import (
    FLOORS_FILE,
    EvalConfig,
    evaluate,
    metric_floors,
    open_source,
    save_floors,
)
from ...features import MANIFEST, FeatureStore, extract_features
from ...generators import FewStepGenerator, write_sample_grid, write_samples_npz
from ...report.html import write_report
from ...represent import EncoderBattery, ImageEncoder
from ...train import latest_checkpoint, load_checkpoint, train
from .conv_generator import ConvGenerator, ConvGeneratorConfig
from .encoders import FMNIST_ENCODERS, FmnistTrainConfig, train_fmnist_encoder
from .parts import (
    FMNIST_NUM_CLASSES,
    IMAGE_SHAPE,
    Layout,
    class_condition,
    make_battery,
    resolve_device,
)
from .recipe import FmnistRecipe
from .reporting import write_fmnist_report_meta
from .scoring import (
    RealDraws,
    class_agreement,
    diversity,
    noise_level,
    real_diversity,
    real_draws,
)
from .stages import REQUIRES, STAGES
from .task import arm_train_config, fmnist_task
from .teacher import TeacherConfig, load_teacher, train_teacher

# The four models of the results table (paper Table 1 / §4.2 comparison).
MODELS = ("teacher_4step", "start_1step", "irdm_post_1step", "irdm_scratch_1step")

#: A stage ``(recipe, layout, device, progress) -> info``: its work, with bars when ``progress``.
Stage = Callable[[FmnistRecipe, Layout, torch.device, bool], dict[str, Any]]


def eval_config(recipe: FmnistRecipe, device: torch.device) -> EvalConfig:
    """The job's evaluation settings (the recipe's projections, seed and set sizes on ``device``)."""
    return EvalConfig(
        num_samples=recipe.eval_samples,
        num_projections=recipe.num_projections,
        seed=recipe.seed,
        cross_checks=recipe.cross_checks,
        cross_check_samples=recipe.eval_samples,
        device=None if device.type == "cpu" else str(device),
        batch_size=recipe.feature_batch_size,
    )


# ---------------------------------------------------------------------------- stages
def stage_encoders(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    cfg = FmnistTrainConfig(epochs=recipe.encoder_epochs, train_rows=recipe.encoder_train_rows)
    reports = {}
    for name in (n for n in FMNIST_ENCODERS if n in recipe.encoders):
        report = train_fmnist_encoder(name, cfg, out_dir=layout.encoders, progress=progress)
        reports[name] = {k: v for k, v in report.items() if k != "path"}
    return reports


def stage_teacher(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    cfg = TeacherConfig(
        model=recipe.teacher_model,
        steps=recipe.teacher_steps,
        batch_size=recipe.teacher_batch_size,
        lr=recipe.teacher_lr,
        warmup_steps=recipe.teacher_warmup_steps,
        sample_steps=recipe.teacher_sampler_steps,
        seed=recipe.seed,
    )
    result = train_teacher(cfg, layout.teacher, device=device, progress=progress)
    return {"steps": result.step, "last_loss": result.last_loss}


def stage_features(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    kw: dict[str, Any] = {
        "batch_size": recipe.feature_batch_size, "device": device, "progress": progress
    }
    battery = make_battery(recipe, recipe.encoders, layout, device=device)
    rows = {}
    for spec, out, limit in (
        ("fmnist:test", layout.test_features, recipe.val_rows),
        ("fmnist:train", layout.train_features, recipe.eval_train_rows),
    ):
        rows[out.name] = len(extract_features(open_dataset(spec), battery, out, limit=limit, **kw))
    ref_dir = layout.reference_features(recipe)
    if ref_dir != layout.train_features:
        names = recipe.encoders if recipe.monitor_heldout else recipe.train_encoders
        ref_battery = make_battery(recipe, names, layout, device=device)
        store = extract_features(
            open_dataset("fmnist:train"), ref_battery, ref_dir, limit=recipe.reference_rows, **kw
        )
        rows[ref_dir.name] = len(store)
    return {"rows": rows}


def stage_floors(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    config = eval_config(recipe, device)
    names = list(recipe.encoders)
    cache = layout.features / "cache"
    kw: dict[str, Any] = {"cache_dir": cache, "progress": progress}
    train = open_source(str(layout.train_features), names, role="train", **kw)
    val = open_source(str(layout.test_features), names, role="val", **kw)
    floors = metric_floors(train, val, names, config, progress=progress)
    save_floors(layout.train_features / FLOORS_FILE, floors)
    return {"floors": floors.values, "num_samples": floors.num_samples}


def stage_references(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    store = FeatureStore(layout.reference_features(recipe))
    names = recipe.encoders if recipe.monitor_heldout else recipe.train_encoders
    info = {}
    for name in bar(names, desc="references", unit="encoder", enabled=progress):
        # One reference per kernel scale, sharing landmarks and one pass over the pool.
        refs = build_references(
            store.read(name),
            fingerprint=store.fingerprints[name],
            labels=store.labels,
            condition=class_condition(recipe),
            num_landmarks=recipe.num_landmarks,
            bandwidth_scale=recipe.bandwidth_scale,
            seed=recipe.seed,
            kmeans_iters=recipe.kmeans_iters,
            device=device,
        )
        save_references(refs, layout.references / name)
        info[name] = {
            "pool": refs[0].pool_size,
            "landmarks": refs[0].num_landmarks,
            "bandwidths": [r.bandwidth for r in refs],
        }
    return info


def _train_arm(arm: str) -> Stage:
    def stage(
        recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
    ) -> dict[str, Any]:
        config = arm_train_config(recipe, layout, arm).replace(progress=progress)
        summary = train(config, fmnist_task(recipe, layout, arm))
        return {k: summary[k] for k in ("nimg", "step", "skipped")}

    stage.__name__ = f"stage_{arm}"
    return stage


def load_model(
    name: str, recipe: FmnistRecipe, layout: Layout, device: torch.device
) -> torch.nn.Module:
    """One of :data:`MODELS` in eval mode (trained arms: EMA weights when kept)."""

    if name == "teacher_4step":
        model: torch.nn.Module = FewStepGenerator(
            load_teacher(layout.teacher), recipe.teacher_sampler_steps, IMAGE_SHAPE
        )
    elif name in ("start_1step", "irdm_post_1step"):
        model = FewStepGenerator(load_teacher(layout.teacher), 1, IMAGE_SHAPE)
    elif name == "irdm_scratch_1step":
        model = ConvGenerator(
            ConvGeneratorConfig(width=recipe.scratch_width, num_classes=FMNIST_NUM_CLASSES)
        )
    else:
        raise ValueError(f"model must be one of {list(MODELS)}, got {name!r}")
    if name.startswith("irdm_"):
        run = layout.arm("post" if name == "irdm_post_1step" else "scratch")
        path = latest_checkpoint(run)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {run}: run the training stage first")
        state = load_checkpoint(path)
        model.load_state_dict(state["ema"] if state.get("ema") is not None else state["generator"])
    return model.to(device).eval().requires_grad_(False)


def stage_samples(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    for name in bar(MODELS, desc="samples", unit="model", enabled=progress):
        model = load_model(name, recipe, layout, device)
        # Matched noise: every model sees the same seeds (rows of equal noise_shape coincide).
        write_sample_grid(model, layout.samples / f"{name}.png", seed=recipe.seed)
        write_samples_npz(
            model,
            layout.generated / f"{name}.npz",
            num_samples=recipe.eval_samples,
            seed=recipe.seed + 1,
            batch_size=recipe.feature_batch_size,
        )
    return {"models": list(MODELS), "per_model": recipe.eval_samples}


@dataclass(eq=False)
class _Panels:
    """The SW panels of :data:`MODELS` so far and the generated-feature stores they read."""

    stores: dict[str, FeatureStore] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    sizes: set[int] = field(default_factory=set)
    floors: dict[str, float] = field(default_factory=dict)
    rows_extracted: int = 0
    extract_seconds: float = 0.0


def _panel_of(
    name: str,
    panels: _Panels,
    recipe: FmnistRecipe,
    layout: Layout,
    battery: EncoderBattery,
    config: EvalConfig,
    device: torch.device,
    progress: bool,
) -> None:
    """Encode model ``name``'s samples (once) and add its SW panel to ``panels``."""
    samples = open_dataset(str(layout.generated / f"{name}.npz"))
    target = layout.features / f"gen-{name}"
    if (target / MANIFEST).is_file() and FeatureStore(target).data != samples.spec:
        shutil.rmtree(target)  # features of an earlier sample file (its content hash differs)
    fresh = not (target / MANIFEST).is_file()
    t_extract = time.perf_counter()
    # Gen features through the recipe's battery (its overrides and encoder weights), once:
    # ``evaluate`` reads this store and the stored train/test features and floors.
    store = panels.stores[name] = extract_features(
        samples,
        battery,
        target,
        batch_size=recipe.feature_batch_size,
        device=device,
        progress=progress,
    )
    panels.extract_seconds += time.perf_counter() - t_extract
    panels.rows_extracted += len(store) if fresh else 0
    out = evaluate(
        str(store.root),
        str(layout.train_features),
        str(layout.test_features),
        encoders=list(recipe.encoders),
        out_dir=layout.eval / name,
        config=config,
        held_out=list(recipe.heldout_encoders),
        progress=progress,
    )
    panels.sizes.add(out["num_samples"])
    panels.floors = out["sw"]["floor"]
    panels.results[name] = {
        "per_encoder": out["sw"]["per_encoder"],
        "mean": out["sw"]["mean"],
        "held_out_mean": out["sw"]["held_out_mean"],
    }


def classifier_of(battery: EncoderBattery) -> ImageEncoder | None:
    """The battery's ``fmnist_classifier`` (class agreement needs its head), or ``None``."""
    # cast: nn.ModuleDict types its values as nn.Module; a battery holds ImageEncoders.
    if "fmnist_classifier" in battery.encoders:
        return cast(ImageEncoder, battery.encoders["fmnist_classifier"])
    return None


def sample_scores(
    store: FeatureStore,
    classifier: ImageEncoder | None,
    recipe: FmnistRecipe,
    draws: RealDraws,
    num_samples: int,
) -> dict[str, float]:
    """Class agreement and within-class diversity of one model's samples (each when the
    recipe has its encoder)."""
    scores: dict[str, float] = {}
    if classifier is not None:
        scores["class_agreement"] = class_agreement(
            classifier, store.read("fmnist_classifier"), store.labels
        )
    if recipe.diversity_encoder is not None:
        scores["diversity"] = diversity(
            recipe.diversity_encoder, store, draws, num_samples=num_samples, seed=recipe.seed
        )
    return scores


def _real_scores(
    classifier: ImageEncoder | None, recipe: FmnistRecipe, layout: Layout, draws: RealDraws
) -> dict[str, Any]:
    """The real test images' reference row of :func:`sample_scores`."""
    real: dict[str, Any] = {}
    if classifier is not None:
        # The real reference value: the classifier on the floors' test rows (stored features).
        test = FeatureStore(layout.test_features)
        real["class_agreement"] = class_agreement(
            classifier, test.read("fmnist_classifier"), test.labels
        )
    if recipe.diversity_encoder is not None:
        real["diversity"] = real_diversity(recipe.diversity_encoder, draws, seed=recipe.seed)
    return real


def _throughput(recipe: FmnistRecipe, panels: _Panels, draws: RealDraws, seconds: float) -> dict[str, Any]:
    """Images scored per second over the stage, and the rate of the rows encoded now."""
    scored = sum(len(g) for g in panels.stores.values())
    extracted = panels.rows_extracted + draws.extracted
    extract_seconds = panels.extract_seconds + draws.extract_seconds
    return {
        "images_scored": scored,
        "seconds": seconds,
        "images_per_s": scored / seconds,
        "rows_extracted": extracted,
        "extract_seconds": extract_seconds,
        "extract_images_per_s": extracted / extract_seconds if extracted else None,
        "inference_backend": recipe.inference_backend,
    }


def stage_eval(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:
    """The SW_r,k panel of each model (``repmatch.evaluation.evaluate``) and, from the same
    feature stores, class agreement, within-class diversity and the panel's noise level
    (:mod:`.scoring`); writes ``OUT/eval/<model>/eval.json`` and ``OUT/results.json``. Returns
    the results with ``throughput`` (images scored per second, rows extracted now)."""
    t0 = time.perf_counter()
    battery = make_battery(recipe, recipe.encoders, layout, device=device)
    config = eval_config(recipe, device)
    classifier = classifier_of(battery)  # a recipe without it skips class agreement
    panels = _Panels()
    for name in MODELS:
        _panel_of(name, panels, recipe, layout, battery, config, device, progress)
    (n,) = panels.sizes  # every sample set holds eval_samples rows: one common size
    draws = real_draws(
        layout, battery, n, seed=recipe.seed, batch_size=recipe.feature_batch_size,
        device=device, progress=progress,
    )
    results = panels.results
    for name in MODELS:
        scores = sample_scores(panels.stores[name], classifier, recipe, draws, n)
        # Beside the SW panel in the model's eval.json, where `repmatch report` shows them.
        eval_json = layout.eval / name / "eval.json"
        atomic_write_json(eval_json, {**json.loads(eval_json.read_text()), **scores})
        results[name].update(scores)
    real = _real_scores(classifier, recipe, layout, draws)
    if real:
        results["real_test"] = real
    results["noise"] = noise_level(
        draws,
        FeatureStore(layout.train_features),
        panels.floors,
        num_samples=n,
        num_projections=recipe.num_projections,
        seed=recipe.seed,
        held_out=recipe.heldout_encoders,
        chunk_size=config.chunk_size,
    )
    atomic_write_json(layout.root / "results.json", results)
    throughput = _throughput(recipe, panels, draws, time.perf_counter() - t0)
    return {**results, "throughput": throughput}


def stage_report(
    recipe: FmnistRecipe, layout: Layout, device: torch.device, progress: bool = False
) -> dict[str, Any]:

    write_results_md(recipe, layout)
    write_fmnist_report_meta(recipe, layout)  # after results.json: the real row's agreement
    path = write_report(layout.root, title=f"repmatch {recipe.name}: one-step Fashion-MNIST (iRDM)")
    return {"report": str(path)}


STAGE_FUNCS: dict[str, Stage] = {
    "encoders": stage_encoders,
    "teacher": stage_teacher,
    "features": stage_features,
    "floors": stage_floors,
    "references": stage_references,
    "post": _train_arm("post"),
    "scratch": _train_arm("scratch"),
    "samples": stage_samples,
    "eval": stage_eval,
    "report": stage_report,
}


# ---------------------------------------------------------------------------- summary
def results_table(recipe: FmnistRecipe, results: dict[str, Any]) -> str:
    """Markdown table: per-encoder SW ratio (held-out marked †), SW_r,k and held-out mean,
    class agreement and within-class diversity; the real test images' row and the noise row."""
    held = set(recipe.heldout_encoders)
    encs = list(recipe.encoders)
    div = recipe.diversity_encoder is not None
    extras = ["class agreement ‡", *(["diversity §"] if div else [])]
    head = "| model | " + " | ".join(e + (" †" if e in held else "") for e in encs)
    head += f" | SW_r,{len(encs)} | held-out mean | " + " | ".join(extras) + " |\n"
    head += "|---|" + "---:|" * (len(encs) + 2 + len(extras)) + "\n"

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    rows = []
    for name in MODELS:
        if name not in results:
            continue
        r = results[name]
        cells = [fmt(r["per_encoder"][e]) for e in encs] + [fmt(r["mean"]), fmt(r["held_out_mean"])]
        cells += [fmt(r.get("class_agreement"))] + ([fmt(r.get("diversity"))] if div else [])
        rows.append(f"| {name} | " + " | ".join(cells) + " |\n")
    if "real_test" in results:
        real = results["real_test"]
        cells = ["–"] * (len(encs) + 2) + [fmt(real.get("class_agreement"))]
        cells += [fmt(real.get("diversity"))] if div else []
        rows.append("| real test images | " + " | ".join(cells) + " |\n")
    if "noise" in results:
        noise = results["noise"]
        cells = [fmt(noise["per_encoder"][e]) for e in encs]
        cells += [fmt(noise["mean"]), fmt(noise["held_out_mean"])] + ["–"] * len(extras)
        rows.append(f"| noise ± (two real draws of {noise['draw_size']}) | " + " | ".join(cells) + " |\n")
    return head + "".join(rows)


def write_results_md(recipe: FmnistRecipe, layout: Layout) -> Path:
    results_path = layout.root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    timings = {
        s: json.loads(layout.marker(s).read_text())["seconds"]
        for s in STAGES
        if layout.marker(s).exists()
    }
    text = f"# {recipe.name}: SW_r,k (eq. 5), {recipe.eval_samples} samples per set\n\n"
    text += results_table(recipe, results) if results else "(no evaluation yet)\n"
    text += (
        "\n† held out from training. ‡ fraction of samples that `fmnist_classifier`'s own head "
        "assigns to their conditioning class (SW_r,k compares marginals and cannot see this)."
    )
    if recipe.diversity_encoder is not None:
        text += (
            f" § within-class diversity in `{recipe.diversity_encoder}` features: per class, the "
            "samples' mean pairwise distance over that of real test images (draw A), averaged "
            "over classes; 1 is the real spread, lower is less varied; the real row is a second, "
            "disjoint real draw B against A."
        )
    if "noise" in results:
        text += (
            " ± noise level: " + results["noise"]["draws"] + "; a difference between two "
            "models smaller than this is sampling noise."
        )
    text += " Stage wall times (s): "
    text += (
        ", ".join(f"{k} {v:.0f}" for k, v in timings.items())
        + f"; total {sum(timings.values()):.0f}\n"
    )
    return atomic_write_text(layout.root / "results.md", text)


# ---------------------------------------------------------------------------- driver
def _rate(info: dict[str, Any]) -> str:
    """`` (N images scored, R images/s; ...)`` for a stage that reports its throughput."""
    t = info.get("throughput")
    if not isinstance(t, dict):
        return ""
    text = f" ({t['images_scored']} images scored, {t['images_per_s']:.1f} images/s"
    if t["rows_extracted"]:
        text += f"; {t['rows_extracted']} encoded at {t['extract_images_per_s']:.1f} images/s"
    return text + f", {t['inference_backend']} backend)"


def run_pipeline(
    recipe: FmnistRecipe,
    out: str | Path,
    *,
    stages: Sequence[str] | None = None,
    force: Sequence[str] = (),
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the job in ``out``; returns ``{stage: info}`` of the stages run now.

    ``stages`` restricts the run to those stages (default: all, in order); ``force`` reruns
    stages even when their marker exists. A different recipe in an existing ``out`` is refused.
    ``progress`` draws each stage's progress bars (count, rate, ETA) on stderr.
    """

    for s in [*(stages or ()), *force]:
        check_choice("stage", s, STAGES)
    layout = Layout.of(out)
    layout.root.mkdir(parents=True, exist_ok=True)
    recipe_path = layout.recipe
    if recipe_path.exists():
        saved = json.loads(recipe_path.read_text())
        try:  # a recipe saved before a field existed holds that field's default
            saved = FmnistRecipe.from_dict(saved).to_dict()
        except (TypeError, ValueError):
            pass  # not a recipe of this version: it differs
        if json.loads(json.dumps(saved)) != json.loads(json.dumps(recipe.to_dict())):
            raise ValueError(
                f"{recipe_path} holds a different recipe than the one requested; use another --out "
                "or the same preset/settings"
            )
    else:
        atomic_write_json(recipe_path, recipe.to_dict())
    device = resolve_device(recipe)
    done: dict[str, Any] = {}
    for stage in STAGES:
        if stages is not None and stage not in stages:
            continue
        marker = layout.marker(stage)
        if marker.exists() and stage not in force:
            log(
                f"[{stage}] done before ({json.loads(marker.read_text())['seconds']:.0f} s), skipped"
            )
            continue
        missing = [r for r in REQUIRES[stage] if not layout.marker(r).exists()]
        if missing:
            raise ValueError(
                f"stage {stage!r} needs the output of stage(s) {', '.join(missing)}, not yet run in "
                f"{layout.root}: run them first (--stage {' --stage '.join(missing)}), or run the "
                "whole job without --stage"
            )
        log(f"[{stage}] running")
        t0 = time.perf_counter()
        info = STAGE_FUNCS[stage](recipe, layout, device, progress)
        seconds = time.perf_counter() - t0
        atomic_write_json(marker, {"seconds": seconds, "info": info})
        done[stage] = info
        log(f"[{stage}] finished in {seconds:.1f} s{_rate(info)}")
    if "report" in done or "eval" in done:
        write_results_md(recipe, layout)
    return done
