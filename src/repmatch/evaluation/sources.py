"""Where evaluation features come from: a feature store, or images extracted on demand.

A *source* is a feature-store directory (``manifest.json`` inside, see
:mod:`repmatch.features.store`) or a dataset spec accepted by
:func:`repmatch.data.open_dataset` (an image folder, an ``.npz``, ``fmnist:test``). Encoders
a store lacks are extracted from the store's recorded data into a cache store; a dataset spec
is extracted into the cache. Rows are read as a seeded subsample (``subsample_indices``) so a
1.28M-row train store never has to fit in memory.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..data import open_dataset
from ..features import FeatureStore, extract_features
from ..features.store import MANIFEST, partial_dir
from ..metrics import subsample_indices

_LIMIT = re.compile(r"^(?P<data>.*)\[:(?P<limit>\d+)\]$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureSource:
    """Per-encoder feature stores for one role (``gen``, ``train`` or ``val``)."""

    role: str
    data: str
    num_rows: int
    stores: dict[str, FeatureStore]

    @property
    def fingerprints(self) -> dict[str, str]:
        return {name: store.fingerprints[name] for name, store in self.stores.items()}

    def read(self, name: str, num_samples: int, seed: int) -> torch.Tensor:
        """Features ``(min(N, num_samples), D)`` of encoder ``name``: rows ``subsample_indices(N, num_samples, seed)``."""
        return self.stores[name].read(
            name, rows=subsample_indices(self.num_rows, num_samples, seed)
        )


def _extract(
    data: str | Dataset,
    names: list[str],
    out: Path,
    *,
    limit: int | None,
    batch_size: int,
    device: str | None,
    progress: bool,
) -> FeatureStore:

    if not isinstance(data, str):  # an in-memory dataset (e.g. a generator's images), read in order
        return extract_features(data, ",".join(names), out, batch_size=batch_size, limit=limit,
                                device=device, progress=progress)
    return extract_features(
        open_dataset(data),
        ",".join(names),
        out,
        data=None,
        batch_size=batch_size,
        limit=limit,
        device=device,
        progress=progress,
    )


def open_source(
    source: str | Dataset,
    names: list[str],
    *,
    role: str,
    cache_dir: str | Path,
    batch_size: int = 256,
    device: str | None = None,
    progress: bool = False,
) -> FeatureSource:
    """Features of ``names`` for ``source`` (store dir, dataset spec, or a dataset object with a
    ``spec``, such as :class:`repmatch.generators.GeneratedImages`), extracting what is missing.

    Extraction goes to ``cache_dir/<role>`` (resumable; reused by a later call with the same
    data and encoders), with a bar when ``progress``.
    """
    cache = Path(cache_dir) / role
    if not isinstance(source, str):
        store = _extract(source, names, cache, limit=None, batch_size=batch_size, device=device,
                         progress=progress)
        return FeatureSource(role=role, data=store.data, num_rows=len(store), stores={n: store for n in names})
    path = Path(source).expanduser()
    if (partial_dir(path) / MANIFEST).is_file() and not (path / MANIFEST).is_file():
        FeatureStore(path)  # raises: the store is incomplete, and says how to finish it
    if (path / MANIFEST).is_file():
        store = FeatureStore(path)
        stores = {n: store for n in names if n in store.names}
        missing = [n for n in names if n not in store.names]
        if missing:
            match = _LIMIT.match(store.data)
            data, limit = (match["data"], int(match["limit"])) if match else (store.data, None)
            try:
                extra = _extract(
                    data, missing, cache, limit=limit, batch_size=batch_size, device=device,
                    progress=progress,
                )
            except (FileNotFoundError, ValueError) as err:
                raise ValueError(
                    f"{role}: the feature store {str(path)!r} lacks encoders {missing} and its data "
                    f"{store.data!r} cannot be re-opened to extract them ({err}); extract them with "
                    "`repmatch features`"
                ) from err
            if len(extra) != len(store):
                raise ValueError(
                    f"{role}: re-extracted {len(extra)} rows but the store has {len(store)}"
                )
            stores.update({n: extra for n in missing})
        return FeatureSource(role=role, data=store.data, num_rows=len(store), stores=stores)
    store = _extract(source, names, cache, limit=None, batch_size=batch_size, device=device,
                     progress=progress)
    return FeatureSource(
        role=role, data=store.data, num_rows=len(store), stores={n: store for n in names}
    )
