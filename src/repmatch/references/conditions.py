"""The condition side of eq. 4, ``Φ(x, c) = φ(x) ⊕ β·τ(c)``, for references built on joint
image–condition features: ``τ(c) = onehot(c)`` for class labels (:class:`ClassCondition`), or a
frozen text encoder's embedding of each image's caption (:class:`TextCondition`). Both join
through :func:`repmatch.represent.joint_features`, the one implementation of eq. 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from ..represent.joint import joint_features, one_hot_embedding
from ..validate import check_positive


class _JointCondition:
    """What both conditions share: the joint space ``φ ⊕ β·τ(c)``, named
    ``<image fingerprint>+<τ's space>*β``, with ``τ`` given by :meth:`embed`."""

    kind: ClassVar[str]
    beta: float

    @property
    def space(self) -> str:
        """The name of ``τ``'s feature space."""
        raise NotImplementedError

    def embed(self, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fingerprint(self, image_fingerprint: str) -> str:
        """The joint feature space (names the reference)."""
        return f"{image_fingerprint}+{self.space}*{self.beta:g}"

    def join(self, features: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``φ(x) ⊕ β·τ(c)``: ``(N, D)`` and the condition rows → ``(N, D + E)``."""
        return joint_features(features, self.embed(rows), self.beta)


@dataclass(frozen=True, kw_only=True)
class ClassCondition(_JointCondition):
    """Class conditioning of eq. 4: ``τ(c) = onehot(c)`` scaled by ``beta``."""

    kind: ClassVar[str] = "class"
    num_classes: int
    beta: float

    def __post_init__(self) -> None:
        check_positive("num_classes", self.num_classes, integer=True)
        check_positive("beta", self.beta)

    @property
    def space(self) -> str:
        return f"onehot{self.num_classes}"

    def embed(self, rows: torch.Tensor) -> torch.Tensor:
        """``τ(c) = onehot(c)``: labels ``(N,)`` → ``(N, num_classes)`` float32."""
        return one_hot_embedding(rows.long(), self.num_classes)


@dataclass(frozen=True, kw_only=True)
class TextCondition(_JointCondition):
    """Text conditioning of eq. 4: ``τ(c)`` is a frozen text encoder's embedding of the caption
    (computed once, :func:`repmatch.references.embed_captions`), scaled by ``beta``."""

    kind: ClassVar[str] = "text"
    encoder: str
    encoder_fingerprint: str
    dim: int
    beta: float

    def __post_init__(self) -> None:
        check_positive("dim", self.dim, integer=True)
        check_positive("beta", self.beta)

    @property
    def space(self) -> str:
        return self.encoder_fingerprint

    def embed(self, rows: torch.Tensor) -> torch.Tensor:
        """The caption embeddings themselves ``(N, dim)`` (they are the condition rows)."""
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"caption embeddings must have shape (N, {self.dim}), got {tuple(rows.shape)}")
        return rows.float()


Condition = ClassCondition | TextCondition

_KINDS: dict[str, type[ClassCondition] | type[TextCondition]] = {c.kind: c for c in (ClassCondition, TextCondition)}


def condition_to_json(condition: Condition | None) -> dict[str, Any] | None:
    """``{"kind": "class" | "text", **fields}`` (``None`` for an unconditional reference)."""
    if condition is None:
        return None
    return {"kind": condition.kind, **asdict(condition)}


def condition_from_json(obj: dict[str, Any] | None) -> Condition | None:
    """The condition :func:`condition_to_json` wrote."""
    if obj is None:
        return None
    kind = obj.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"condition kind must be one of {sorted(_KINDS)}, got {kind!r}")
    return _KINDS[kind](**{k: v for k, v in obj.items() if k != "kind"})
