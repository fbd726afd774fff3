"""One encoder's Nyström references (paper §3.1, eq. 3), one per kernel scale, over a pool.

The pool is ``φ(x_j)``, or the joint features of eq. 4 when the references are conditional,
``Φ(x_j, c_j) = φ(x_j) ⊕ β·τ(c_j)`` (:mod:`repmatch.references.conditions`). The kernel is a sum
of Gaussians at ``σ_s = s × median heuristic`` of the pool for each ``bandwidth_scale`` ``s``;
each ``σ_s`` has its own reference, all sharing one set of landmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from ..compare import NystromReference, joint_bandwidths, median_bandwidth, multiscale_bandwidths
from ..compare.nystrom import DEFAULT_NUM_LANDMARKS
from ..features import FeatureStore
from ..validate import check_nonnegative_int, check_positive, check_scales
from .conditions import ClassCondition, Condition

#: Rows of the median heuristic's subsample (:func:`repmatch.compare.median_bandwidth`'s
#: ``max_samples``): the streamed path reads exactly the rows the in-memory path draws.
MEDIAN_SAMPLES = 4096

Rows = Callable[[torch.Tensor | slice], torch.Tensor]


def build_references(
    pool: torch.Tensor | FeatureStore,
    *,
    encoder: str | None = None,
    fingerprint: str,
    labels: torch.Tensor | None = None,
    condition: Condition | None = None,
    num_landmarks: int = DEFAULT_NUM_LANDMARKS,
    bandwidth_scale: float | Sequence[float] = 1.0,
    seed: int = 0,
    kmeans_iters: int = 10,
    chunk_rows: int = 16384,
    device: torch.device | str | None = None,
) -> tuple[NystromReference, ...]:
    """One reference per kernel scale over ``pool`` (see module doc), capped at the pool's rows.

    ``pool`` is an in-memory ``(N, D)`` tensor, or a :class:`FeatureStore` with ``encoder``
    naming its features, read in blocks of ``chunk_rows`` rows so the pool never has to fit in
    memory. With a ``condition``, ``labels`` holds each row's condition: class labels ``(N,)``
    (a store's own labels by default) or caption embeddings ``(N, E)`` for text. The
    median heuristic of the streamed path reads the same seeded subsample that
    :func:`repmatch.compare.median_bandwidth` draws, so both paths agree on ``σ``.
    """
    scales = check_scales_tuple(bandwidth_scale)
    check_positive("chunk_rows", chunk_rows, integer=True)
    check_nonnegative_int("seed", seed)
    if condition is not None:
        fingerprint = condition.fingerprint(fingerprint)
    if isinstance(pool, torch.Tensor):
        joined = _join_tensor(pool, labels, condition)
        return NystromReference.build_multiscale(
            joined,
            num_landmarks=min(num_landmarks, joined.shape[0]),
            bandwidths=joint_bandwidths(joined, scales, seed=seed),
            seed=seed, fingerprint=fingerprint, kmeans_iters=kmeans_iters, device=device,
        )
    if encoder is None:
        raise ValueError("encoder must name the store's features when pool is a FeatureStore")
    rows = _store_rows(pool, encoder, store_labels(pool, labels, condition), condition)
    n = len(pool)

    def chunks() -> Iterator[torch.Tensor]:
        for start in range(0, n, chunk_rows):
            yield rows(slice(start, min(start + chunk_rows, n)))

    sigma = median_bandwidth(rows(_median_subsample(n, seed)), max_samples=MEDIAN_SAMPLES, seed=seed)
    return NystromReference.build_multiscale(
        chunks,
        num_landmarks=min(num_landmarks, n),
        bandwidths=multiscale_bandwidths(sigma, scales),
        seed=seed, fingerprint=fingerprint, kmeans_iters=kmeans_iters, chunk_size=chunk_rows,
        device=device,
    )


def check_scales_tuple(scales: float | Sequence[float]) -> tuple[float, ...]:
    """``bandwidth_scale`` checked (one positive number or several distinct ones), as a tuple."""
    checked = check_scales("bandwidth_scale", scales)
    return checked if isinstance(checked, tuple) else (checked,)


def _join_tensor(pool: torch.Tensor, labels: torch.Tensor | None, condition: Condition | None) -> torch.Tensor:
    """An in-memory pool, joined with its rows' conditions when there is a ``condition``."""
    if condition is None:
        return pool
    if labels is None:
        raise ValueError("labels are required with a condition (the pool's classes)")
    return condition.join(pool, labels)


def store_labels(store: FeatureStore, labels: torch.Tensor | None, condition: Condition | None) -> torch.Tensor | None:
    """Each store row's condition: ``labels``, or for class conditioning the store's own."""
    if condition is not None and labels is None:
        if not isinstance(condition, ClassCondition):
            raise ValueError("labels: the caption embeddings of the store's rows are required for text conditioning")
        labels = store.labels
        if int(labels.min()) < 0:
            raise ValueError(f"the store {store.root} has unlabelled rows; class conditioning needs labels")
    if labels is not None and labels.shape[0] != len(store):
        raise ValueError(f"labels has {labels.shape[0]} rows, the store {len(store)}")
    return labels


def _store_rows(store: FeatureStore, encoder: str, labels: torch.Tensor | None, condition: Condition | None) -> Rows:
    """Reads the pool rows ``index`` of ``store`` (joined with their conditions)."""

    def rows(index: torch.Tensor | slice) -> torch.Tensor:
        feats = store.read(encoder, rows=index)
        if condition is None or labels is None:
            return feats
        return condition.join(feats, labels[index])

    return rows


def _median_subsample(n: int, seed: int) -> torch.Tensor | slice:
    """The rows :func:`repmatch.compare.median_bandwidth` draws from ``n`` (its own seeded
    ``randperm(n)[:max_samples]``), by row index."""
    if n <= MEDIAN_SAMPLES:
        return slice(0, n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MEDIAN_SAMPLES]
