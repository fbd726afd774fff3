"""Evaluation settings (defaults from the paper: §4.1 and §4.4)."""

from __future__ import annotations

import dataclasses

from ..validate import check_nonnegative_int, check_positive
from ..metrics.panel import DEFAULT_MMD_SAMPLES, DEFAULT_SW_SAMPLES
from ..metrics.sliced import DEFAULT_CHUNK_SIZE, DEFAULT_NUM_PROJECTIONS

CROSS_CHECKS = ("mmd", "fd")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Settings of ``repmatch eval`` / ``repmatch floors``.

    Attributes:
        num_samples: rows per set for SW_r,k (16384 in the paper).
        num_projections: SW projections M (1024 in the paper).
        seed: fixes the projections, the RFF map and every subsample.
        chunk_size: projections per chunk (memory bound only; results do not depend on it).
        cross_checks: subset of ``("mmd", "fd")`` computed next to SW.
        cross_check_samples: rows per set for the MMD and FD ratios (50000 in §4.4).
        num_rff: random Fourier features of the MMD ratio (4096 in §4.4).
        device: where metrics run (``None``: the CPU).
        batch_size: images per forward pass when features must be extracted.
    """

    num_samples: int = DEFAULT_SW_SAMPLES
    num_projections: int = DEFAULT_NUM_PROJECTIONS
    seed: int = 0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    cross_checks: tuple[str, ...] = CROSS_CHECKS
    cross_check_samples: int = DEFAULT_MMD_SAMPLES
    num_rff: int = 4096
    device: str | None = None
    batch_size: int = 256

    @property
    def metric_device(self) -> str:
        return self.device or "cpu"

    def __post_init__(self) -> None:
        for name in (
            "num_samples",
            "num_projections",
            "chunk_size",
            "cross_check_samples",
            "num_rff",
            "batch_size",
        ):
            check_positive(name, getattr(self, name), integer=True)
        check_nonnegative_int("seed", self.seed)
        object.__setattr__(self, "cross_checks", tuple(self.cross_checks))
        unknown = [c for c in self.cross_checks if c not in CROSS_CHECKS]
        if unknown:
            raise ValueError(
                f"cross_checks must be a subset of {list(CROSS_CHECKS)}, got {list(self.cross_checks)}"
            )
