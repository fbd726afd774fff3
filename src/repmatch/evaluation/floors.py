"""Stored metric floors SW(val, train) per encoder, the denominators of eq. 5.

These are the *metric's* floors: the Sliced-Wasserstein distance between real validation and
real training features, on seeded subsamples of a common size, so that ``SW_r,k`` reads 1 at
the real data. The controller's floors during training are another quantity,
:func:`repmatch.references.training_floors`: the training distance (eq. 3 against the Nyström
reference) averaged over validation batches of the generator's batch size. The two never mix:
evaluation imports nothing of the training loss path.

The floors file records everything a floor depends on: the train and val data, each
encoder's feature fingerprint, the common sample count, the seed and the number of
projections. A stored floor is reused only when all of these match the evaluation at hand;
a fingerprint mismatch is an error (the store is stale), any other difference recomputes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import atomic_write_json
from ..progress import bar
from ..metrics import FingerprintMismatchError, check_fingerprints, sw_floors
from .config import EvalConfig
from .sources import FeatureSource

FLOORS_FORMAT = "repmatch.floors/1"
FLOORS_FILE = "floors.json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Floors:
    """SW floors ``{encoder: SW(val, train)}`` with the settings and fingerprints they hold for."""

    values: dict[str, float]
    fingerprints: dict[str, str]
    num_samples: int
    num_projections: int
    seed: int
    train_data: str
    val_data: str

    def to_json(self) -> dict[str, Any]:
        return {"format": FLOORS_FORMAT, "metric": "sliced_wasserstein", **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Floors:
        if obj.get("format") != FLOORS_FORMAT:
            raise ValueError(
                f"floors file has format {obj.get('format')!r}, expected {FLOORS_FORMAT!r}"
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in fields})

    def mismatch(
        self,
        *,
        names: list[str],
        num_samples: int,
        config: EvalConfig,
        train: FeatureSource,
        val_data: str | None,
    ) -> str | None:
        """Why these floors cannot serve this evaluation (``None`` if they can).

        Raises ``FingerprintMismatchError`` when the train features' fingerprints differ from
        the ones the floors were computed with.
        """
        missing = [n for n in names if n not in self.values]
        if missing:
            return f"no floor stored for {missing}"
        check_fingerprints({"floors": self.fingerprints, "train": train.fingerprints}, names)
        wanted = {
            "num_samples": num_samples,
            "num_projections": config.num_projections,
            "seed": config.seed,
            "train_data": train.data,
        }
        if val_data is not None:
            wanted["val_data"] = val_data
        for key, value in wanted.items():
            if getattr(self, key) != value:
                return f"{key} is {getattr(self, key)!r} in the floors file but {value!r} here"
        return None


def common_size(config: EvalConfig, *sources: FeatureSource) -> int:
    """SW compares equal-size sets: ``min(num_samples, N of every source)``."""
    return min([config.num_samples, *(s.num_rows for s in sources)])


def metric_floors(
    train: FeatureSource,
    val: FeatureSource,
    names: list[str],
    config: EvalConfig,
    *,
    num_samples: int | None = None,
    progress: bool = False,
) -> Floors:
    """The SW metric's floors ``SW(val, train)`` per encoder (:func:`repmatch.metrics.sw_floors`)
    on seeded subsamples of ``num_samples`` rows (default: the common size); ``progress`` draws
    a bar over the encoders.

    Not the training floors (:func:`repmatch.references.training_floors`, the training
    distance on validation batches): see the module doc."""
    n = common_size(config, train, val) if num_samples is None else num_samples
    check_fingerprints({"train": train.fingerprints, "val": val.fingerprints}, names)
    values = {}
    for name in bar(names, desc="floors", unit="encoder", enabled=progress):
        t, v = train.read(name, n, config.seed), val.read(name, n, config.seed)
        values.update(
            sw_floors(
                {name: t.to(config.metric_device)},
                {name: v.to(config.metric_device)},
                config.num_projections,
                config.seed,
                num_samples=n,
                chunk_size=config.chunk_size,
            )
        )
    return Floors(
        values=values,
        fingerprints={n_: train.fingerprints[n_] for n_ in names},
        num_samples=n,
        num_projections=config.num_projections,
        seed=config.seed,
        train_data=train.data,
        val_data=val.data,
    )


def save_floors(path: str | os.PathLike[str], floors: Floors) -> Path:
    return atomic_write_json(path, floors.to_json())


def load_floors(path: str | os.PathLike[str]) -> Floors:
    return Floors.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


__all__ = [
    "FLOORS_FILE",
    "FingerprintMismatchError",
    "Floors",
    "common_size",
    "load_floors",
    "metric_floors",
    "save_floors",
]
