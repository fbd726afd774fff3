"""Tiny independent pieces shared by the train tests: float64 brute-force MMD oracle, toy
encoders (fixed linear feature maps, registered or not) and an MLP generator with dropout."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class InjectedTask:
    """The task section of a run whose task is handed to ``train`` in code (these tests')."""

    name: ClassVar[str] = "_train_toys:InjectedTask"  # module:attribute: found without registering
    label: str = "injected"

    def build(self, config, device):
        raise AssertionError("the tests pass their task to train() themselves")


class PooledLinear(nn.Module):
    """A fixed random linear map of the 4×4 average-pooled image: ``(N, 3, H, W) -> (N, dim)``."""

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        self.register_buffer("w", torch.randn(48, dim, generator=torch.Generator().manual_seed(seed)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ self.w


def register_linear_encoder(name: str, dim: int, seed: int, *, checkpoint: str = "test",
                            held_out: bool = False) -> None:
    """Register ``name``: an 8-px in-project encoder whose backbone is ``PooledLinear(dim, seed)``."""
    from repmatch.represent import EncoderSpec, register_encoder

    spec = EncoderSpec(name=name, source="in-project", checkpoint=checkpoint, dim=dim, input_size=8,
                       mean=(0.0,) * 3, std=(1.0,) * 3, held_out=held_out)
    register_encoder(spec)(lambda spec, *, weights, pretrained: PooledLinear(dim, seed))


def brute_mmd_loss(gen: torch.Tensor, ref: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Eq. 3 with an exact attraction: (1/B²)Σ k(g_i,g_j) − (2/(B n))Σ k(g_i, r_t)."""
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
        return torch.exp(-d2 / (2 * bandwidth**2))
    return k(gen, gen).mean() - 2 * k(gen, ref).mean()


class ToyEncoders(nn.Module):
    """Two frozen feature maps of an image: a linear map and a tanh of another."""

    def __init__(self, in_dim: int, dims: tuple[int, int] = (5, 3), seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(in_dim, dims[0], generator=g, dtype=torch.float64), requires_grad=False)
        self.b = nn.Parameter(torch.randn(in_dim, dims[1], generator=g, dtype=torch.float64), requires_grad=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.flatten(1)
        return {"lin": x @ self.a, "tanh": torch.tanh(x @ self.b)}


def make_generator(seed: int = 0, dropout: float = 0.2, noise_dim: int = 4) -> nn.Module:
    from repmatch.generators.base import MLPGenerator

    torch.manual_seed(seed)
    return MLPGenerator(noise_dim, (1, 2, 3), hidden=16, dropout=dropout).double()


# --- two-process worker for tests/test_distributed.py (spawned; must be importable) ---

GLOBAL_B = 12
LOCAL_CHUNK = 4


def toy_problem(dropout: float = 0.0):
    """Generator, encoders, global noise (GLOBAL_B rows), loss. Distributed runs keep the
    default dropout 0: ranks draw different masks."""
    gen = make_generator(dropout=dropout)
    enc = ToyEncoders(6)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(GLOBAL_B, 4, generator=g, dtype=torch.float64)
    refs = {"lin": torch.randn(20, 5, generator=g, dtype=torch.float64),
            "tanh": torch.rand(20, 3, generator=g, dtype=torch.float64)}

    def loss(feats):
        return 0.7 * brute_mmd_loss(feats["lin"], refs["lin"], 2.0) + brute_mmd_loss(feats["tanh"], refs["tanh"], 0.5)

    return gen, enc, noise, loss


def dist_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from repmatch.train.distributed import close_distributed, distributed_cached_backward

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    # Several chunks per rank (the two cached phases) and one (the single-graph path).
    for mode, chunk in itertools.product(("plain", "ddp", "fsdp"), (LOCAL_CHUNK, GLOBAL_B // world)):
        key = f"{mode}/{chunk}"
        gen, enc, noise, loss = toy_problem()
        shard = noise.chunk(world)[rank]
        if mode == "ddp":
            model = DDP(gen)
        elif mode == "fsdp":
            try:
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

                model = FSDP(gen, device_id=torch.device("cpu"), use_orig_params=True)
            except Exception as exc:  # FSDP on CPU/gloo is not available in every build
                results[key] = repr(exc)
                continue
        else:
            model = gen
        try:
            value = distributed_cached_backward(model, lambda c: enc(model(c)), shard.split(chunk), loss)
            if mode == "fsdp":
                with FSDP.summon_full_params(model, with_grads=True):
                    grads = {n: p.grad.clone() for n, p in gen.named_parameters()}
            else:
                grads = {n: p.grad.clone() for n, p in gen.named_parameters()}
            results[key] = {"loss": value, "grads": grads}
        except Exception as exc:
            if mode != "fsdp":
                raise
            results[key] = repr(exc)
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    close_distributed()
