"""The on-disk feature store: sharded safetensors plus a JSON manifest.

Layout of a store directory::

    manifest.json              format, data identity, encoders (name, dim, fingerprint),
                               num_rows, rows_per_shard, num_shards, completed_shards, complete
    shard-00000.safetensors    rows [0, rows_per_shard): one float32 tensor (rows, D) per encoder
    shard-00001.safetensors    (keyed by encoder name) and int64 labels (rows,) under "__labels__"
    ...

Shard ``k`` always holds rows ``[k * rows_per_shard, min((k + 1) * rows_per_shard, num_rows))``.
Shards and the manifest are written atomically (``repmatch._io``); a shard counts as written
only once the manifest lists it, so a store interrupted at any instant is consistent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from safetensors import safe_open

FORMAT = "repmatch.features/1"
MANIFEST = "manifest.json"
LABELS_KEY = "__labels__"

RowSelection = slice | range | Sequence[int] | np.ndarray | torch.Tensor | None


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def shard_bounds(index: int, rows_per_shard: int, num_rows: int) -> tuple[int, int]:
    """Row range ``[start, stop)`` of shard ``index``."""
    start = index * rows_per_shard
    return start, min(start + rows_per_shard, num_rows)


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"root: {str(root)!r} is not a feature store (no {MANIFEST}); create one with "
            "`repmatch features --data SPEC --encoders NAMES --out DIR`"
        )
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"root: {str(path)!r} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


class FeatureStore:
    """Read access to a feature store directory written by :func:`extract_features`.

    ``read()`` returns ``{name: (N, D) float32}`` for every encoder; ``read(name)`` one tensor
    ``(N, D)``; ``rows`` selects rows (slice, range, integer sequence/array/tensor) in the
    given order, loading only the shards that hold them.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        encoders = self.manifest["encoders"]
        self.names: tuple[str, ...] = tuple(e["name"] for e in encoders)
        self.dims: dict[str, int] = {e["name"]: int(e["dim"]) for e in encoders}
        self.fingerprints: dict[str, str] = {e["name"]: str(e["fingerprint"]) for e in encoders}
        self.data: str = self.manifest["data"]
        self.num_rows: int = int(self.manifest["num_rows"])
        self.rows_per_shard: int = int(self.manifest["rows_per_shard"])
        self.num_shards: int = int(self.manifest["num_shards"])
        self.num_classes: int = int(self.manifest.get("num_classes", 0))
        self._labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return (
            f"FeatureStore({str(self.root)!r}, data={self.data!r}, rows={self.num_rows}, "
            f"encoders={list(self.names)}, complete={self.complete})"
        )

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def labels(self) -> torch.Tensor:
        """Labels ``(N,)`` int64 (``-1`` where the data had none)."""
        if self._labels is None:
            self._labels = self._gather([LABELS_KEY], None)[LABELS_KEY]
        return self._labels

    @overload
    def read(self, name: str, rows: RowSelection = None) -> torch.Tensor: ...
    @overload
    def read(self, name: None = None, rows: RowSelection = None) -> dict[str, torch.Tensor]: ...

    def read(self, name: str | None = None, rows: RowSelection = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """Features of encoder ``name`` ``(n, D)``, or of all encoders as ``{name: (n, D)}``."""
        if name is not None and name not in self.dims:
            raise ValueError(f"name must be one of the stored encoders {list(self.names)}, got {name!r}")
        keys = list(self.names) if name is None else [name]
        out = self._gather(keys, rows)
        return out if name is None else out[name]

    def _row_indices(self, rows: RowSelection) -> np.ndarray | None:
        if rows is None:
            return None
        if isinstance(rows, (slice, range)):
            sl = rows if isinstance(rows, slice) else slice(rows.start, rows.stop, rows.step)
            return np.arange(self.num_rows)[sl]
        if isinstance(rows, torch.Tensor):
            rows = rows.detach().cpu().numpy()
        idx = np.asarray(rows)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise TypeError(f"rows must be a slice, range or 1-D integer sequence, got {type(rows).__name__} {idx.dtype}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self.num_rows or idx.max() >= self.num_rows):
            raise ValueError(f"rows must lie in [-{self.num_rows}, {self.num_rows}), got min {idx.min()} max {idx.max()}")
        return np.where(idx < 0, idx + self.num_rows, idx)

    def _gather(self, keys: list[str], rows: RowSelection) -> dict[str, torch.Tensor]:

        if not self.complete:
            done = len(self.manifest["completed_shards"])
            raise ValueError(
                f"feature store {str(self.root)!r} is incomplete ({done}/{self.num_shards} shards); "
                "re-run the same `repmatch features` command (or extract_features call) to finish it"
            )
        idx = self._row_indices(rows)
        # An empty selection still loads shard 0 so the result keeps its (0, D) shape and dtype.
        shards = list(range(self.num_shards)) if idx is None else (np.unique(idx // self.rows_per_shard).tolist() or [0])
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for k in shards:
            with safe_open(str(self.root / shard_name(k)), framework="pt") as f:
                for key in keys:
                    parts[key].append(f.get_tensor(key))
        out = {}
        for key in keys:
            full = torch.cat(parts[key]) if parts[key] else torch.empty(0)
            if idx is None:
                out[key] = full
            else:
                # Rows of the loaded shards are contiguous in shard order: map global -> local.
                starts = np.asarray([shard_bounds(k, self.rows_per_shard, self.num_rows)[0] for k in shards])
                lengths = np.asarray([len(t) for t in parts[key]])
                offset = np.concatenate([[0], np.cumsum(lengths)[:-1]])
                pos = np.searchsorted(starts, idx, side="right") - 1
                local = idx - starts[pos] + offset[pos]
                out[key] = full[torch.from_numpy(local)]
        return out
