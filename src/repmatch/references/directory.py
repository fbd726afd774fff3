"""A references directory (:mod:`repmatch.references.manifest`), read back: what a training task
takes from it — per encoder its eq.-3 distance and real floor, and the pool's conditions."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..io import file_sha256, recover_directory
from .conditions import Condition, condition_from_json
from .manifest import CAPTIONS, CONDITIONS, FORMAT, MANIFEST
from .saved import load_references, reference_distance


@dataclass(frozen=True, kw_only=True)
class References:
    """A references directory, loaded: per encoder its distance, fingerprint and real floor."""

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> References:
        root = Path(root)
        recover_directory(root)
        path = root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"references: {path} does not exist; build it with `repmatch references --features STORE --out {root}`"
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"references: {path} is not valid JSON ({exc}); rebuild the references") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise ValueError(f"references: {path} has format {found!r}, expected {FORMAT!r}")
        return cls(root=root, manifest=manifest)

    def _file(self, name: str) -> Path:
        """``root/name``, checked against the SHA-256 that ``references.json`` records for it."""
        path = self.root / name
        expected = self.manifest.get("sha256", {}).get(name)
        if not path.is_file():
            raise FileNotFoundError(f"references: {path} is missing; rebuild the references")
        if expected is not None and file_sha256(path) != expected:
            raise ValueError(
                f"references: {path} is not the file {self.root / MANIFEST} was written with "
                "(SHA-256 differs: damaged or replaced); rebuild the references"
            )
        return path

    @property
    def encoders(self) -> list[str]:
        return list(self.manifest["encoders"])

    @property
    def condition(self) -> Condition | None:
        return condition_from_json(self.manifest.get("condition"))

    def conditions(self) -> torch.Tensor:
        """Each pool row's condition: labels ``(N,)`` (class) or caption embeddings ``(N, E)``."""
        tensors = load_file(str(self._file(CONDITIONS)))
        return tensors["labels"] if "labels" in tensors else tensors["embeddings"]

    def captions(self) -> list[str]:
        """The pool's captions (text conditioning)."""
        return list(json.loads(self._file(CAPTIONS).read_text(encoding="utf-8")))

    def distance(self, encoder: str, image_fingerprint: str, device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
        """The eq.-3 loss of ``encoder`` (whose battery fingerprint is ``image_fingerprint``)."""
        if encoder not in self.manifest["encoders"]:
            raise ValueError(f"references in {self.root} cover {self.encoders}, not {encoder!r}")
        cond = self.condition
        expected = image_fingerprint if cond is None else cond.fingerprint(image_fingerprint)
        return reference_distance(load_references(self.root / encoder, device), expected)

    def floors(self, encoders: Sequence[str]) -> dict[str, float] | None:
        """Stored real floors of ``encoders``, or ``None`` when none were measured."""
        floors = self.manifest.get("floors")
        if floors is None:
            return None
        missing = sorted(set(encoders) - set(floors["values"]))
        if missing:
            raise ValueError(f"references in {self.root} have no floor for {missing}; rerun with --val")
        return {name: float(floors["values"][name]) for name in encoders}

    @property
    def floor_batch_size(self) -> int | None:
        floors = self.manifest.get("floors")
        return None if floors is None else int(floors["batch_size"])
