"""A run's references directory (:mod:`repmatch.references.manifest`): one set of Nyström
references per encoder of a feature store, and, given a validation store, the controller's
real floors (:func:`repmatch.references.training_floors`) — what ``repmatch references``
writes and what the general training task reads.

The directory is built beside its final path and swapped into place whole, so a reader sees
the complete old set or the complete new one (:func:`repmatch.io.atomic_directory`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..compare import NystromReference
from ..compare.nystrom import DEFAULT_NUM_LANDMARKS
from ..features import FeatureStore
from ..io import atomic_directory, check_replaceable
from ..progress import bar
from ..validate import check_positive
from .build import build_references, check_scales_tuple, store_labels
from .conditions import ClassCondition, Condition
from .directory import References
from .floors import FloorEstimate, training_floors, warn_floors
from .manifest import MANIFEST, write_manifest
from .saved import reference_distance, save_references

BuildFn = Callable[..., tuple[NystromReference, ...]]


def build_reference_dir(
    train: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    encoders: Sequence[str] | None = None,
    condition: Condition | None = None,
    conditions: torch.Tensor | None = None,
    val_conditions: torch.Tensor | None = None,
    captions: Sequence[str] | None = None,
    num_landmarks: int = DEFAULT_NUM_LANDMARKS,
    bandwidth_scale: float | Sequence[float] = 1.0,
    floor_batch_size: int = 256,
    seed: int = 0,
    kmeans_iters: int = 10,
    chunk_rows: int = 16384,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> References:
    """Build ``out`` (see module doc) from the feature store ``train``: one set of references per
    encoder in ``encoders`` (default: all of the store's, :func:`build_references`), and, given
    the feature store ``val``, the real floors at ``floor_batch_size`` (the generator's batch
    size), warning when the validation set is too small for them to be reliable.

    With a ``condition``, ``conditions``/``val_conditions`` hold each row's condition (class
    labels, by default the stores' own; caption embeddings for text, required) and
    ``captions`` the training rows' captions, saved for sampling. ``progress`` draws a bar over
    the encoders (and the floors)."""
    check_positive("floor_batch_size", floor_batch_size, integer=True)
    check_replaceable(out, MANIFEST)  # before the work, not after
    store, names, val_store = _open_stores(train, val, encoders)
    conditions = store_labels(store, conditions, condition)  # class labels default to the store's
    build = functools.partial(
        build_references, store, condition=condition, labels=conditions, num_landmarks=num_landmarks,
        bandwidth_scale=bandwidth_scale, seed=seed, kmeans_iters=kmeans_iters, chunk_rows=chunk_rows,
        device=device,
    )
    steps = bar(total=len(names) + (val_store is not None), desc="references", unit="step", enabled=progress)
    built: dict[str, tuple[NystromReference, ...]] = {}
    entries: dict[str, dict[str, Any]] = {}
    distances: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for name in names:
        steps.set_postfix_str(name)
        built[name], entries[name] = _build_encoder(build, store, name)
        distances[name] = reference_distance(built[name], entries[name]["fingerprint"])
        steps.update()
    estimate = None
    if val_store is not None:
        val_features = _val_features(val_store, names, condition, val_conditions, device)
        steps.set_postfix_str("floors")
        estimate = training_floors(distances, val_features, floor_batch_size)
        steps.update()
        warn_floors(estimate)
    steps.close()
    settings = {
        "train": str(store.root), "val": None if val_store is None else str(val_store.root),
        "num_landmarks": num_landmarks, "bandwidth_scale": list(check_scales_tuple(bandwidth_scale)),
        "seed": seed, "kmeans_iters": kmeans_iters,
    }
    _write_directory(Path(out), built, entries=entries, condition=condition, labels=conditions,
                     floors=estimate, settings=settings, captions=captions)
    return References.open(out)


def _open_stores(
    train: str | Path, val: str | Path | None, encoders: Sequence[str] | None
) -> tuple[FeatureStore, list[str], FeatureStore | None]:
    """The training store, the encoders to build (checked against it) and the validation store,
    whose features must lie in the same spaces."""
    store = FeatureStore(train)
    names = list(store.names) if encoders is None else list(encoders)
    unknown = sorted(set(names) - set(store.names))
    if unknown or not names:
        raise ValueError(f"encoders must be a non-empty subset of the store's {list(store.names)}, got {names}")
    if val is None:
        return store, names, None
    val_store = FeatureStore(val)
    for name in names:
        if name not in val_store.fingerprints or val_store.fingerprints[name] != store.fingerprints[name]:
            raise ValueError(
                f"val: the store {val_store.root} has no features of {name} in the space of "
                f"{store.root} (fingerprint {store.fingerprints[name]})"
            )
    return store, names, val_store


def _build_encoder(
    build: BuildFn, store: FeatureStore, name: str
) -> tuple[tuple[NystromReference, ...], dict[str, Any]]:
    """``name``'s references and its manifest entry (the fingerprint is the references' own:
    the joint space's when they are conditional)."""
    image_fingerprint = store.fingerprints[name]
    refs = build(encoder=name, fingerprint=image_fingerprint)
    entry = {
        "fingerprint": refs[0].fingerprint,
        "image_fingerprint": image_fingerprint,
        "scales": len(refs), "bandwidths": [r.bandwidth for r in refs],
        "pool": refs[0].pool_size, "landmarks": refs[0].num_landmarks,
    }
    return refs, entry


def _val_features(
    val_store: FeatureStore,
    names: Sequence[str],
    condition: Condition | None,
    val_conditions: torch.Tensor | None,
    device: torch.device | str,
) -> dict[str, torch.Tensor]:
    """The validation features the floors are measured on: in the references' space, so joined
    with each row's condition (class labels by default the store's own) when conditional."""
    rows = val_conditions
    if isinstance(condition, ClassCondition) and rows is None:
        rows = val_store.labels
    if condition is not None and rows is None:
        raise ValueError("val_conditions: the caption embeddings of the validation rows are required")
    out = {}
    for name in names:
        feats = val_store.read(name)
        if condition is not None and rows is not None:
            feats = condition.join(feats, rows)
        out[name] = feats.to(device)
    return out


def _write_directory(
    root: Path,
    built: Mapping[str, Sequence[NystromReference]],
    *,
    entries: Mapping[str, Mapping[str, Any]],
    condition: Condition | None,
    labels: torch.Tensor | None,
    floors: FloorEstimate | None,
    settings: Mapping[str, Any],
    captions: Sequence[str] | None,
) -> None:
    # Written only once everything is computed, beside ``root``, and swapped in whole: a failed
    # rebuild leaves the old references.
    with atomic_directory(root, replaces=MANIFEST) as tmp:
        for name, refs in built.items():
            save_references(refs, tmp / name)
        write_manifest(tmp, encoders=entries, condition=condition, labels=labels,
                       floors=floors, settings=settings, captions=captions)
