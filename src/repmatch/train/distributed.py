"""Data-parallel training of a global-batch loss under ``torch.distributed``.

Every rank generates and encodes its own shard of the global batch. Features are
all-gathered once per step so that every rank evaluates the same global loss (eq. 3 couples
all rows); autograd flows only into the local rows (like open_clip's ``gather_features``), so
the cached feature gradient each rank back-propagates is ``dL/dF_local``. Summed over ranks
this is the full-batch gradient: a plain module needs one all-reduce *sum* per optimizer step
(:func:`sync_gradients`); a DDP/FSDP wrapper averages, so the cached gradient is scaled by
``world_size`` and its reduction is deferred to the last chunk with ``no_sync``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ContextManager, TypeGuard

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .gradcache import cached_backward

if TYPE_CHECKING:
    from torch.distributed.fsdp import FullyShardedDataParallel


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistEnv:
    """Initialise the process group from torchrun's environment (``WORLD_SIZE`` > 1).

    NCCL when CUDA is used, gloo on CPU. Without ``WORLD_SIZE`` it returns a one-process env.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world == 1:
        return DistEnv(device=dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev)


def close_distributed() -> None:
    """Leave the process group together: a barrier, then ``destroy_process_group``.

    Without the barrier a rank that finishes first tears down its gloo/NCCL connections
    while a peer may still be inside the last collective, and the peer aborts (SIGABRT)
    on the broken pair. A no-op when no group is initialised.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def current_env(device: torch.device | None = None) -> DistEnv:
    """The env of an already-initialised process group (or a one-process env)."""
    dev = device or torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), device=dev)
    return DistEnv(device=dev)


def gather_features(local: torch.Tensor) -> torch.Tensor:
    """All-gather ``(b, D)`` rows from every rank into ``(world·b, D)``, rank order.

    Only this rank's rows carry autograd (the others are constants here and are
    differentiated on their own rank). Shards must have equal size.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.detach().contiguous())
    parts[dist.get_rank()] = local
    return torch.cat(parts)


def gathered_loss(
    loss: Callable[[dict[str, torch.Tensor]], torch.Tensor],
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """Wrap a global-batch loss so that it sees the all-gathered features."""

    def wrapped(features: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss({k: gather_features(v) for k, v in features.items()})

    return wrapped


def is_data_parallel(
    model: nn.Module,
) -> TypeGuard[DistributedDataParallel | FullyShardedDataParallel]:
    """True for DDP- and FSDP-wrapped modules (which reduce gradients themselves)."""

    if isinstance(model, DistributedDataParallel):
        return True
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover - torch builds without distributed support
        return False
    return isinstance(model, FullyShardedDataParallel)


def unwrap(model: nn.Module) -> nn.Module:
    """The user module inside a DDP/FSDP wrapper (or the module itself)."""
    return model.module if is_data_parallel(model) else model


def sync_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """All-reduce-sum ``.grad`` over ranks, once per optimizer step (plain modules only)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def distributed_cached_backward(
    model: nn.Module,
    forward: Callable[[Any], Mapping[str, torch.Tensor]],
    chunks: Iterable[Any],
    loss: Callable[[dict[str, torch.Tensor]], torch.Tensor],
) -> torch.Tensor:
    """:func:`~repmatch.train.cached_backward` of a global-batch loss over this rank's chunks.

    ``forward`` must run ``model`` (the possibly DDP/FSDP-wrapped generator) on the local
    chunks; ``loss`` sees the all-gathered ``(N_global, D)`` features. After it returns, every
    rank holds the full-batch gradient of the global loss (gradients are reduced once).
    """
    env = current_env()
    if env.world_size == 1:
        return cached_backward(forward, chunks, loss)
    if is_data_parallel(model):
        no_sync: Callable[[], ContextManager[Any]] = model.no_sync
        return cached_backward(
            forward, chunks, gathered_loss(loss), no_sync=no_sync, feature_grad_scale=float(env.world_size)
        )
    value = cached_backward(forward, chunks, gathered_loss(loss))
    sync_gradients(model.parameters())
    return value
