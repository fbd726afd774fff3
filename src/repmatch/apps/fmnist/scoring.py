"""What the Fashion-MNIST eval stage adds to each model's SW_r,k panel (``repmatch eval``).

All of it is computed from feature stores the job already holds, so no image is decoded or
encoded twice:

- **class agreement**: ``fmnist_classifier``'s own 10-way head on the classifier features of the
  samples (stored by the gen extraction) against their conditioning labels; real test images
  (the test store) score the classifier's accuracy;
- **two disjoint real draws** A and B of the sample sets' size from the Fashion-MNIST test
  split (:func:`real_draws`): A is the floors' own validation rows, B other test rows, read from
  the test store and, where it runs out, from ``OUT/features/test-noise`` (the next test rows,
  extracted once through the same battery);
- **the noise level** of every SW column, |r(A) − r(B)| (:func:`repmatch.metrics.sw_noise_level`);
- **within-class diversity** (:func:`repmatch.metrics.within_class_diversity`) in the
  ``diversity_encoder``'s feature space: each model's samples against draw A, and draw B against
  A for the real reference row (≈ 1 up to sampling noise, the honest real value).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch.utils.data import Subset

from ...data import FMNIST_SPLITS, open_dataset
from ...features import MANIFEST, FeatureStore, extract_features
from ...metrics import disjoint_draws, subsample_indices, sw_noise_level, within_class_diversity
from ...represent import EncoderBattery, ImageEncoder
from .encoders import FmnistClassifier
from .parts import Layout

#: Rows of the whole Fashion-MNIST test split (the pool of real draws).
TEST_ROWS = FMNIST_SPLITS["test"][2]
_TEST_DATA = re.compile(r"^fmnist:test(\[:(?P<limit>\d+)\])?$")


def class_agreement(classifier: ImageEncoder, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose ``classifier`` head (``fmnist_classifier``'s own 10-way layer)
    picks ``labels`` ``(N,)``, from that encoder's features ``(N, 128)`` (its penultimate layer,
    what the head reads: ``logits(x) = head(features(x))`` in eval mode).

    The SW_r,k panel compares marginal feature laws, so it cannot see a generator that draws
    good images of the wrong class; this conditional check can. Real test images score the
    classifier's accuracy (~0.9), the value a faithful conditional generator approaches.
    """
    # The fmnist_classifier encoder's backbone (nn.Module types it as a plain module).
    head = cast(FmnistClassifier, classifier.backbone).head
    with torch.no_grad():
        weight = head.weight.to("cpu", torch.float32)
        bias = head.bias.to("cpu", torch.float32)
        pred = torch.nn.functional.linear(features.to(torch.float32), weight, bias).argmax(1)
    return float((pred == labels).double().mean())


@dataclass(frozen=True)
class RealDraws:
    """Two disjoint draws of real test images: features ``{encoder: (size, D)}`` and labels.

    ``requested``: the sample sets' size; ``size`` is smaller only when the test split cannot
    hold two disjoint draws of it. ``extracted``: test rows encoded now (0 once stored).
    """

    a: dict[str, torch.Tensor]
    b: dict[str, torch.Tensor]
    labels_a: torch.Tensor
    labels_b: torch.Tensor
    size: int
    requested: int
    description: str
    extracted: int
    extract_seconds: float


def real_draws(
    layout: Layout,
    battery: EncoderBattery,
    size: int,
    *,
    seed: int,
    batch_size: int,
    device: torch.device,
    progress: bool = False,
) -> RealDraws:
    """Draws A and B of ``min(size, 10000 // 2)`` test images each (module docstring).

    The test store holds test rows ``[0, N)`` (the floors' validation set); A is the rows the
    floors read from it (``disjoint_draws``), B its other rows and then test rows ``N, N+1, ...``
    extracted into ``OUT/features/test-noise`` (once; a rerun reads them).
    """
    test = FeatureStore(layout.test_features)
    match = _TEST_DATA.match(test.data)
    if match is None:
        raise ValueError(f"{layout.test_features} holds {test.data!r}, not the head of fmnist:test")
    m = min(size, TEST_ROWS // 2)
    extra = max(0, 2 * m - len(test))
    stores, extracted, seconds = [test], 0, 0.0
    if extra:
        start, stop = len(test), len(test) + extra
        target, data = layout.noise_features, f"fmnist:test[{start}:{stop}]"
        if (target / MANIFEST).is_file():
            old = FeatureStore(target)
            if old.data != data or old.fingerprints != battery.fingerprints:
                shutil.rmtree(target)  # a cache of other rows or another battery
        fresh = not (target / MANIFEST).is_file()
        t0 = time.perf_counter()
        stores.append(
            extract_features(
                Subset(open_dataset("fmnist:test"), range(start, stop)),
                battery,
                target,
                data=data,
                batch_size=batch_size,
                device=device,
                progress=progress,
            )
        )
        seconds = time.perf_counter() - t0
        extracted = extra if fresh else 0
    ia, ib = disjoint_draws(len(test), m, seed, extra_rows=extra)
    feats = {n: torch.cat([s.read(n) for s in stores]) for n in battery.names}
    labels = torch.cat([s.labels for s in stores])
    where = f"test rows 0–{len(test) - 1} (the test store)" + (
        f" and {len(test)}–{len(test) + extra - 1} (features/test-noise)" if extra else ""
    )
    text = (
        f"two disjoint draws of {m} Fashion-MNIST test images from {where}: A = the rows the "
        "floors' validation set is read from"
        + (" (so every r(A) = 1)" if m == size else "")
        + ", B = other test rows; noise = |r(A) − r(B)|"
    )
    if m < size:
        text += (
            f". The test split ({TEST_ROWS} rows) holds no two disjoint draws of {size}: measured at "
            f"{m} per draw, which overstates the noise at {size}"
        )
    return RealDraws(
        a={n: f[ia] for n, f in feats.items()},
        b={n: f[ib] for n, f in feats.items()},
        labels_a=labels[ia],
        labels_b=labels[ib],
        size=m,
        requested=size,
        description=text,
        extracted=extracted,
        extract_seconds=seconds,
    )


def noise_level(
    draws: RealDraws,
    train: FeatureStore,
    floors: Mapping[str, float],
    *,
    num_samples: int,
    num_projections: int,
    seed: int,
    held_out: Sequence[str],
    chunk_size: int,
) -> dict[str, Any]:
    """:func:`repmatch.metrics.sw_noise_level` of the draws against the train rows every model
    was scored against (``num_samples`` of them, read as ``repmatch eval`` reads them)."""
    rows = subsample_indices(len(train), num_samples, seed)
    noise = sw_noise_level(
        draws.a,
        draws.b,
        {n: train.read(n, rows=rows) for n in draws.a},
        {n: floors[n] for n in draws.a},
        num_projections=num_projections,
        seed=seed,
        held_out=held_out,
        chunk_size=chunk_size,
    )
    return {**noise, "requested_size": draws.requested, "draws": draws.description}


def diversity(
    encoder: str, gen: FeatureStore, draws: RealDraws, *, num_samples: int, seed: int
) -> float:
    """Within-class diversity of the ``num_samples`` scored samples of ``gen`` (rows as
    ``repmatch eval`` reads them, labels = conditioning classes) against real draw A."""
    rows = subsample_indices(len(gen), num_samples, seed)
    out = within_class_diversity(
        gen.read(encoder, rows=rows), gen.labels[rows], draws.a[encoder], draws.labels_a, seed=seed
    )
    return float(out["diversity"])


def real_diversity(encoder: str, draws: RealDraws, *, seed: int) -> float:
    """Draw B against draw A: the diversity of a fresh real sample (1 up to sampling noise)."""
    out = within_class_diversity(
        draws.b[encoder], draws.labels_b, draws.a[encoder], draws.labels_a, seed=seed
    )
    return float(out["diversity"])
