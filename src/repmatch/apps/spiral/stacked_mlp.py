"""Many independent MLPs trained as one: weights stacked along a leading cell axis.

A study grid trains the same small generator once per cell (arm × batch size). Stacking the
cells' weights as ``(C, in, out)`` tensors turns C small matmuls into one ``torch.baddbmm``, so
one Python step advances every cell of a batch-size group. Cells stay independent: each cell
reads only its own slice, so the gradient of a sum of per-cell losses w.r.t. a slice is that
cell's own gradient, and Adam, being elementwise, acts on each slice exactly as a per-cell Adam
would. Gradient clipping is the one coupling a naive port would introduce; it is done per cell
by ``clip_grad_norm_per_cell``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...validate import check_positive


class StackedMLP(nn.Module):
    """``C`` ReLU MLPs with widths ``widths`` (e.g. 2 → 256 ×4 → 64), evaluated batched.

    Each cell's layer ``l`` is initialised from its own ``torch.Generator`` (seeded by
    ``seeds[c]``) with PyTorch's default ``nn.Linear`` law, ``U(-1/√fan_in, 1/√fan_in)`` for weight
    and bias, so a cell's initial weights depend only on its seed, not on which cells share
    the stack.
    """

    def __init__(self, widths: Sequence[int], seeds: Sequence[int]) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"widths must list at least input and output sizes, got {list(widths)}")
        for w in widths:
            check_positive("widths[i]", w, integer=True)
        if len(seeds) == 0:
            raise ValueError("seeds must name at least one cell, got an empty sequence")
        self.widths = tuple(int(w) for w in widths)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            ws: list[torch.Tensor] = []
            bs: list[torch.Tensor] = []
            for g in gens:
                ws.append(torch.empty(fan_in, fan_out).uniform_(-bound, bound, generator=g))
                bs.append(torch.empty(1, fan_out).uniform_(-bound, bound, generator=g))
            self.weights.append(nn.Parameter(torch.stack(ws)))
            self.biases.append(nn.Parameter(torch.stack(bs)))

    @property
    def num_cells(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map per-cell inputs ``z`` (C, B, widths[0]) to outputs (C, B, widths[-1])."""
        h = z
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                # In place: baddbmm's backward does not need its output, relu's needs only this.
                h = torch.relu_(h)
        return h


def clip_grad_norm_per_cell(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each cell's gradient to total 2-norm ``max_norm``; return the pre-clip norms (C,).

    ``params`` are stacked tensors whose axis 0 is the cell. For cell ``c`` the norm runs over
    all ``p.grad[c]``; the scale ``min(1, max_norm / (norm + 1e-6))`` is
    ``torch.nn.utils.clip_grad_norm_``'s, applied to that cell alone.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise ValueError("params carry no gradients: call backward() before clipping")
    # Per-parameter norms then the norm of norms, as clip_grad_norm_ does (no squared copy).
    per_param = torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads])
    norms = torch.linalg.vector_norm(per_param, dim=0)
    scale = (max_norm / (norms + 1e-6)).clamp_(max=1.0)
    # One broadcast multiply per tensor when any cell clips (scale 1 leaves the others exact);
    # per-cell slices would cost (cells × tensors) tiny kernels.
    if bool((scale < 1.0).any()):
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))
    return norms
