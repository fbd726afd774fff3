"""Your generator, by name: a registered generator source, or ``"module:callable"`` imported
from the working directory or ``PYTHONPATH``; optional initial weights, optionally wrapped as a
K-step Euler sampler.

The callable returns an ``nn.Module`` called as ``(noise (N, *noise_shape), condition) -> images
(N, C, H, W)`` in [0, 1]; with ``sampler_steps = K`` it instead returns a velocity model
``v(x_t, t, condition)`` and the generator is :class:`FewStepGenerator` with K Euler steps over
``x_t`` of shape ``noise_shape`` (the few-step post-training path: ``K = 1`` is the one-step
student of a K-step teacher).

:data:`GENERATORS` holds the named sources: the library's ``mlp`` (:class:`MLPGenerator`) and
those installed packages add through the entry-point group ``repmatch.generators``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..registry import Registry
from .base import FewStepGenerator, MLPGenerator


def _check_callable(key: str, obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"{key}: expected a callable returning an nn.Module, got a {type(obj).__name__}")


#: Generator source name -> a callable ``(**generator_kwargs) -> nn.Module``.
GENERATORS: Registry[Callable[..., nn.Module]] = Registry(
    "generator", group="repmatch.generators", check=_check_callable
)
GENERATORS.register("mlp", MLPGenerator)


def load_state(path: str | os.PathLike[str], *, key: str = "init_checkpoint") -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file of tensors (loaded with
    ``weights_only=True``: a crafted pickle cannot run code). A repmatch checkpoint's generator
    weights (``{"generator": state, ...}``) are taken from it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{key}: no such file {str(p)!r}")
    if p.suffix == ".safetensors":
        return load_file(str(p))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{key}: {str(p)!r} is not a safetensors or weights-only torch file ({exc})") from exc
    if isinstance(state, Mapping) and isinstance(state.get("generator"), Mapping):
        state = state["generator"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{key}: {str(p)!r} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def build_generator(
    spec: str,
    *,
    kwargs: Mapping[str, Any] | None = None,
    noise_shape: Sequence[int] | None = None,
    init_checkpoint: str | os.PathLike[str] | None = None,
    sampler_steps: int | None = None,
) -> nn.Module:
    """The generator of ``spec`` (see module doc), with a ``noise_shape`` attribute.

    ``noise_shape`` is required unless the module already has one; ``init_checkpoint`` is loaded
    strictly into the module the callable returns (before any sampler wrapper).
    """
    model = GENERATORS.get(spec)(**dict(kwargs or {}))
    if not isinstance(model, nn.Module):
        raise TypeError(f"generator: {spec!r} returned a {type(model).__name__}, expected a torch.nn.Module")
    if init_checkpoint is not None:
        try:
            model.load_state_dict(load_state(init_checkpoint))
        except RuntimeError as exc:
            raise ValueError(f"init_checkpoint: {init_checkpoint} does not fit {spec!r}: {exc}") from exc
    if sampler_steps is not None:
        if noise_shape is None:
            raise ValueError("noise_shape is required with sampler_steps (the shape of x_t)")
        return FewStepGenerator(model, sampler_steps, noise_shape)
    if noise_shape is not None:
        setattr(model, "noise_shape", tuple(int(s) for s in noise_shape))  # nn.Module types attributes as Tensor | Module
    elif not hasattr(model, "noise_shape"):
        raise ValueError(f"noise_shape: {spec!r} has no noise_shape attribute; give noise_shape in the config")
    return model
