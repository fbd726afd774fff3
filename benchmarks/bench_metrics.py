"""Benchmark SW_r,k (paper eq. 5) against POT's sliced Wasserstein on the same inputs.

Default size is the paper's evaluation: 14 encoders x 16384 samples per set x 1024 dims at
1024 projections, three sets (gen, train, val) per encoder. Ours computes the ratio panel
(train projected and sorted once per chunk, reused for gen and val); POT computes
SW(gen, train) and SW(val, train) with ``ot.sliced_wasserstein_distance`` given the same
projections. Runs on CPU and, when CUDA is available, on GPU (POT through its torch backend).
Prints a table of times and the POT/ours time ratio; agreement of the ratios is reported.

    PYTHONPATH=src python benchmarks/bench_metrics.py [--encoders 14 --samples 16384 --dim 1024 --projections 1024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def make_sets(num_encoders: int, n: int, dim: int) -> tuple[dict, dict, dict]:
    g = torch.Generator().manual_seed(0)
    sets = []
    for role_shift in (0.2, 0.0, 0.0):  # gen, train, val
        sets.append(
            {
                f"enc{e:02d}": (torch.randn(n, dim, generator=g) * (1 + 0.1 * e) + role_shift)
                for e in range(num_encoders)
            }
        )
    return sets[0], sets[1], sets[2]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ours(gen, train, val, args, device: str) -> tuple[float, dict]:
    from repmatch.metrics import sw_ratio_panel

    moved = [{k: v.to(device) for k, v in s.items()} for s in (gen, train, val)]
    sync(device)
    t0 = time.perf_counter()
    out = sw_ratio_panel(
        *moved,
        num_projections=args.projections,
        seed=0,
        num_samples=args.samples,
        chunk_size=args.chunk_size,
    )
    sync(device)
    return time.perf_counter() - t0, out["per_encoder"]


def time_pot(gen, train, val, args, device: str) -> tuple[float, dict]:
    import ot

    from repmatch.metrics import random_projections

    ratios = {}
    t0 = time.perf_counter()
    for name in gen:
        theta = random_projections(gen[name].shape[1], args.projections, seed=0)
        if device == "cpu":
            g, t, v, th = (a.double().numpy() for a in (gen[name], train[name], val[name], theta))
        else:
            g, t, v, th = (
                a.double().to(device) for a in (gen[name], train[name], val[name], theta)
            )
        num = ot.sliced_wasserstein_distance(g, t, projections=th, p=2)
        den = ot.sliced_wasserstein_distance(v, t, projections=th, p=2)
        ratios[name] = float(num / den)
    sync(device)
    return time.perf_counter() - t0, ratios


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--encoders", type=int, default=14)
    p.add_argument("--samples", type=int, default=16384)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--projections", type=int, default=1024)
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument(
        "--skip-pot", action="store_true", help="time only ours (POT is slow at full size on CPU)"
    )
    args = p.parse_args()

    gen, train, val = make_sets(args.encoders, args.samples, args.dim)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"SW_r,k: {args.encoders} encoders x {args.samples} samples x {args.dim} dims, "
        f"{args.projections} projections, 3 sets per encoder; torch threads={torch.get_num_threads()}"
    )
    print(
        f"{'device':<8}{'impl':<8}{'total s':>10}{'s/encoder':>11}{'POT/ours':>10}{'max |dr|':>11}"
    )
    for device in devices:
        if device == "cuda":  # warm up kernels and allocator before timing
            time_ours(
                {k: v[:256] for k, v in gen.items()},
                {k: v[:256] for k, v in train.items()},
                {k: v[:256] for k, v in val.items()},
                args,
                device,
            )
        t_ours, r_ours = time_ours(gen, train, val, args, device)
        print(
            f"{device:<8}{'ours':<8}{t_ours:>10.2f}{t_ours / args.encoders:>11.3f}{'':>10}{'':>11}",
            flush=True,
        )
        if args.skip_pot:
            continue
        t_pot, r_pot = time_pot(gen, train, val, args, device)
        diff = max(abs(r_ours[k] - r_pot[k]) for k in r_ours)
        print(
            f"{device:<8}{'POT':<8}{t_pot:>10.2f}{t_pot / args.encoders:>11.3f}{t_pot / t_ours:>10.2f}{diff:>11.1e}",
            flush=True,
        )
    print(f"mean ratio (ours): {np.mean(list(r_ours.values())):.4f}")


if __name__ == "__main__":
    main()
