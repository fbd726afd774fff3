"""Encoder throughput: images/s for forward and for forward+backward-to-input.

Runs every selected encoder through :class:`repmatch.represent.EncoderBattery` (the training
path: preprocessing inside, frozen weights, gradient to the images) on CPU in float32 and,
when CUDA is available, on GPU in float32 and under bf16 autocast. Ratios in the table are
measured in the same run: ``bwd/fwd`` = forward+backward time over forward time, and
``vs fp32`` = bf16 throughput over the GPU float32 throughput.

    PYTHONPATH=src python benchmarks/bench_encoders.py                       # offline encoders
    PYTHONPATH=src python benchmarks/bench_encoders.py --encoders paper14 --random-weights
    PYTHONPATH=src python benchmarks/bench_encoders.py --layout --threads 1    # layout, folding

``--layout`` times EfficientNet-Lite0's forward+backward on the CPU as the package ships it
(NCHW, BatchNorms), in the channels-last (NHWC) layout, and as repmatch runs it (NHWC with the
BatchNorms and the symmetric pads folded into the convolutions), at the sizes the Fashion-MNIST presets use, in
alternating rounds so that all three see the same machine load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import repmatch.represent as enc


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(encoder: enc.ImageEncoder, device: torch.device, bf16: bool, batch_size: int,
            image_size: int, repeats: int) -> tuple[float, float]:
    battery = enc.EncoderBattery([encoder], autocast_bf16=bf16).to(device)
    images = torch.rand(batch_size, 3, image_size, image_size, device=device)

    def forward() -> None:
        with torch.no_grad():
            battery(images)

    def forward_backward() -> None:
        x = images.clone().requires_grad_(True)
        feats = battery(x)[encoder.spec.name]
        feats.square().mean().backward()
        assert x.grad is not None

    return timed(forward, repeats, device), timed(forward_backward, repeats, device)


def layout_rows(sizes: list[int], batch_size: int, repeats: int) -> None:
    """EfficientNet-Lite0 forward+backward: the package's network (NCHW, BatchNorms), the same
    in channels-last, and repmatch's encoder (channels-last, BatchNorms and pads folded)."""
    import copy

    from repmatch.represent.offline import efficientnet_package_net

    package = efficientnet_package_net()
    nhwc_net = copy.deepcopy(package).to(memory_format=torch.channels_last)
    variants = {
        "package": lambda x: package.extract_features(x).mean(dim=(2, 3)),
        "NHWC": lambda x: nhwc_net.extract_features(
            x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3)),
        "NHWC+fold": enc.create("efficientnet_lite0").backbone,
    }
    print(f"efficientnet_lite0 forward+backward, batch {batch_size}, CPU threads "
          f"{torch.get_num_threads()}, median s of {repeats} alternating rounds; speed-ups over "
          "the package's network (NCHW, BatchNorms); max |Δf|/max|f| of repmatch's encoder")
    print(f"{'px':>5}" + "".join(f"{name + ' s':>13}" for name in variants)
          + f"{'NHWC ×':>9}{'+fold ×':>9}{'Δf':>10}")
    for side in sizes:
        x = torch.rand(batch_size, 3, side, side, generator=torch.Generator().manual_seed(0))

        def step(net) -> torch.Tensor:
            xi = x.clone().requires_grad_(True)
            feats = net(xi)
            feats.square().mean().backward()
            return feats.detach()

        for net in variants.values():  # warm-up
            step(net)
        rounds: list[list[float]] = []
        for _ in range(repeats):
            times, feats = [], []
            for net in variants.values():
                t0 = time.perf_counter()
                feats.append(step(net))
                times.append(time.perf_counter() - t0)
            rounds.append(times)
        med = [statistics.median(r[k] for r in rounds) for k in range(len(variants))]
        rel = float((feats[-1] - feats[0]).abs().max() / feats[0].abs().max())
        print(f"{side:>5}" + "".join(f"{t:>13.3f}" for t in med)
              + f"{med[0] / med[1]:>8.2f}x{med[0] / med[2]:>8.2f}x{rel:>10.1e}")


def resolve(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        out.extend(enc.panel(name) if name in enc.list_panels() else [name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["offline_cnn"], help="names or panels")
    parser.add_argument("--random-weights", action="store_true", help="pretrained=False (timing only)")
    parser.add_argument("--cpu-batch-size", type=int, default=8)
    parser.add_argument("--gpu-batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=256, help="side of the input images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU rows")
    parser.add_argument("--layout", action="store_true",
                        help="only time EfficientNet-Lite0 as shipped, NHWC, NHWC+folded (CPU, 32 and 64 px, batch 128)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.layout:
        layout_rows([32, 64], batch_size=128, repeats=args.repeats)
        return

    configs: list[tuple[torch.device, bool, int]] = []
    if not args.no_cpu:
        configs.append((torch.device("cpu"), False, args.cpu_batch_size))
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        configs += [(gpu, False, args.gpu_batch_size), (gpu, True, args.gpu_batch_size)]
        print(f"GPU: {torch.cuda.get_device_name()}")
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"images {args.image_size}x{args.image_size}, median of {args.repeats}")
    header = f"{'encoder':<20}{'dev':<6}{'prec':<6}{'batch':>6}{'fwd img/s':>12}{'fwd+bwd img/s':>15}{'bwd/fwd':>9}{'vs fp32':>9}"
    print(header)
    print("-" * len(header))
    for name in resolve(args.encoders):
        try:
            encoder = enc.create(name, pretrained=not args.random_weights)
        except (ModuleNotFoundError, FileNotFoundError) as err:
            print(f"{name:<20}skipped: {str(err).splitlines()[0][:90]}")
            continue
        if not isinstance(encoder, enc.ImageEncoder):
            continue
        gpu_fp32 = None
        for device, bf16, batch in configs:
            fwd, fwdbwd = measure(encoder, device, bf16, batch, args.image_size, args.repeats)
            rate = batch / fwdbwd
            versus = ""
            if device.type == "cuda" and not bf16:
                gpu_fp32 = rate
            elif bf16 and gpu_fp32:
                versus = f"{rate / gpu_fp32:.2f}x"
            prec = "bf16" if bf16 else "fp32"
            print(f"{name:<20}{device.type:<6}{prec:<6}{batch:>6}{batch / fwd:>12.1f}{rate:>15.1f}"
                  f"{fwdbwd / fwd:>9.2f}{versus:>9}")
        encoder.to("cpu")


if __name__ == "__main__":
    main()
