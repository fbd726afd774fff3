"""Rerun the one-step arms of a finished ``repmatch fmnist`` job with other seeds, and summarise.

The teacher, encoders, features, floors and references of ``RUN`` are shared (copied once into
``RUN-seed<k>``); what changes with seed ``k`` is the arms' weight init and noise stream, the
sample noise and the SW projections, so the spread over seeds is the spread of the one-step
arms given one teacher. Seed ``RUN``'s own recipe seed is the first of the summary.

    python tools/fmnist_arm_seeds.py runs/fmnist-cpu --seeds 1,2
    python tools/fmnist_arm_seeds.py runs/fmnist-cpu --seeds 1,2 --summary-only

writes ``RUN-seed<k>/`` for each seed and ``RUN/seeds.md`` / ``RUN/seeds.json``: each model's
SW_r,4, held-out mean, class agreement and diversity as mean ± sd (sample sd, n - 1) over the
seeds, and each seed's values.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch

from repmatch.io import atomic_write_json, atomic_write_text
from repmatch.apps.fmnist.pipeline import MODELS, run_pipeline
from repmatch.apps.fmnist.recipe import FmnistRecipe

SHARED = ("encoders", "teacher", "features", "floors", "references")
REST = ["post", "scratch", "samples", "eval"]
COLUMNS = (("SW_r,4", "mean"), ("held-out mean", "held_out_mean"),
           ("class agreement", "class_agreement"), ("diversity", "diversity"))


def seed_run(run: Path, seed: int) -> Path:
    """``RUN-seed<seed>``: ``run``'s shared stages, the recipe with ``seed``, the rest rerun."""
    recipe = FmnistRecipe.from_dict(json.loads((run / "config.json").read_text()))
    out = run.with_name(f"{run.name}-seed{seed}")
    if not (out / "config.json").exists():
        out.mkdir(parents=True)
        for part in SHARED:
            if (run / part).exists():
                shutil.copytree(run / part, out / part, symlinks=True)
        (out / "stages").mkdir()
        for stage in SHARED:
            shutil.copy2(run / "stages" / f"{stage}.json", out / "stages" / f"{stage}.json")
        atomic_write_json(out / "config.json", recipe.replace(seed=seed).to_dict())
    run_pipeline(recipe.replace(seed=seed), out, stages=REST)
    return out


def summarise(run: Path, seeds: list[int]) -> str:
    base = json.loads((run / "config.json").read_text())["seed"]
    runs = {base: run, **{s: run.with_name(f"{run.name}-seed{s}") for s in seeds}}
    results = {s: json.loads((r / "results.json").read_text()) for s, r in runs.items()}
    models = [m for m in MODELS if m in results[base]]
    table: dict[str, dict[str, dict[str, float | list[float]]]] = {}
    lines = [f"# {run.name}: the models over {len(runs)} seeds ({', '.join(map(str, runs))})", "",
             "| model | " + " | ".join(c for c, _ in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for m in models:
        row, cells = {}, []
        for label, key in COLUMNS:
            values = [results[s][m][key] for s in runs if results[s][m].get(key) is not None]
            if len(values) < 2:
                cells.append("–")
                continue
            mean, sd = statistics.mean(values), statistics.stdev(values)
            row[key] = {"mean": mean, "sd": sd, "values": values}
            cells.append(f"{mean:.3f} ± {sd:.3f}")
        table[m] = row
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    atomic_write_json(run / "seeds.json", {"seeds": list(runs), "models": table})
    text = "\n".join(lines) + "\n"
    atomic_write_text(run / "seeds.md", text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished repmatch fmnist output directory")
    parser.add_argument("--seeds", required=True, help="comma-separated seeds other than the run's own")
    parser.add_argument("--summary-only", action="store_true", help="only rewrite seeds.md from finished runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, all cores; the seeds run one after another)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.summary_only:
        for seed in seeds:
            print(f"seed {seed}: {seed_run(args.run, seed)}")
    print(summarise(args.run, seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
