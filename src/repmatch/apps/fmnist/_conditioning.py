"""Shared input checks for class-conditional networks (labels ``(N,)`` in ``[0, num_classes)``)."""

from __future__ import annotations

from typing import Any

import torch


def check_condition(condition: Any, *, batch: int, num_classes: int) -> torch.Tensor | None:
    """Validate a class-label condition for a batch of ``batch`` rows and return it.

    ``num_classes == 0`` means the network is unconditional and ``condition`` must be ``None``;
    otherwise ``condition`` must be an integer tensor of shape ``(batch,)`` with values in
    ``[0, num_classes)``.
    """
    if num_classes == 0:
        if condition is not None:
            raise ValueError("condition must be None for an unconditional network (num_classes=0)")
        return None
    if not isinstance(condition, torch.Tensor):
        raise TypeError(
            f"condition must be a torch.Tensor of class labels with shape ({batch},), "
            f"got {type(condition).__name__}"
        )
    if condition.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"condition must hold integer class labels, got dtype {condition.dtype}")
    if tuple(condition.shape) != (batch,):
        raise ValueError(f"condition must have shape ({batch},), got {tuple(condition.shape)}")
    if batch and (int(condition.min()) < 0 or int(condition.max()) >= num_classes):
        raise ValueError(
            f"condition labels must lie in [0, {num_classes}), "
            f"got range [{int(condition.min())}, {int(condition.max())}]"
        )
    return condition.long()
