"""Feature-extraction throughput: images/s of `extract_features` over Fashion-MNIST.

Compares DataLoader workers (loading overlapped with compute) against in-process loading,
and a bare forward loop over pre-stacked tensors (the compute-only ceiling), in the same run.
Uses the in-project Fashion-MNIST encoders with random weights (no files needed).

    PYTHONPATH=src python benchmarks/bench_features.py [--rows 10000] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from repmatch.data import open_dataset
from repmatch.features import extract_features
from repmatch.represent import EncoderBattery


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    ds = open_dataset("fmnist:test")
    battery = EncoderBattery(["fmnist_classifier", "fmnist_autoencoder"], pretrained=False).to(args.device)
    rows = min(args.rows, len(ds))

    images = torch.stack([ds[i][0] for i in range(rows)])
    with torch.inference_mode():  # warm-up: first-call allocator and kernel selection costs
        battery(images[: args.batch_size].to(args.device))
    t0 = time.perf_counter()
    with torch.inference_mode():
        for chunk in images.split(args.batch_size):
            battery(chunk.to(args.device))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    baseline = rows / (time.perf_counter() - t0)

    print(f"{'setting':<40}{'img/s':>10}{'vs forward-only':>18}")
    print(f"{'forward only (pre-stacked tensors)':<40}{baseline:>10.0f}{1.0:>18.2f}")
    for workers in (0, 2):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            extract_features(ds, battery, out, batch_size=args.batch_size, shard_size=2500, num_workers=workers,
                             limit=rows, device=args.device, progress=False)
            rate = rows / (time.perf_counter() - t0)
        label = f"extract_features num_workers={workers}"
        print(f"{label:<40}{rate:>10.0f}{rate / baseline:>18.2f}")


if __name__ == "__main__":
    main()
