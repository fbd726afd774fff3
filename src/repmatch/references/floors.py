"""The controller's real floors ``b_φ``: the training distance on real validation features.

For each training encoder ``φ`` with distance ``D_φ`` (eq. 3 against its reference, on the
features the run trains on, joint ones of eq. 4 included)::

    b_φ = (1/K) Σ_k D_φ(val_k)

over the ``K = ⌊n / B⌋`` disjoint validation batches ``val_k`` of ``B`` rows — ``B`` the
generator's batch size, because eq. 3's biased repulsion (diagonal included, divided by
``B²``) makes the estimate depend on it — or one batch of all ``n`` rows when ``n < B``. The
spread across batches gives the floor's relative standard error
``sd_k(D_φ(val_k)) / √K / |b_φ|``, which flags a floor too noisy to gate on.

These are *training* floors. The evaluation's floors
(:func:`repmatch.evaluation.metric_floors`) are another quantity: ``SW(val, train)``, the
Sliced-Wasserstein metric's denominator of eq. 5, on whole (subsampled) sets.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from ..validate import check_features, check_positive

#: Disjoint validation batches below which a floor estimate is flagged as unreliable.
MIN_FLOOR_BATCHES = 8
#: Relative standard error of a floor above which it is flagged as unreliable.
MAX_FLOOR_REL_STDERR = 0.1


@dataclass(frozen=True, kw_only=True)
class FloorEstimate:
    """Real floors ``b_φ`` at one batch size (``values``), with their reliability."""

    batch_size: int
    num_val: int
    values: dict[str, float]
    rel_stderr: dict[str, float]

    @property
    def num_batches(self) -> int:
        return self.num_val // min(self.batch_size, self.num_val)

    def warnings(self) -> list[str]:
        """Why these floors may be unreliable (empty when they are not)."""
        out = []
        if self.num_batches < MIN_FLOOR_BATCHES:
            out.append(
                f"the validation set ({self.num_val} rows) holds {self.num_batches} batch(es) of "
                f"{self.batch_size}; at least {MIN_FLOOR_BATCHES} ({MIN_FLOOR_BATCHES * self.batch_size} "
                "rows) are needed for a reliable floor"
            )
        for name, err in sorted(self.rel_stderr.items()):
            # One batch has no spread to measure: the batch-count warning above covers it.
            if math.isfinite(err) and err > MAX_FLOOR_REL_STDERR:
                out.append(
                    f"the floor of {name} has a relative standard error of {err:.0%} "
                    f"(> {MAX_FLOOR_REL_STDERR:.0%}): a floor this noisy can gate the encoder off early"
                )
        return out


@torch.no_grad()
def training_floors(
    distances: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    val_features: Mapping[str, torch.Tensor],
    batch_size: int,
) -> FloorEstimate:
    """Real floors ``b_φ`` of every encoder of ``distances`` on ``val_features[φ]`` ``(n, D')``
    in disjoint batches of ``batch_size`` rows (see module doc); ``.values`` is what
    :class:`repmatch.train.TrainTask` takes as ``floors``."""
    values, rel = {}, {}
    for name, per in _batch_values(distances, val_features, batch_size).items():
        mean = sum(per) / len(per)
        values[name] = mean
        rel[name] = _rel_stderr(per, mean)
    num_val = min(int(v.shape[0]) for v in val_features.values())
    return FloorEstimate(batch_size=batch_size, num_val=num_val, values=values, rel_stderr=rel)


def warn_floors(estimate: FloorEstimate) -> None:
    """Each of ``estimate.warnings()`` as a ``RuntimeWarning``."""
    for message in estimate.warnings():
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _batch_values(
    distances: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    val_features: Mapping[str, torch.Tensor],
    batch_size: int,
) -> dict[str, list[float]]:
    """``D_φ(val_k)`` of each disjoint validation batch of ``batch_size`` rows (one batch of all
    rows when there are fewer), per encoder."""
    check_positive("batch_size", batch_size, integer=True)
    out = {}
    for name, dist in distances.items():
        if name not in val_features:
            raise ValueError(f"val_features is missing encoder {name!r}; it has {sorted(val_features)}")
        feats = check_features(f"val_features[{name!r}]", val_features[name])
        n = feats.shape[0]
        size = min(batch_size, n)
        out[name] = [float(dist(feats[i : i + size])) for i in range(0, n - size + 1, size)]
    return out


def _rel_stderr(per: list[float], mean: float) -> float:
    """``sd / √K / |mean|`` of the ``K`` batch values (``inf`` when it cannot be measured)."""
    if len(per) < 2 or not mean:
        return math.inf
    sd = math.sqrt(sum((v - mean) ** 2 for v in per) / (len(per) - 1))
    return sd / math.sqrt(len(per)) / abs(mean)
