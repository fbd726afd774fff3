"""First-order-only guard for the closed-form gradients of the distances.

Several losses compute their gradient in the forward pass (or from saved intermediates) and
return it as a constant in ``backward``. Autograd would then treat that gradient as
independent of the input, so a second derivative (``create_graph=True``: a gradient penalty,
``gradgradcheck``) would silently miss the loss's Hessian. :func:`first_order_only` makes
differentiating through such a gradient raise instead.
"""

from __future__ import annotations

import torch


class _NoSecondDerivative(torch.autograd.Function):
    """Identity on ``grad``, linked to ``anchor``'s graph; its backward raises."""

    @staticmethod
    def forward(ctx, grad, anchor, name):  # type: ignore[override]
        ctx.name = name
        return grad.clone()

    @staticmethod
    def backward(ctx, *unused):  # type: ignore[override]
        raise RuntimeError(
            f"{ctx.name} implements its first derivative in closed form only: its second "
            "derivative (double backward through create_graph=True, e.g. a gradient penalty "
            "or gradgradcheck) is not available"
        )


def first_order_only(grad: torch.Tensor, anchor: torch.Tensor | None, name: str) -> torch.Tensor:
    """``grad``, unchanged outside ``create_graph=True``; inside it, a copy whose backward raises.

    Call from a custom ``Function.backward`` with ``anchor`` the forward's differentiable input
    (kept on ``ctx``, so the error node sits on the path to whatever that input depends on: a
    gradient penalty ``d/dθ |dL/dθ|²`` reaches it, and raises, rather than skipping it).
    """
    if torch.is_grad_enabled() and anchor is not None and anchor.requires_grad:
        return _NoSecondDerivative.apply(grad, anchor, name)
    return grad
