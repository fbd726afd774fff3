"""The Fashion-MNIST job's one-step arms over several seeds, summarised as mean ± sd.

``repmatch fmnist --seeds 0,1,2`` runs the job in ``OUT`` with the recipe's own seed, then
(:func:`run_seeds`), for every other listed seed ``k``, reruns the arms in ``OUT-seed<k>``: the encoders, teacher,
features and references of ``OUT`` are shared (copied once), and what changes with the seed is
the arms' weight init and noise stream, the sample noise and the SW projections. The spread over
seeds is therefore the spread of the one-step arms given one teacher. The real floors depend on
the projections, so each seed measures its own once (its ``floors`` stage), for all its models.

Written to ``OUT``: ``seeds.json`` (per model and column the mean, the sample standard
deviation ``sd = sqrt(Σ (x_i - mean)² / (n - 1))`` and each seed's value) and ``seeds.md``
(the table ``mean ± sd``). Every run resumes: a rerun skips the finished stages of each seed.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...io import atomic_write_json, atomic_write_text
from .parts import Layout
from .pipeline import MODELS, run_pipeline
from .recipe import FmnistRecipe

#: The stages a seed run shares with the job in ``OUT`` (their outputs do not depend on the
#: arms' seed for this purpose: one teacher, one set of references).
SHARED_STAGES = ("encoders", "teacher", "features", "references")
#: The stages each seed reruns (the SW floors are drawn on the seed's projections).
SEED_STAGES = ("floors", "post", "scratch", "samples", "eval")
#: The summary's columns: keys of a model's row in ``results.json`` (SW_r,k, held-out mean,
#: class agreement, diversity).
COLUMNS = ("mean", "held_out_mean", "class_agreement", "diversity")


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """``seeds`` as a list, refused unless it holds at least two distinct non-negative ints."""
    seeds = list(seeds)
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise ValueError(f"seeds must list at least two distinct seeds (a spread needs two), got {seeds}")
    return seeds


def seed_dir(out: str | Path, seed: int, recipe: FmnistRecipe) -> Path:
    """Where seed ``seed`` runs: ``out`` itself for the recipe's seed, else ``out-seed<seed>``."""
    out = Path(out)
    return out if seed == recipe.seed else out.with_name(f"{out.name}-seed{seed}")


def _share_stages(base: Layout, layout: Layout, recipe: FmnistRecipe) -> None:
    """Copy the shared stages' outputs and markers of ``base`` into ``layout`` (once: the
    recipe, written last, marks a finished copy)."""
    if layout.recipe.exists():
        return
    layout.stages.mkdir(parents=True, exist_ok=True)
    for part in (base.encoders, base.teacher, base.features, base.references):
        if part.exists():
            shutil.copytree(part, layout.root / part.name, symlinks=True, dirs_exist_ok=True)
    for stage in SHARED_STAGES:
        shutil.copy2(base.marker(stage), layout.marker(stage))
    atomic_write_json(layout.recipe, recipe.to_dict())


def run_seed(
    recipe: FmnistRecipe,
    out: str | Path,
    seed: int,
    *,
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> Path:
    """Rerun the arms of the finished job in ``out`` with ``seed`` in :func:`seed_dir`."""
    base = Layout.of(out)
    missing = [s for s in SHARED_STAGES if not base.marker(s).exists()]
    if missing:
        raise ValueError(f"{base.root} has not run stage(s) {', '.join(missing)}: run the job first")
    seeded = recipe.replace(seed=seed)
    layout = Layout.of(seed_dir(out, seed, recipe))
    _share_stages(base, layout, seeded)
    run_pipeline(seeded, layout.root, stages=SEED_STAGES, log=log, progress=progress)
    return layout.root


def summarise_seeds(recipe: FmnistRecipe, out: str | Path, seeds: Sequence[int]) -> str:
    """Write ``OUT/seeds.json`` and ``OUT/seeds.md`` from each seed's ``results.json``; return
    the table. A column with fewer than two values is ``–``."""
    seeds = check_seeds(seeds)
    results = {s: json.loads((seed_dir(out, s, recipe) / "results.json").read_text()) for s in seeds}
    headers = [f"SW_r,{len(recipe.encoders)}", "held-out mean", "class agreement", "diversity"]
    lines = [
        f"# {recipe.name}: the models over {len(seeds)} seeds ({', '.join(map(str, seeds))})",
        "",
        "| model | " + " | ".join(headers) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for model in (m for m in MODELS if m in results[seeds[0]]):
        table[model], cells = _seed_row([results[s][model] for s in seeds])
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    atomic_write_json(Path(out) / "seeds.json", {"seeds": seeds, "models": table})
    text = "\n".join(lines) + "\n"
    atomic_write_text(Path(out) / "seeds.md", text)
    return text


def _seed_row(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """One model's ``{key: {mean, sd, values}}`` over its per-seed rows, and the table cells."""
    summary: dict[str, Any] = {}
    cells = []
    for key in COLUMNS:
        values = [row[key] for row in rows if row.get(key) is not None]
        if len(values) < 2:
            cells.append("–")
            continue
        mean, sd = statistics.mean(values), statistics.stdev(values)
        summary[key] = {"mean": mean, "sd": sd, "values": values}
        cells.append(f"{mean:.3f} ± {sd:.3f}")
    return summary, cells


def run_seeds(
    recipe: FmnistRecipe,
    out: str | Path,
    seeds: Sequence[int],
    *,
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> str:
    """Rerun the arms of the finished job in ``out`` with every seed other than the recipe's
    (:func:`run_seed`) and write the summary (:func:`summarise_seeds`); return its table."""
    seeds = check_seeds(seeds)
    for seed in seeds:
        if seed != recipe.seed:
            log(f"[seed {seed}] {seed_dir(out, seed, recipe)}")
            run_seed(recipe, out, seed, log=log, progress=progress)
    return summarise_seeds(recipe, out, seeds)
