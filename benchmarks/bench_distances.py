"""Forward+backward time of the six training distances, against a plain float32 formula.

    PYTHONPATH=src python benchmarks/bench_distances.py            # CPU: (B, m, D) = (1024, 512, 256)
    PYTHONPATH=src python benchmarks/bench_distances.py --build    # + reference build per stage
    (on a CUDA machine the defaults become (5120, 4096, 1024) and a 1.28M x 1024 pool)

Per distance it prints the median forward+backward time, the achieved TFLOP/s (matmul FLOPs of
the loss and its gradient), the device's float32 matmul peak measured in the same run, and the
ratio to a plain float32 PyTorch formula of the same loss differentiated by autograd. For
``mmd_nystrom`` it also prints the relative error of the gradient against a float64 evaluation
on a Gaussian mixture at the median-heuristic bandwidth. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from repmatch import NystromReference
from repmatch.compare import distances
from repmatch.compare.distances.sliced_wasserstein import random_projections
from repmatch.compare.kernels import matmul_precision


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in seconds (synchronised on CUDA)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(device: torch.device, precision: str) -> float:
    """Measured float32 matmul TFLOP/s (TF32 when ``precision == "tf32"`` on CUDA)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    with matmul_precision(precision):
        t = timeit(lambda: a @ b, device, repeats=10 if device.type == "cuda" else 3)
    return 2 * n**3 / t / 1e12


def mixture(n: int, d: int, device: torch.device, seed: int, k: int = 16, spread: float = 3.0) -> torch.Tensor:
    """Gaussian mixture ``(n, d)``: ``k`` unit-variance blobs, centre coordinates ``~ N(0, spread²)``."""
    g = torch.Generator(device=device).manual_seed(seed)
    centres = spread * torch.randn(k, d, generator=g, device=device)
    labels = torch.randint(k, (n,), generator=g, device=device)
    return centres[labels].add_(torch.randn(n, d, generator=g, device=device))


# Plain float32 formulas differentiated by autograd (the baselines).
def _k(x: torch.Tensor, y: torch.Tensor, s: float) -> torch.Tensor:
    return torch.exp(-torch.cdist(x, y).pow(2) / (2 * s * s))


def plain_losses(ref_feats, nys: NystromReference, rff, fd, B: int):
    L, alpha, s = nys.landmarks, nys.alpha.float(), nys.bandwidth
    y = ref_feats[:B]
    theta = random_projections(ref_feats.shape[1], 128).to(ref_feats)
    w, b, mu = rff.weights.float(), rff.offsets.float(), rff.reference_mean.float()
    r_mean, r_root, r_tr = fd.mean.float(), fd.cov_sqrt.float(), fd.cov_trace

    def drift(g):
        # Plain formula of the coupled field (no fused kernels), same as the library's.
        return distances.drifting_loss(g, ref_feats[:128])

    def frechet(g):
        mu_g = g.mean(0)
        c = (g - mu_g).T @ (g - mu_g) / (g.shape[0] - 1)
        m = r_root @ c @ r_root
        ev = torch.linalg.eigvalsh(0.5 * (m + m.T)).clamp_min(1e-12)
        return (mu_g - r_mean).pow(2).sum() + c.trace() + r_tr - 2 * ev.sqrt().sum()

    return {
        "mmd_nystrom": lambda g: _k(g, g, s).mean() - 2 * (_k(g, L, s) @ alpha).mean() + nys.data_term,
        "mmd_exact": lambda g: _k(g, g, s).mean() - 2 * _k(g, y, s).mean() + _k(y, y, s).mean(),
        "mmd_rff": lambda g: ((math.sqrt(2 / rff.num_features) * torch.cos(g @ w + b)).mean(0) - mu).pow(2).sum(),
        "frechet": frechet,
        "sliced_wasserstein": lambda g: (torch.sort(g @ theta, 0).values - torch.sort(y @ theta, 0).values).pow(2).mean(),
        "drifting": drift,
    }


def flops(name: str, B: int, m: int, D: int) -> float:
    """Matmul FLOPs of loss + gradient (what the TFLOP/s column divides)."""
    if name == "mmd_nystrom":
        return 4 * B * D * (B + m)
    if name == "mmd_exact":
        return 4 * B * D * (B + B) + 2 * B * B * D
    if name == "mmd_rff":
        return 4 * B * D * m
    if name == "frechet":
        return 4 * B * D * D + 4 * D**3
    if name == "sliced_wasserstein":
        return 6 * B * D * 128
    return 2 * B * D * (B + 128) * 4


def bench_distances(args, device: torch.device) -> None:
    B, m, D = args.B, args.m, args.D
    pool = mixture(max(4 * m, 2 * B), D, device, seed=0)
    gen = mixture(B, D, device, seed=1, spread=3.3)
    nys = NystromReference.build(pool, num_landmarks=m, seed=0, precision=args.precision)
    kw = {
        "mmd_nystrom": {"num_landmarks": m, "precision": args.precision, "chunk_size": args.chunk_size},
        "mmd_exact": {"precision": args.precision, "chunk_size": args.chunk_size},
        "mmd_rff": {"num_features": m},
        "frechet": {},
        "sliced_wasserstein": {"num_projections": 128},
        "drifting": {"bank_size": 128},
    }
    fitted = {}
    for name in distances.NAMES:
        dist = distances.create(name, **kw[name])
        fitted[name] = dist.fit([nys] if name == "mmd_nystrom" else pool)
    plain = plain_losses(pool, nys, fitted["mmd_rff"], fitted["frechet"], B)
    peak = matmul_peak(device, args.precision)
    print(f"\n== distances: B={B} m={m} D={D} device={device} precision={args.precision} "
          f"threads={torch.get_num_threads()} matmul peak={peak:.2f} TFLOP/s ==")
    tf32_base = device.type == "cuda"
    extra = f"{'plain tf32 ms':>15}{'speedup':>9}" if tf32_base else ""
    print(f"{'distance':<20}{'fwd+bwd ms':>12}{'TFLOP/s':>10}{'% peak':>8}{'plain f32 ms':>14}{'speedup':>9}{extra}")
    for name in distances.NAMES:
        x = gen.clone().requires_grad_()

        def ours(x=x, name=name):
            x.grad = None
            fitted[name](x, generator=torch.Generator().manual_seed(0)).backward()

        def base(x=x, name=name):
            x.grad = None
            plain[name](x).backward()

        t = timeit(ours, device, args.repeats)
        tb = timeit(base, device, args.repeats)  # plain formula, full float32 matmuls
        tf = flops(name, B, m, D) / t / 1e12
        row = f"{name:<20}{t * 1e3:>12.3f}{tf:>10.2f}{100 * tf / peak:>7.1f}%{tb * 1e3:>14.3f}{tb / t:>8.2f}x"
        if tf32_base:
            with matmul_precision("tf32"):
                tt = timeit(base, device, args.repeats)
            row += f"{tt * 1e3:>15.3f}{tt / t:>8.2f}x"
        print(row)
    grad_error(nys, gen, args)


def grad_error(nys: NystromReference, gen: torch.Tensor, args) -> None:
    """Relative error of the mmd_nystrom gradient (float32 / chosen precision) vs float64."""
    x64 = gen.double().requires_grad_()
    ref64 = NystromReference(
        landmarks=nys.landmarks.double(), alpha=nys.alpha, bandwidth=nys.bandwidth,
        data_term=nys.data_term, pool_size=nys.pool_size,
    )
    distances.mmd_nystrom_loss(x64, ref64).backward()
    print(f"\nmmd_nystrom gradient vs float64 (mixture, median bandwidth σ={nys.bandwidth:.4g}):")
    for precision in dict.fromkeys(["highest", args.precision]):
        x = gen.clone().requires_grad_()
        distances.mmd_nystrom_loss(x, nys, precision=precision, chunk_size=args.chunk_size).backward()
        err = float((x.grad.double() - x64.grad).norm() / x64.grad.norm())
        print(f"  precision={precision:<8} relative error = {err:.2e}")


def bench_build(args, device: torch.device) -> None:
    n, D, m = args.pool, args.D, args.m
    pool = mixture(n, D, device, seed=2)
    _sync(device)
    NystromReference.build(pool[: 4 * m], num_landmarks=min(m, 256), precision=args.precision)  # warm-up
    t0 = time.perf_counter()
    ref = NystromReference.build(pool, num_landmarks=m, seed=0, precision=args.precision,
                                 chunk_size=args.build_chunk)
    _sync(device)
    total = time.perf_counter() - t0
    print(f"\n== reference build: pool {n} x {D} -> {m} landmarks, device={device}, "
          f"precision={args.precision}, k-means sample={ref.info['kmeans_sample']}, "
          f"iters={ref.info['kmeans_iters']}, rank={ref.info['rank']} ==")
    for stage, sec in ref.info["timings_s"].items():
        print(f"  {stage:<10}{sec * 1e3:>10.1f} ms")
    print(f"  {'total':<10}{total * 1e3:>10.1f} ms   (bandwidth σ={ref.bandwidth:.4g})")
    del pool


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--B", type=int, default=5120 if cuda else 1024)
    p.add_argument("--m", type=int, default=4096 if cuda else 512)
    p.add_argument("--D", type=int, default=1024 if cuda else 256)
    p.add_argument("--pool", type=int, default=1_280_000 if cuda else 50_000, help="pool size for --build")
    p.add_argument("--precision", default="tf32" if cuda else "highest", choices=["highest", "tf32"])
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--build-chunk", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=20 if cuda else 5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--build", action="store_true", help="also time reference building per stage")
    p.add_argument("--only-build", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if cuda else "cpu")
    if not args.only_build:
        bench_distances(args, device)
    if args.build or args.only_build:
        bench_build(args, device)


if __name__ == "__main__":
    main()
