"""Input checks shared by the public API.

Every check raises ``ValueError``/``TypeError`` naming the parameter, the bad value and what
is accepted, so a user sees which argument to fix rather than a shape error deep in a matmul.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def check_features(name: str, x: Any, *, dim: int | None = None, finite: bool = True) -> torch.Tensor:
    """Validate a feature matrix ``(N, D)`` and return it.

    Raises ``TypeError`` if ``x`` is not a floating tensor, ``ValueError`` if it is not 2-D,
    is empty, has ``D != dim`` (when ``dim`` is given) or holds NaN/Inf (when ``finite``).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D) (2 dimensions), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has feature dimension {x.shape[1]}, expected {dim}")
    if finite and x.device.type != "meta" and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_positive(name: str, value: Any, *, integer: bool = False) -> Any:
    """Validate a strictly positive (optionally integer) scalar and return it."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "a positive integer" if integer else "a positive number"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if not (value > 0) or (not integer and not math.isfinite(value)):
        kind = "a positive integer" if integer else "a finite positive number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: Any) -> int:
    """Validate a non-negative integer (a seed, a count that may be 0) and return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_scales(name: str, value: Any) -> float | tuple[float, ...]:
    """Validate one positive scale or a non-empty sequence of distinct ones (a multi-scale kernel).

    Returns the number, or the sequence as a tuple of floats.
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} must be a positive number or a non-empty list of them, got {value!r}")
        for v in value:
            check_positive(f"{name}[i]", v)
        if len(set(value)) != len(value):
            raise ValueError(f"{name} must not repeat a scale, got {list(value)}")
        return tuple(float(v) for v in value)
    return check_positive(name, value)


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """Validate that ``value`` is one of ``choices`` and return it."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
