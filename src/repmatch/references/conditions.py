"""The condition side of eq. 4, ``Φ(x, c) = φ(x) ⊕ β·τ(c)``, for references built on joint
image–condition features: ``τ(c) = onehot(c)`` for class labels (:class:`ClassCondition`), or a
frozen text encoder's embedding of each image's caption (:class:`TextCondition`). Both join
through :func:`repmatch.represent.joint_features`, the one implementation of eq. 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..represent.joint import joint_features, one_hot_embedding
from ..validate import check_positive


@dataclass(frozen=True, kw_only=True)
class ClassCondition:
    """Class conditioning of eq. 4: ``τ(c) = onehot(c)`` scaled by ``beta``."""

    num_classes: int
    beta: float

    def __post_init__(self) -> None:
        check_positive("num_classes", self.num_classes, integer=True)
        check_positive("beta", self.beta)

    def fingerprint(self, image_fingerprint: str) -> str:
        """The joint feature space ``φ ⊕ β·onehot(c)`` (names the reference)."""
        return f"{image_fingerprint}+onehot{self.num_classes}*{self.beta:g}"

    def embed(self, labels: torch.Tensor) -> torch.Tensor:
        """``τ(c) = onehot(c)``: labels ``(N,)`` → ``(N, num_classes)`` float32."""
        return one_hot_embedding(labels.long(), self.num_classes)

    def join(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``φ(x) ⊕ β·onehot(c)``: ``(N, D)``, ``(N,)`` → ``(N, D + num_classes)``."""
        return joint_features(features, self.embed(labels), self.beta)


@dataclass(frozen=True, kw_only=True)
class TextCondition:
    """Text conditioning of eq. 4: ``τ(c)`` is a frozen text encoder's embedding of the caption
    (computed once, :func:`repmatch.references.embed_captions`), scaled by ``beta``."""

    encoder: str
    encoder_fingerprint: str
    dim: int
    beta: float

    def __post_init__(self) -> None:
        check_positive("dim", self.dim, integer=True)
        check_positive("beta", self.beta)

    def fingerprint(self, image_fingerprint: str) -> str:
        """The joint feature space ``φ ⊕ β·τ_text(c)`` (names the reference)."""
        return f"{image_fingerprint}+{self.encoder_fingerprint}*{self.beta:g}"

    def embed(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The caption embeddings themselves ``(N, dim)`` (they are the condition rows)."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"caption embeddings must have shape (N, {self.dim}), got {tuple(embeddings.shape)}")
        return embeddings.float()

    def join(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """``φ(x) ⊕ β·τ(c)``: ``(N, D)``, ``(N, dim)`` → ``(N, D + dim)``."""
        return joint_features(features, self.embed(embeddings), self.beta)


Condition = ClassCondition | TextCondition

_KINDS: dict[str, type[ClassCondition] | type[TextCondition]] = {"class": ClassCondition, "text": TextCondition}


def condition_to_json(condition: Condition | None) -> dict[str, Any] | None:
    """``{"kind": "class" | "text", **fields}`` (``None`` for an unconditional reference)."""
    if condition is None:
        return None
    kind = "class" if isinstance(condition, ClassCondition) else "text"
    return {"kind": kind, **asdict(condition)}


def condition_from_json(obj: dict[str, Any] | None) -> Condition | None:
    """The condition :func:`condition_to_json` wrote."""
    if obj is None:
        return None
    kind = obj.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"condition kind must be one of {sorted(_KINDS)}, got {kind!r}")
    return _KINDS[kind](**{k: v for k, v in obj.items() if k != "kind"})
