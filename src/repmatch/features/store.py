"""The on-disk feature store: sharded safetensors plus a JSON manifest.

Layout of a store directory::

    manifest.json              format, data identity, encoders (name, dim, fingerprint),
                               num_rows, rows_per_shard, num_shards, completed_shards, complete,
                               shard_bytes (each completed shard's size in bytes)
    shard-00000.safetensors    rows [0, rows_per_shard): one float32 tensor (rows, D) per encoder
    shard-00001.safetensors    (keyed by encoder name) and int64 labels (rows,) under "__labels__"
    ...

Shard ``k`` always holds rows ``[k * rows_per_shard, min((k + 1) * rows_per_shard, num_rows))``.

Guarantees. A store is built in the sibling ``<store>.partial`` (where an interrupted
extraction waits to be resumed) and swapped into place whole when complete
(:func:`repmatch.io.replace_directory`), so ``<store>`` is absent or complete, never partial.
While it is built, ``.<store>.lock`` beside it admits one writer. Inside ``.partial``, shards and
the manifest are written atomically and a shard counts as written only once the manifest lists
it. Opening a store validates every manifest field (type and range; an error names the file
and the field) and checks every shard against it: present, of the recorded size, holding the
recorded encoders with the recorded shapes. Stores written before ``shard_bytes`` existed
are checked without sizes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, overload

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from ..io import recover_directory

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


def _real(root: str | os.PathLike[str]) -> Path:
    # A symlinked store is built beside the directory it points to: the final swap is a rename,
    # which cannot cross filesystems.
    root = Path(root)
    return root.resolve() if root.is_symlink() else root


def partial_dir(root: str | os.PathLike[str]) -> Path:
    """Where the store ``root`` is built until complete: ``<root>.partial``."""
    real = _real(root)
    return real.with_name(real.name + ".partial")


def lock_path(root: str | os.PathLike[str]) -> Path:
    """The lock a writer of the store ``root`` holds: ``.<root>.lock`` beside it."""
    real = _real(root)
    return real.with_name(f".{real.name}.lock")


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def validate_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    """``manifest`` (parsed from ``path``) if every field has its type and range, else a
    ``ValueError`` naming ``path`` and the field."""

    def fail(field: str, expected: str, value: Any) -> NoReturn:
        raise ValueError(f"feature store manifest {path}: {field} must be {expected}, got {value!r}")

    if not isinstance(manifest, dict):
        fail("the manifest", "a JSON object", manifest)

    def get(field: str) -> Any:
        if field not in manifest:
            raise ValueError(f"feature store manifest {path}: {field} is missing")
        return manifest[field]

    if get("format") != FORMAT:
        fail("format", repr(FORMAT), manifest["format"])
    if not isinstance(get("data"), str) or not manifest["data"]:
        fail("data", "a non-empty string", manifest["data"])
    for field in ("num_rows", "rows_per_shard"):
        if not _is_int(get(field), 1):
            fail(field, "an integer >= 1", manifest[field])
    if not _is_int(manifest.get("num_classes", 0), 0):  # absent from the earliest stores
        fail("num_classes", "an integer >= 0", manifest["num_classes"])
    num_shards = math.ceil(manifest["num_rows"] / manifest["rows_per_shard"])
    if not _is_int(get("num_shards"), 1) or manifest["num_shards"] != num_shards:
        fail("num_shards", f"ceil(num_rows / rows_per_shard) = {num_shards}", manifest["num_shards"])
    if get("dtype") != "float32":
        fail("dtype", "'float32'", manifest["dtype"])
    encoders = get("encoders")
    if not isinstance(encoders, list) or not encoders:
        fail("encoders", "a non-empty list of {name, dim, fingerprint}", encoders)
    names = set()
    for i, entry in enumerate(encoders):
        if not isinstance(entry, dict):
            fail(f"encoders[{i}]", "an object {name, dim, fingerprint}", entry)
        name = entry.get("name")
        if not isinstance(name, str) or not name or name == LABELS_KEY or name in names:
            fail(f"encoders[{i}].name", f"a distinct non-empty string other than {LABELS_KEY!r}", name)
        names.add(name)
        if not _is_int(entry.get("dim"), 1):
            fail(f"encoders[{i}].dim", "an integer >= 1", entry.get("dim"))
        if not isinstance(entry.get("fingerprint"), str) or not entry["fingerprint"]:
            fail(f"encoders[{i}].fingerprint", "a non-empty string", entry.get("fingerprint"))
    done = get("completed_shards")
    if (not isinstance(done, list) or not all(_is_int(k, 0) and k < num_shards for k in done)
            or len(set(done)) != len(done)):
        fail("completed_shards", f"distinct shard indices in [0, {num_shards})", done)
    if not isinstance(get("complete"), bool):
        fail("complete", "true or false", manifest["complete"])
    if manifest["complete"] != (len(done) == num_shards):
        fail("complete", f"true exactly when every shard is completed ({len(done)}/{num_shards})", manifest["complete"])
    sizes = manifest.get("shard_bytes")
    if sizes is not None and (
        not isinstance(sizes, dict)
        or set(sizes) != {str(k) for k in done}
        or not all(_is_int(v, 1) for v in sizes.values())
    ):
        fail("shard_bytes", "a map of every completed shard (its index as a string) to its size in bytes", sizes)
    return manifest


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated manifest of the store ``root`` (see :func:`validate_manifest`)."""
    recover_directory(root)
    path = Path(root) / MANIFEST
    if not path.is_file():
        partial = partial_dir(root)
        if (partial / MANIFEST).is_file():
            waiting = read_manifest(partial)
            raise ValueError(
                f"feature store {str(root)!r} is incomplete: an interrupted extraction waits in "
                f"{str(partial)!r} ({len(waiting['completed_shards'])}/{waiting['num_shards']} shards); "
                "re-run the same `repmatch features` command (or extract_features call) to finish it"
            )
        raise FileNotFoundError(
            f"root: {str(root)!r} is not a feature store (no {MANIFEST}); create one with "
            "`repmatch features --data SPEC --encoders NAMES --out DIR`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"feature store manifest {path}: not valid JSON ({exc})") from exc
    return validate_manifest(manifest, path)


def check_shard(root: Path, manifest: dict[str, Any], index: int) -> None:
    """Raise unless shard ``index`` of the store ``root`` is what ``manifest`` records: present
    (``FileNotFoundError``), of the recorded size, a readable safetensors file holding every
    encoder ``(rows, dim)`` float32 and the labels ``(rows,)`` int64 (``ValueError``); each
    error names the shard's path."""
    path = root / shard_name(index)
    if not path.is_file():
        raise FileNotFoundError(
            f"feature store {str(root)!r}: shard {path} is missing; delete the store and extract it again"
        )
    size, recorded = path.stat().st_size, manifest.get("shard_bytes", {}).get(str(index))
    if recorded is not None and size != recorded:
        raise ValueError(
            f"{path} is {size} bytes, the manifest records {recorded} (truncated or replaced); "
            "delete the store and extract it again"
        )
    start, stop = shard_bounds(index, manifest["rows_per_shard"], manifest["num_rows"])
    want: dict[str, tuple[tuple[int, ...], str]] = {
        e["name"]: ((stop - start, e["dim"]), "F32") for e in manifest["encoders"]
    }
    want[LABELS_KEY] = ((stop - start,), "I64")
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {key: (tuple(f.get_slice(key).get_shape()), f.get_slice(key).get_dtype()) for key in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file ({exc}); delete the store and extract it again") from exc
    for key, (shape, dtype) in want.items():
        if key not in found:
            raise ValueError(f"{path}: holds no {key!r} (it holds {sorted(found)}); the manifest lists it")
        if found[key] != (shape, dtype):
            got_shape, got_dtype = found[key]
            raise ValueError(
                f"{path}: {key} has shape {got_shape} ({got_dtype}), the manifest records {shape} ({dtype})"
                if got_dtype != dtype else f"{path}: {key} has shape {got_shape}, the manifest records {shape}"
            )


class FeatureStore:
    """Read access to a feature store directory written by :func:`extract_features`.

    ``read()`` returns ``{name: (N, D) float32}`` for every encoder; ``read(name)`` one tensor
    ``(N, D)``; ``rows`` selects rows (slice, range, integer sequence/array/tensor) in the
    given order, loading only the shards that hold them.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        for k in self.manifest["completed_shards"]:
            check_shard(self.root, self.manifest, k)
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
            path = self.root / shard_name(k)
            try:
                with safe_open(str(path), framework="pt") as f:
                    for key in keys:
                        parts[key].append(f.get_tensor(key))
            except (SafetensorError, OSError) as exc:  # changed on disk since it was opened
                raise ValueError(f"{path} is not a readable safetensors file ({exc})") from exc
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
