"""Step time and peak memory of the gradient-cached step against N (paper §3.2).

For each generation batch N: the cached step (:func:`repmatch.train.cached_backward`, fixed
chunk size) and the uncached step (one graph over the whole batch, where it fits), with a small
generator and a battery of two small frozen conv encoders under the eq.-3 Nyström loss.
Prints a table: time per step, the cached/uncached time ratio at equal N, and peak memory
above the pre-step baseline (CUDA: ``max_memory_allocated``; CPU: peak RSS sampled in a fresh
subprocess per measurement, since the CPU allocator has no peak counter).

    PYTHONPATH=src python benchmarks/bench_train_step.py [--device cuda] [--sizes 256 1024 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import torch
from torch import nn


class ConvEncoder(nn.Module):
    def __init__(self, seed: int, width: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(), nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 64),
        )
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def setup(device: torch.device, chunk: int):
    from repmatch.compare.distances import mmd_nystrom_loss
    from repmatch.compare.nystrom import NystromReference
    from repmatch.generators.base import MLPGenerator

    torch.manual_seed(0)
    gen = MLPGenerator(64, (3, 32, 32), hidden=512, depth=3).to(device)
    encs = {"a": ConvEncoder(1, 16).to(device), "b": ConvEncoder(2, 24).to(device)}
    real = torch.rand(2048, 3, 32, 32, device=device)
    refs = {}
    with torch.no_grad():
        for k, e in encs.items():
            refs[k] = NystromReference.build(e(real), num_landmarks=256, seed=0)

    def forward(chunk):
        images = gen(chunk, None)
        return {k: e(images) for k, e in encs.items()}

    def loss(feats):
        # The loss is chunked too, so its B×B repulsion never materialises whole.
        return sum(mmd_nystrom_loss(feats[k], refs[k], chunk_size=chunk) for k in refs)

    return gen, forward, loss


def run_one(mode: str, n: int, chunk: int, steps: int, device: torch.device) -> dict:
    from repmatch.train import cached_backward

    gen, forward, loss = setup(device, chunk)
    noise = torch.randn(n, 64, device=device)

    def step():
        gen.zero_grad(set_to_none=True)
        if mode == "cached":
            cached_backward(forward, noise.split(chunk), loss)
        else:
            loss(forward(noise)).backward()

    peak = {"rss": 0}
    stop = threading.Event()

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def sample() -> None:
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], rss())
            time.sleep(0.0005)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss()
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak_bytes = torch.cuda.max_memory_allocated() - base
    else:
        stop.set()
        thread.join()
        peak_bytes = peak["rss"] - base
    return {"mode": mode, "n": n, "time_s": statistics.median(times[1:] if steps > 1 else times),
            "peak_mib": peak_bytes / 2**20}


def measure(mode: str, n: int, args: argparse.Namespace) -> dict:
    if args.device == "cuda":
        try:
            return run_one(mode, n, args.chunk, args.steps, torch.device("cuda"))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            return {"mode": mode, "n": n, "time_s": float("nan"), "peak_mib": float("nan")}
    # CPU: a fresh process per measurement so the sampled peak RSS belongs to this step alone.
    cmd = [sys.executable, __file__, "--_child", mode, str(n), "--chunk", str(args.chunk), "--steps", str(args.steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if out.returncode != 0:
        return {"mode": mode, "n": n, "time_s": float("nan"), "peak_mib": float("nan"), "error": out.stderr[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--max-uncached", type=int, default=None, help="largest N for the uncached step")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        print(json.dumps(run_one(args._child[0], int(args._child[1]), args.chunk, args.steps, torch.device("cpu"))))
        return
    sizes = args.sizes or ([1024, 4096, 16384, 65536] if args.device == "cuda" else [256, 1024, 4096])
    print(f"device={args.device} chunk={args.chunk} steps={args.steps} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"{'N':>7} {'cached s':>9} {'uncached s':>10} {'ratio':>6} {'cached MiB':>11} {'uncached MiB':>13}")
    for n in sizes:
        c = measure("cached", n, args)
        u = (measure("uncached", n, args) if args.max_uncached is None or n <= args.max_uncached
             else {"time_s": float("nan"), "peak_mib": float("nan")})
        ratio = c["time_s"] / u["time_s"] if u["time_s"] == u["time_s"] else float("nan")
        print(f"{n:>7} {c['time_s']:>9.3f} {u['time_s']:>10.3f} {ratio:>6.2f} {c['peak_mib']:>11.1f} {u['peak_mib']:>13.1f}",
              flush=True)


if __name__ == "__main__":
    main()
