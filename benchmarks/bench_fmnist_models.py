"""Throughput of the Fashion-MNIST networks: one training step (forward + backward + Adam).

Prints, per device and network, milliseconds per step and images per second at a fixed batch,
and the ratio to the `tiny` velocity preset measured in the same run. Usage:

    PYTHONPATH=src python benchmarks/bench_fmnist_models.py [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from repmatch.apps.fmnist.conv_generator import ConvGenerator
from repmatch.apps.fmnist.flow_matching import flow_matching_loss
from repmatch.apps.fmnist.unet import (
    VelocityUNet,
    velocity_unet_cpu,
    velocity_unet_gpu,
    velocity_unet_tiny,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(name: str, device: torch.device, batch: int, repeats: int) -> float:
    """Median seconds of one optimizer step of network ``name`` on ``device``."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (batch,), generator=g).to(device)
    if name == "conv_generator":
        model = ConvGenerator().to(device)
        noise = torch.randn(batch, *model.noise_shape, generator=g).to(device)

        def loss_fn() -> torch.Tensor:
            return model(noise, labels).square().mean()
    else:
        preset = {"tiny": velocity_unet_tiny, "cpu": velocity_unet_cpu, "gpu": velocity_unet_gpu}
        model = VelocityUNet(preset[name]()).to(device)
        x = (torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1).to(device)
        eps = torch.randn(x.shape, generator=g).to(device)
        t = torch.rand(batch, generator=g).to(device)

        def loss_fn() -> torch.Tensor:
            return flow_matching_loss(model, x, labels, t=t, noise=eps)

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 1):  # the first step warms up allocators and kernels
        _sync(device)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"batch {args.batch_size}, median of {args.repeats} steps, torch threads {torch.get_num_threads()}"
    )
    print(f"{'device':<8} {'network':<16} {'ms/step':>10} {'img/s':>10} {'vs tiny':>8}")
    for device in devices:
        base = None
        for name in ("tiny", "cpu", "gpu", "conv_generator"):
            if device.type == "cpu" and name == "gpu" and args.batch_size > 16:
                continue  # minutes per step on a small CPU; run with --batch-size 16 to include it
            sec = step_time(name, device, args.batch_size, args.repeats)
            base = base or sec
            print(
                f"{device.type:<8} {name:<16} {1e3 * sec:>10.1f} {args.batch_size / sec:>10.0f} "
                f"{sec / base:>8.2f}"
            )


if __name__ == "__main__":
    main()
