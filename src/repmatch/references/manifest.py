"""The references directory's layout and its manifest, ``references.json``::

    DIR/references.json           format, encoders (fingerprint, scales, bandwidths, pool),
                                  condition, floors, SHA-256 of the conditions and captions
    DIR/<encoder>/scale<k>/       one NystromReference per kernel scale
    DIR/conditions.safetensors    the pool's labels (class) or caption embeddings (text): the
                                  training condition pool mirrors them (App. E.1)
    DIR/captions.json             the pool's captions (text conditioning)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_save_safetensors, atomic_write_json, file_sha256
from .conditions import ClassCondition, Condition, condition_to_json
from .floors import FloorEstimate

FORMAT = "repmatch.references/1"
MANIFEST = "references.json"
CONDITIONS = "conditions.safetensors"
CAPTIONS = "captions.json"


def write_manifest(
    root: str | Path,
    *,
    encoders: Mapping[str, Mapping[str, Any]],
    condition: Condition | None,
    labels: torch.Tensor | None,
    floors: FloorEstimate | None,
    settings: Mapping[str, Any],
    captions: Sequence[str] | None = None,
) -> Path:
    """Write ``references.json`` (and the pool's conditions) for the references under ``root``.

    The manifest, written last, records the SHA-256 of the conditions and captions files,
    which :class:`repmatch.references.References` checks on reading them.
    :func:`repmatch.references.build_reference_dir` calls this inside the directory it swaps
    into place whole, so a reader never sees a partial set.
    """
    root = Path(root)
    written = []
    if condition is not None:
        if labels is None:
            raise ValueError("labels are required with a condition")
        key, rows = (("labels", labels.long()) if isinstance(condition, ClassCondition)
                     else ("embeddings", labels.float()))
        written.append(atomic_save_safetensors(root / CONDITIONS, {key: rows.contiguous()}))
    if captions is not None:
        written.append(atomic_write_json(root / CAPTIONS, list(captions)))
    manifest = {
        "sha256": {p.name: file_sha256(p) for p in written},
        "format": FORMAT,
        "encoders": {k: dict(v) for k, v in encoders.items()},
        "condition": condition_to_json(condition),
        "floors": None if floors is None else _floors_to_json(floors),
        "settings": dict(settings),
    }
    return atomic_write_json(root / MANIFEST, manifest)


def _floors_to_json(floors: FloorEstimate) -> dict[str, Any]:
    # JSON has no infinity: an unmeasurable spread (one batch) is stored as null.
    return {
        "batch_size": floors.batch_size, "num_val": floors.num_val,
        "num_batches": floors.num_batches, "values": floors.values,
        "rel_stderr": {k: (v if math.isfinite(v) else None) for k, v in floors.rel_stderr.items()},
    }
