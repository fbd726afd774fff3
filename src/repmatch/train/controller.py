"""Per-encoder weighting: the gated proportional Lagrangian controller (paper §3.3, §4.3).

Each training encoder φ is a constraint "reach the real floor": its score ``s_φ`` must not
exceed ``b_φ``, the same distance estimated between real validation features and the
reference. The weight is the Lagrange multiplier, set by proportional control with a gate:

    e_φ = s̃_φ - b_φ                     (s̃: exponential moving average of the score)
    V   = {φ : e_φ > 0}                  (violators; satisfied encoders get λ_φ = 0)
    λ_φ = Σ · softmax_V(e_φ / (τ · ē))   for φ ∈ V,  ē = mean_{φ∈V} e_φ

so the violators share the fixed budget Σ and the farthest from real weigh most; when every
encoder is satisfied all weights vanish (the anti-overfitting terminal state). ``uniform``
mode (the §4.3 ablation) gives every encoder ``Σ / K`` regardless of the scores.

The weights multiply *scale-free* per-encoder terms, ``raw_φ / |raw_φ.detach()|`` (see
:func:`scale_free`), so the budget is shared between encoders whose raw losses differ by
orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from ..validate import check_choice, check_positive

CONTROLLER_MODES = ("gated", "uniform")


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    """Controller settings.

    Attributes:
        mode: ``"gated"`` (the proportional Lagrangian) or ``"uniform"`` (ablation).
        budget: Σ, the total weight shared by the violators (the paper uses 10).
        temperature: τ, softmax temperature relative to the mean violator excess.
        score_ema: EMA decay of the scores in ``[0, 1)``; 0 uses the current score only.
    """

    mode: Literal["gated", "uniform"] = "gated"
    budget: float = 10.0
    temperature: float = 1.0
    score_ema: float = 0.9

    def __post_init__(self) -> None:
        check_choice("controller.mode", self.mode, CONTROLLER_MODES)
        check_positive("controller.budget", self.budget)
        check_positive("controller.temperature", self.temperature)
        if isinstance(self.score_ema, bool) or not isinstance(self.score_ema, (int, float)) or not (
            0.0 <= self.score_ema < 1.0
        ):
            raise ValueError(f"controller.score_ema must be a number in [0, 1), got {self.score_ema!r}")


def gated_weights(
    excess: Mapping[str, float], *, budget: float, temperature: float
) -> dict[str, float]:
    """λ from excesses ``e_φ``: 0 for ``e_φ <= 0``; ``Σ·softmax(e/(τ ē))`` over violators."""
    violators = {k: e for k, e in excess.items() if e > 0}
    weights = {k: 0.0 for k in excess}
    if not violators:
        return weights
    mean = sum(violators.values()) / len(violators)
    logits = {k: e / (temperature * mean) for k, e in violators.items()}
    top = max(logits.values())  # shift for a stable softmax
    z = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(z.values())
    for k, v in z.items():
        weights[k] = budget * v / total
    return weights


class LagrangianController:
    """Stateful controller: ``update(scores) -> weights``; state round-trips via state_dict.

    Args:
        names: the training encoders, in a fixed order.
        floors: ``b_φ`` per encoder (real validation vs reference, same estimator and batch
            size as the training score).
        config: :class:`ControllerConfig`.
    """

    def __init__(
        self, names: Sequence[str], floors: Mapping[str, float], config: ControllerConfig
    ) -> None:
        names = list(names)
        if not names:
            raise ValueError("names must list at least one encoder, got []")
        missing = [n for n in names if n not in floors]
        if missing:
            raise ValueError(f"floors is missing encoders {missing}; it has {sorted(floors)}")
        for n in names:
            if not math.isfinite(float(floors[n])):
                raise ValueError(f"floors[{n!r}] must be finite, got {floors[n]!r}")
        self.names = names
        self.floors = {n: float(floors[n]) for n in names}
        self.config = config
        self.smoothed: dict[str, float] | None = None
        self.weights: dict[str, float] = self._weights()

    def _weights(self) -> dict[str, float]:
        cfg = self.config
        if cfg.mode == "uniform":
            return {n: cfg.budget / len(self.names) for n in self.names}
        if self.smoothed is None:  # no score seen yet: every encoder counts as violating equally
            return {n: cfg.budget / len(self.names) for n in self.names}
        return gated_weights(self.excess(), budget=cfg.budget, temperature=cfg.temperature)

    def excess(self) -> dict[str, float]:
        """``e_φ = s̃_φ - b_φ`` for the current smoothed scores."""
        if self.smoothed is None:
            raise RuntimeError("excess() needs at least one update(scores)")
        return {n: self.smoothed[n] - self.floors[n] for n in self.names}

    def update(self, scores: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
        """Fold this step's scores into the EMA and return the new weights."""
        values = {}
        for n in self.names:
            if n not in scores:
                raise ValueError(f"scores is missing encoder {n!r}; it has {sorted(scores)}")
            v = float(scores[n])
            if not math.isfinite(v):
                raise ValueError(f"scores[{n!r}] must be finite, got {v}")
            values[n] = v
        a = self.config.score_ema
        if self.smoothed is None:
            self.smoothed = dict(values)
        else:
            self.smoothed = {n: a * self.smoothed[n] + (1.0 - a) * values[n] for n in self.names}
        self.weights = self._weights()
        return dict(self.weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "floors": dict(self.floors),
            "config": asdict(self.config),
            "smoothed": None if self.smoothed is None else dict(self.smoothed),
            "weights": dict(self.weights),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state["names"]) != self.names:
            raise ValueError(f"controller state has encoders {state['names']}, expected {self.names}")
        self.floors = {n: float(state["floors"][n]) for n in self.names}
        self.smoothed = None if state["smoothed"] is None else {n: float(state["smoothed"][n]) for n in self.names}
        self.weights = {n: float(state["weights"][n]) for n in self.names}


def scale_free(raw: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``raw / |raw.detach()|``: value ±1, gradient ``∇raw / |raw|`` (= ∇log|raw|).

    Makes per-encoder terms comparable whatever their scale; ``eps`` guards ``raw = 0``.
    """
    return raw / raw.detach().abs().clamp_min(eps)
