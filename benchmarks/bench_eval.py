"""Evaluation cost: open_nsfw images/s through onnx2torch vs onnxruntime at 224 px, and the
Fashion-MNIST eval stage's images/s with either inference backend, measured in the same run.

    python benchmarks/bench_eval.py [--images 128] [--samples 200] [--threads 1]
                                    [--backends torch,onnxruntime] [--run DIR] [--dump-recipe PATH]

Part 1 encodes ``--images`` real Fashion-MNIST test images (upsampled to 224 px by the spec)
with each backend and prints the images/s, the ratio and the largest feature difference.

Part 2 times the eval stage "cold" (each model's gen features and the second real draw encoded
again, everything else as stored). Without ``--run`` it first builds a small job in a temporary
directory: the ``fmnist-tiny`` battery (``open_nsfw`` held out at 224 px) with a smoke-sized
teacher, encoders and arms, ``--samples`` images per set and 1024 projections. With ``--run``
it times a copy of that finished job (its own recipe). ``--dump-recipe`` writes the small job's
recipe as JSON for ``repmatch fmnist --config`` and exits.
Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from repmatch.apps.fmnist.parts import Layout
from repmatch.apps.fmnist.pipeline import MODELS, run_pipeline, stage_eval
from repmatch.apps.fmnist.recipe import FmnistRecipe, arm_loop
from repmatch.apps.fmnist.stages import STAGES
from repmatch.data import open_dataset
from repmatch.represent import inference_encoder


def bench_recipe(samples: int) -> FmnistRecipe:
    """The fmnist-tiny battery, smoke-sized training, ``samples`` per set, 1024 projections."""
    arm = arm_loop(batch_size=32, chunk_size=32, total_nimg=64, lr=1e-3, log_every_nimg=32,
                   heldout_num_samples=min(samples, 2048))
    return FmnistRecipe(
        name=f"bench-eval-{samples}",
        input_sizes={"efficientnet_lite0": 32},
        encoder_epochs=1,
        encoder_train_rows=256,
        teacher_model="tiny",
        teacher_steps=4,
        teacher_batch_size=16,
        teacher_warmup_steps=1,
        reference_rows=200,
        eval_train_rows=samples,
        val_rows=samples,
        eval_samples=samples,
        num_projections=1024,
        num_landmarks=32,
        kmeans_iters=2,
        post=arm,
        scratch=arm,
        scratch_width=8,
        inference_backend="onnxruntime",
        device="cpu",
        feature_batch_size=64,
    )


def bench_encoders(num_images: int, batch_size: int = 32) -> None:
    test = open_dataset("fmnist:test")
    images = torch.stack([test[i][0] for i in range(num_images)])
    print(f"open_nsfw at 224 px, {num_images} Fashion-MNIST test images, batch {batch_size}, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'backend':<14}{'build+1st s':>12}{'images/s':>10}{'vs torch':>10}{'max |Δf|':>11}")
    feats, rates = {}, {}
    for backend in ("torch", "onnxruntime"):
        t0 = time.perf_counter()
        enc = inference_encoder("open_nsfw", backend)
        with torch.inference_mode():
            enc(images[:batch_size])  # warm-up (onnxruntime builds its session here)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            feats[backend] = torch.cat([enc(x) for x in images.split(batch_size)])
            rates[backend] = num_images / (time.perf_counter() - t0)
        diff = float((feats[backend] - feats["torch"]).abs().max())
        print(f"{backend:<14}{build:>12.1f}{rates[backend]:>10.1f}{rates[backend] / rates['torch']:>10.2f}"
              f"{diff:>11.2e}")


def bench_stage(run: Path, recipe: FmnistRecipe, backends: list[str]) -> None:
    layout = Layout.of(run)
    print(f"\neval stage of {recipe.name!r} ({recipe.eval_samples} samples per set x {len(MODELS)} "
          f"models, {recipe.num_projections} projections, battery {list(recipe.encoders)}), cold")
    print(f"{'backend':<14}{'stage s':>9}{'scored/s':>10}{'encoded':>9}{'encoded/s':>11}{'vs torch':>10}")
    results, seconds = {}, {}
    for backend in backends:
        for store in [*layout.features.glob("gen-*"), layout.noise_features]:
            shutil.rmtree(store, ignore_errors=True)
        info = stage_eval(recipe.replace(inference_backend=backend), layout, torch.device("cpu"))
        t = info.pop("throughput")
        results[backend], seconds[backend] = info, t["seconds"]
        ratio = seconds["torch"] / t["seconds"] if "torch" in seconds else float("nan")
        print(f"{backend:<14}{t['seconds']:>9.1f}{t['images_per_s']:>10.1f}{t['rows_extracted']:>9}"
              f"{t['extract_images_per_s']:>11.1f}{ratio:>10.2f}")
    if len(results) == 2:
        a, b = results.values()
        worst = max(abs(a[m]["per_encoder"][e] - b[m]["per_encoder"][e]) for m in MODELS for e in recipe.encoders)
        print(f"largest SW-ratio difference between the backends: {worst:.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backends", default="torch,onnxruntime")
    p.add_argument("--run", type=Path, default=None, help="a finished repmatch fmnist job to time")
    p.add_argument("--dump-recipe", type=Path, default=None)
    args = p.parse_args()
    recipe = bench_recipe(args.samples)
    if args.dump_recipe is not None:
        args.dump_recipe.write_text(json.dumps(recipe.to_dict(), indent=2))
        print(f"recipe: {args.dump_recipe}")
        return
    torch.set_num_threads(args.threads)
    bench_encoders(args.images)
    backends = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        if args.run is not None:
            shutil.copytree(args.run, run)
            recipe = FmnistRecipe.from_dict(json.loads((run / "config.json").read_text()))
        else:
            t0 = time.perf_counter()
            run_pipeline(recipe, run, stages=STAGES[: STAGES.index("eval")], log=lambda _: None)
            print(f"\n(built the job up to its samples in {time.perf_counter() - t0:.0f} s)")
        bench_stage(run, recipe, backends)


if __name__ == "__main__":
    main()
