"""``repmatch eval``: the SW_r,k panel (eq. 5) with MMD and FD cross-checks for one generator.

Reads (or extracts) gen/train/val features, verifies that every set and the stored floors
share feature fingerprints, reuses stored floors when their settings match (else computes
them from val), scores one encoder at a time (bounded memory), and writes ``eval.json``,
``eval.md`` and ``sw_ratios.png``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..io import atomic_write_json, atomic_write_text
from ..progress import bar
from ..features import FeatureStore, resolve_encoder_names
from ..metrics import (
    check_fingerprints,
    fd_ratio_panel,
    mmd_ratio_panel,
    summarize_ratios,
    sw_ratio_panel,
)
from ..represent import get_spec
from .config import EvalConfig
from .floors import FLOORS_FILE, Floors, common_size, load_floors, metric_floors, save_floors
from .report import format_table, plot_ratios
from .sources import FeatureSource, open_source


def resolve_names(encoders: str | Sequence[str] | None, train: str) -> list[str]:
    """Encoder names from a panel name / ``"a,b"`` / list, or (``None``) every encoder of the train store."""

    if encoders is None:
        return list(FeatureStore(train).names)
    if isinstance(encoders, str):
        return resolve_encoder_names(encoders)
    return list(encoders)


def default_held_out(names: list[str]) -> list[str]:
    """Encoders whose registry spec is flagged ``held_out`` (unregistered names are not)."""

    held = []
    for name in names:
        try:
            if get_spec(name).held_out:
                held.append(name)
        except ValueError:
            continue
    return held


def _select_floors(
    path: Path,
    *,
    names: list[str],
    n: int,
    config: EvalConfig,
    train: FeatureSource,
    val: FeatureSource | None,
) -> tuple[Floors | None, str]:
    if not path.is_file():
        return None, f"no floors file at {path}"
    floors = load_floors(path)
    if val is not None:
        check_fingerprints({"floors": floors.fingerprints, "val": val.fingerprints}, names)
    reason = floors.mismatch(
        names=names,
        num_samples=n,
        config=config,
        train=train,
        val_data=None if val is None else val.data,
    )
    return (
        (floors, f"stored floors {path}")
        if reason is None
        else (None, f"stored floors {path} unusable: {reason}")
    )


def _open_sources(
    gen: str | Dataset,
    train: str,
    val: str | None,
    names: list[str],
    *,
    cache: Path,
    config: EvalConfig,
    progress: bool,
) -> tuple[FeatureSource, FeatureSource, FeatureSource | None]:
    """The gen/train/val feature sources (extracted into ``cache`` when they are datasets),
    checked to share one feature fingerprint per encoder."""
    kw: dict[str, Any] = {
        "cache_dir": cache, "batch_size": config.batch_size, "device": config.device,
        "progress": progress,
    }
    train_src = open_source(train, names, role="train", **kw)
    gen_src = open_source(gen, names, role="gen", **kw)
    val_src = open_source(val, names, role="val", **kw) if val is not None else None
    roles = {"gen": gen_src.fingerprints, "train": train_src.fingerprints}
    if val_src is not None:
        roles["val"] = val_src.fingerprints
    check_fingerprints(roles, names)
    return gen_src, train_src, val_src


def _floors_or_compute(
    path: Path,
    out: Path,
    *,
    names: list[str],
    n: int,
    config: EvalConfig,
    train: FeatureSource,
    val: FeatureSource | None,
    progress: bool,
) -> tuple[Floors, str]:
    """The stored floors at ``path`` when their settings match, else floors computed from
    ``val`` (saved to ``out/floors.json``); with a note saying which."""
    floors, note = _select_floors(path, names=names, n=n, config=config, train=train, val=val)
    if floors is not None:
        return floors, note
    if val is None:
        raise ValueError(f"val is required: {note}")
    floors = metric_floors(train, val, names, config, num_samples=n, progress=progress)
    save_floors(out / FLOORS_FILE, floors)
    return floors, note + f"; computed from val and saved to {out / FLOORS_FILE}"


def _score_encoder(
    name: str,
    gen: FeatureSource,
    train: FeatureSource,
    val: FeatureSource | None,
    floors: Floors,
    n: int,
    config: EvalConfig,
) -> dict[str, dict[str, dict[str, float]]]:
    """One encoder's SW ratio (on ``n`` rows) and, with ``val``, its MMD/FD cross-checks (on
    ``cross_check_samples`` rows, against floors measured on val): ``{panel: result}``."""
    device = config.metric_device
    cn = config.cross_check_samples
    g = gen.read(name, max(n, cn), config.seed).to(device)
    t = train.read(name, max(n, cn), config.seed).to(device)
    parts = {
        "sw": sw_ratio_panel(
            {name: g[:n]},
            {name: t[:n]},
            floors={name: floors.values[name]},
            num_projections=config.num_projections,
            seed=config.seed,
            num_samples=n,
            chunk_size=config.chunk_size,
        )
    }
    if val is not None and config.cross_checks:
        v = val.read(name, cn, config.seed).to(device)
        sets = ({name: g[:cn]}, {name: t[:cn]}, {name: v})
        if "mmd" in config.cross_checks:
            parts["mmd"] = mmd_ratio_panel(
                *sets, num_features=config.num_rff, seed=config.seed, num_samples=cn
            )
        if "fd" in config.cross_checks:
            parts["fd"] = fd_ratio_panel(*sets, num_samples=cn, seed=config.seed)
    return parts


def _panels_of(
    names: list[str],
    score: Callable[[str], dict[str, dict[str, dict[str, float]]]],
    held: list[str],
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Score one encoder at a time (bounded memory) and gather each panel's per-encoder
    ratios, distances and floors with its summary (mean, held-out mean)."""
    panels: dict[str, dict[str, dict[str, float]]] = {}
    for name in bar(names, desc="eval", unit="encoder", enabled=progress):
        for key, part in score(name).items():
            acc = panels.setdefault(key, {"per_encoder": {}, "distance": {}, "floor": {}})
            for field in acc:
                acc[field][name] = part[field][name]
    return {
        key: {
            "per_encoder": acc["per_encoder"],
            **summarize_ratios(acc["per_encoder"], held),
            "distance": acc["distance"],
            "floor": acc["floor"],
        }
        for key, acc in panels.items()
    }


def _write_outputs(out: Path, result: dict[str, Any]) -> None:
    atomic_write_json(out / "eval.json", result)
    atomic_write_text(out / "eval.md", format_table(result))
    plot_ratios(result, out / "sw_ratios.png")


def evaluate(
    gen: str | Dataset,
    train: str,
    val: str | None,
    *,
    encoders: str | Sequence[str] | None = None,
    out_dir: str | os.PathLike[str],
    config: EvalConfig | None = None,
    floors_path: str | os.PathLike[str] | None = None,
    held_out: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``gen`` against ``train`` with floors from ``val`` (or stored floors); see module doc.

    ``gen``/``train``/``val`` are feature-store directories or dataset specs (image folder,
    ``.npz``, ``fmnist:test``); ``gen`` may also be a dataset object with a ``spec``, e.g. a
    generator's images (:class:`repmatch.generators.GeneratedImages`), extracted as read.
    ``floors_path`` defaults to ``<train>/floors.json``; ``config`` to ``EvalConfig()``. Returns the
    result dict that is also written to ``out_dir/eval.json``. ``progress`` draws bars over
    extraction, floors and the per-encoder scores.
    """
    config = EvalConfig() if config is None else config
    out = Path(out_dir)
    names = resolve_names(encoders, train)
    held = default_held_out(names) if held_out is None else list(held_out)
    summarize_ratios(dict.fromkeys(names, 1.0), held)  # validates held_out before any work
    gen_src, train_src, val_src = _open_sources(
        gen, train, val, names, cache=out / "features", config=config, progress=progress
    )
    n = common_size(config, gen_src, train_src, *([val_src] if val_src else []))
    path = Path(floors_path) if floors_path is not None else Path(train) / FLOORS_FILE
    floors, floors_note = _floors_or_compute(
        path, out, names=names, n=n, config=config, train=train_src, val=val_src, progress=progress
    )
    panels = _panels_of(
        names,
        lambda name: _score_encoder(name, gen_src, train_src, val_src, floors, n, config),
        held,
        progress,
    )
    result: dict[str, Any] = {
        "gen": gen_src.data,
        "train": train_src.data,
        "val": None if val_src is None else val_src.data,
        "encoders": names,
        "held_out": held,
        "num_samples": n,
        "fingerprints": gen_src.fingerprints,
        "floors": floors_note,
        "config": dataclasses.asdict(config),
        **panels,
    }
    _write_outputs(out, result)
    return result
