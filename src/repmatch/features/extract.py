"""Feature extraction over a dataset: one pass, every encoder on every batch, sharded and resumable.

Row ``i`` of encoder ``e``'s features is ``f_e(x_i)`` (the encoder's own preprocessing applied
per image, so features do not depend on the batch size up to float rounding). Rows are grouped
into shards of ``shard_size`` consecutive rows (see :mod:`repmatch.features.store`); each
batch stays inside one shard, so a resumed run sees exactly the batches of an uninterrupted
one and reproduces its features bit for bit.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from ..io import (
    atomic_save_safetensors,
    atomic_write_json,
    check_replaceable,
    exclusive_lock,
    recover_directory,
    replace_directory,
)
from ..validate import check_positive
from ..represent import EncoderBattery, list_panels, panel
from .store import (
    FORMAT,
    LABELS_KEY,
    MANIFEST,
    FeatureStore,
    check_shard,
    lock_path,
    partial_dir,
    read_manifest,
    shard_bounds,
    shard_name,
)


def resolve_encoder_names(text: str) -> list[str]:
    """``"a,b,c"`` -> ``["a", "b", "c"]``; a single panel name -> that panel's encoders."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"encoders must name encoders ('a,b') or a panel {list_panels()}, got {text!r}")
    if len(names) == 1 and names[0] in list_panels():
        return list(panel(names[0]))
    return names


def as_battery(encoders: Any) -> EncoderBattery:
    """An ``EncoderBattery`` from a battery, names (``"a,b"``, a panel, a list) or encoder modules."""
    if isinstance(encoders, EncoderBattery):
        return encoders
    if isinstance(encoders, str):
        return EncoderBattery(resolve_encoder_names(encoders))
    if isinstance(encoders, Mapping):
        encoders = list(encoders.values())
    if not isinstance(encoders, Sequence) or not encoders:
        raise TypeError(
            "encoders must be an EncoderBattery, encoder names (a comma-separated string, a panel "
            f"name or a list of str), or a non-empty list/dict of encoders; got {type(encoders).__name__}"
        )
    return EncoderBattery(list(encoders))


def _encode(battery: EncoderBattery, images: torch.Tensor | list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``battery(images)``; a list of differently sized images is encoded per same-shape run."""
    if isinstance(images, torch.Tensor):
        return battery(images)
    outs: dict[str, list[torch.Tensor]] = {n: [] for n in battery.names}
    start = 0
    while start < len(images):
        stop = start + 1
        while stop < len(images) and images[stop].shape == images[start].shape:
            stop += 1
        for n, f in battery(torch.stack(images[start:stop])).items():
            outs[n].append(f)
        start = stop
    return {n: torch.cat(v) for n, v in outs.items()}


def _collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
    images = [img for img, _ in items]
    labels = torch.tensor([int(lab) for _, lab in items], dtype=torch.int64)
    if all(img.shape == images[0].shape for img in images):
        return torch.stack(images), labels
    return images, labels


def _to(images: torch.Tensor | list[torch.Tensor], device: torch.device) -> Any:
    if isinstance(images, torch.Tensor):
        return images.to(device, non_blocking=True)
    return [img.to(device, non_blocking=True) for img in images]


def _identity(data: str, num_rows: int, shard_size: int, battery: EncoderBattery, num_classes: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "data": data,
        "num_rows": num_rows,
        "rows_per_shard": shard_size,
        "num_shards": math.ceil(num_rows / shard_size),
        "num_classes": num_classes,
        "dtype": "float32",
        "encoders": [
            {"name": n, "dim": spec.dim, "fingerprint": battery.fingerprints[n]}
            for n, spec in battery.specs.items()
        ],
    }


def _check_identity(where: Path, old: dict[str, Any], identity: dict[str, Any]) -> None:
    for key, want in identity.items():
        if old.get(key) != want:
            raise ValueError(
                f"out_dir {str(where)!r} already holds a different feature extraction: {key} is "
                f"{old.get(key)!r} there but {want!r} here. Resuming needs the same data, encoders "
                "(fingerprints), limit and shard size; choose another out_dir or delete this one"
            )


def _finished(out: Path, partial: Path, identity: dict[str, Any]) -> FeatureStore | None:
    """The store at ``out`` if it is this extraction, finished; ``None`` if it is still to be
    built in ``partial``. ``ValueError`` if ``out`` holds anything else."""
    recover_directory(out)
    if (out / MANIFEST).is_file():
        old = read_manifest(out)
        _check_identity(out, old, identity)
        if old["complete"]:
            return FeatureStore(out)
        if not partial.exists():
            # Left incomplete in place by a repmatch that predates .partial: resume it there.
            os.rename(out, partial)
    elif out.is_dir() and any(out.iterdir()):
        raise ValueError(
            f"out_dir {str(out)!r} exists and is not a feature store (no {MANIFEST}); refusing to "
            "replace it: choose another out_dir or delete it"
        )
    check_replaceable(out, MANIFEST)  # e.g. a file of that name
    return None


def _resume_state(partial: Path, identity: dict[str, Any]) -> dict[int, int]:
    """``{shard: size in bytes}`` of the intact completed shards of an interrupted extraction with
    the same identity (a damaged one is recomputed, with a warning); ``ValueError`` if it differs."""
    if not (partial / MANIFEST).exists():
        return {}
    old = read_manifest(partial)
    _check_identity(partial, old, identity)
    done = {}
    for k in old["completed_shards"]:
        try:
            check_shard(partial, old, k)
        except (FileNotFoundError, ValueError) as exc:
            warnings.warn(f"recomputing shard {k}: {exc}", RuntimeWarning, stacklevel=3)
            continue
        done[k] = (partial / shard_name(k)).stat().st_size
    return done


def _write_shard(out: Path, shard: int, tensors: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
    """Write shard ``shard`` atomically, then record it and its size in the manifest (in that
    order, so a manifest never lists a shard whose file is incomplete)."""
    start, stop = shard_bounds(shard, manifest["rows_per_shard"], manifest["num_rows"])
    path = atomic_save_safetensors(out / shard_name(shard), tensors, metadata={"start": str(start), "stop": str(stop)})
    manifest["completed_shards"] = sorted([*manifest["completed_shards"], shard])
    manifest["shard_bytes"] = {**manifest["shard_bytes"], str(shard): path.stat().st_size}
    manifest["complete"] = len(manifest["completed_shards"]) == manifest["num_shards"]
    atomic_write_json(out / MANIFEST, manifest)


def _batches(todo: list[int], shard_size: int, num_rows: int, batch_size: int) -> Iterator[list[int]]:
    for k in todo:
        start, stop = shard_bounds(k, shard_size, num_rows)
        for b in range(start, stop, batch_size):
            yield list(range(b, min(b + batch_size, stop)))


def extract_features(
    dataset: Dataset,
    encoders: Any,
    out_dir: str | os.PathLike[str],
    *,
    data: str | None = None,
    batch_size: int = 256,
    shard_size: int = 10000,
    num_workers: int = 0,
    limit: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> FeatureStore:
    """Extract every encoder's features of ``dataset`` into a feature store at ``out_dir``.

    Args:
        dataset: yields ``(image (C, H, W) float in [0, 1], label int)`` (the readers of
            :mod:`repmatch.data`).
        encoders: an ``EncoderBattery``, encoder names (``"a,b"`` or ``["a", "b"]``) or a
            list/dict of encoder modules.
        out_dir: the store directory. It is built in ``<out_dir>.partial`` and swapped into
            place whole once complete, so ``out_dir`` is absent or complete. If
            ``<out_dir>.partial`` holds an interrupted extraction with the same identity (data,
            encoders and fingerprints, limit, shard size), its completed shards are kept and
            only the rest is computed; a finished ``out_dir`` with the same identity is
            returned as is; a different identity, or a directory that is not a feature
            store, raises ``ValueError``. While extracting, ``.<out_dir>.lock`` is held: a
            second writer of ``out_dir`` fails at once, naming the first.
        data: the data's identity recorded in the manifest; default ``dataset.spec``.
        batch_size: images per forward pass (does not change the features beyond rounding).
        shard_size: rows per shard file (the unit of resumption).
        num_workers: DataLoader worker processes (loading overlaps compute when > 0).
        limit: use only the first ``limit`` rows.
        device: where encoders run (default: CUDA if available, else CPU).
        progress: show a tqdm progress bar.

    Returns:
        The finished :class:`FeatureStore`.
    """

    check_positive("batch_size", batch_size, integer=True)
    check_positive("shard_size", shard_size, integer=True)
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    if data is None:
        data = getattr(dataset, "spec", None)
        if data is None:
            raise ValueError(
                f"data must name the dataset's content (recorded so a resume cannot mix datasets); "
                f"{type(dataset).__name__} has no .spec, so pass data='...'"
            )
    num_rows = len(dataset)  # type: ignore[arg-type]
    num_classes = int(getattr(dataset, "num_classes", 0) or 0)
    if limit is not None:
        check_positive("limit", limit, integer=True)
        if limit < num_rows:
            dataset, num_rows, data = Subset(dataset, range(limit)), limit, f"{data}[:{limit}]"
    if num_rows == 0:
        raise ValueError("dataset is empty: nothing to extract")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    battery = as_battery(encoders)
    out = Path(out_dir)
    identity = _identity(data, num_rows, shard_size, battery, num_classes)
    with exclusive_lock(lock_path(out), name="out_dir", target=out):
        finished = _finished(out, partial_dir(out), identity)
        if finished is not None:
            return finished
        _extract_into(partial_dir(out), dataset, battery, identity, batch_size=batch_size,
                      num_workers=num_workers, device=device, progress=progress)
        replace_directory(partial_dir(out), out)
        return FeatureStore(out)


def _extract_into(
    out: Path,
    dataset: Dataset,
    battery: EncoderBattery,
    identity: dict[str, Any],
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    progress: bool,
) -> None:
    """Complete the store ``out`` (the ``.partial`` directory), resuming what it holds."""
    num_rows, shard_size = identity["num_rows"], identity["rows_per_shard"]
    done = _resume_state(out, identity)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in (".shard-*.tmp", f".{MANIFEST}.*.tmp"):
        for stale in out.glob(pattern):
            stale.unlink()  # left by a run killed mid-write; that shard is recomputed
    todo = [k for k in range(identity["num_shards"]) if k not in done]
    manifest = {**identity, "completed_shards": sorted(done), "complete": not todo,
                "shard_bytes": {str(k): size for k, size in done.items()}}
    atomic_write_json(out / MANIFEST, manifest)
    if not todo:
        return

    battery.to(device).eval()
    on_cuda = device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_sampler=list(_batches(todo, shard_size, num_rows, batch_size)),
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=on_cuda,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    rows_left = sum(shard_bounds(k, shard_size, num_rows)[1] - shard_bounds(k, shard_size, num_rows)[0] for k in todo)
    bar = tqdm(total=num_rows, initial=num_rows - rows_left, unit="img", desc="features", disable=not progress)
    pending = iter(todo)
    shard = next(pending)
    buf: dict[str, list[torch.Tensor]] = {n: [] for n in [*battery.names, LABELS_KEY]}
    with torch.inference_mode():
        for images, labels in loader:
            feats = _encode(battery, _to(images, device))
            for n in battery.names:
                buf[n].append(feats[n].to("cpu", torch.float32))
            buf[LABELS_KEY].append(labels)
            bar.update(len(labels))
            start, stop = shard_bounds(shard, shard_size, num_rows)
            if sum(len(t) for t in buf[LABELS_KEY]) == stop - start:
                _write_shard(out, shard, {n: torch.cat(v) for n, v in buf.items()}, manifest)
                buf = {n: [] for n in buf}
                shard = next(pending, -1)
    bar.close()
    assert manifest["complete"], "every scheduled batch was consumed, so every shard was written"
